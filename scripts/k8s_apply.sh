#!/bin/sh
# `make k8s-apply`: apply an overlay, let the app roll out, then run and watch a fresh sync Job.
# Usage: k8s_apply.sh NAMESPACE OVERLAY_DIR   (env: KUBECTL, ROLLOUT_TIMEOUT, SYNC_GRACE, POLL)
set -eu
kubectl=${KUBECTL:-kubectl}
ns=$1
dir=$2
job=app-sync
# The Job is the only object labelled with its name; everything else is applied first.
job_selector=app.kubernetes.io/name=$job

k() { $kubectl -n "$ns" "$@"; }

show_logs() {
  k get job "$job" -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type}: {.reason} {.message}{"\n"}{end}' >&2 || true
  k logs -l "batch.kubernetes.io/job-name=$job" --all-containers --prefix --tail=20 >&2 || true
}

# Jobs are immutable, and the server never re-syncs an app it already knows: every deploy syncs anew.
k delete job "$job" --ignore-not-found
$kubectl apply --server-side -k "$dir" -l "app.kubernetes.io/name!=$job"

# The sync must reach pods of this release: an old pod still ready would register the previous
# function set (Inngest Cloud keeps it; no pod re-registers itself there).
k rollout status deployment/app --timeout="${ROLLOUT_TIMEOUT:-10m}"
if [ -n "$(k get deployment inngest --ignore-not-found -o name)" ]; then
  k rollout status deployment/inngest --timeout="${ROLLOUT_TIMEOUT:-10m}"
fi

$kubectl apply --server-side -k "$dir" -l "$job_selector"

# Complete or Failed, whichever comes first. The Job's activeDeadlineSeconds bounds its own run
# (it turns Failed then), so wait that long plus a grace for the controller to say so.
deadline=$(k get job "$job" -o jsonpath='{.spec.activeDeadlineSeconds}')
end=$(($(date +%s) + ${deadline:-900} + ${SYNC_GRACE:-60}))
while :; do
  state=$(k get job "$job" -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type} {end}')
  case " $state" in
    *" Complete "*)
      k logs "job/$job" --tail=5
      exit 0 ;;
    *" Failed "* | *" FailureTarget "*)
      echo "k8s-apply: the sync Job failed:" >&2
      show_logs
      exit 1 ;;
  esac
  if [ "$(date +%s)" -gt "$end" ]; then  # -gt: whole seconds must not end the wait early
    echo "k8s-apply: the sync Job neither completed nor failed within its deadline (${deadline:-900} s):" >&2
    show_logs
    exit 1
  fi
  sleep "${POLL:-2}"
done
