"""`make k8s-apply` and `make k8s-prune` against a recording stand-in kubectl (tests/k8s/fake_kubectl.py):
the order of the steps, fail-fast on a Failed sync Job, the wait bounded by the Job's own deadline, and
the switch to Cloud leaving nothing of the old overlay behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.k8s.conftest import Doc, find, kubectl, one
from tests.support import ROOT

FAKE = Path(__file__).with_name("fake_kubectl.py")


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    calls: list[str]
    seconds: float


def make(target: str, tmp_path: Path, timeout: float = 60, **scenario: str) -> Run:
    fake = tmp_path / "kubectl"
    fake.write_text(f"#!{sys.executable}\n" + FAKE.read_text())
    fake.chmod(0o755)
    env = {
        **os.environ,
        "FAKE_KUBECTL_DIR": str(tmp_path),
        "REAL_KUBECTL": kubectl(),
        "POLL": "0.1",
        **scenario,
    }
    start = time.monotonic()
    proc = subprocess.run(
        ["make", "-s", "--no-print-directory", target, f"KUBECTL={fake}", *scenario.get("ARGS", "").split()],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    log = tmp_path / "calls.log"
    calls = log.read_text().splitlines() if log.exists() else []
    return Run(proc.returncode, proc.stdout, proc.stderr, calls, time.monotonic() - start)


def index(calls: list[str], *words: str) -> int:
    """Position of the first call containing every word."""
    for i, call in enumerate(calls):
        if all(w in call.split() or w in call for w in words):
            return i
    raise AssertionError(f"no call with {words}: {calls}")


def test_sync_job_is_created_only_after_the_app_rolled_out(tmp_path: Path) -> None:
    run = make("k8s-apply", tmp_path, FAKE_JOB_STATES=";;Complete")
    assert run.returncode == 0, run.stderr
    delete = index(run.calls, "delete", "job", "app-sync")
    apply_rest = index(run.calls, "apply", "app.kubernetes.io/name!=app-sync")
    rollout = index(run.calls, "rollout", "status", "deployment/app")
    apply_job = index(run.calls, "apply", "app.kubernetes.io/name=app-sync")
    poll = index(run.calls, "get", "job", "app-sync", "conditions")
    assert delete < apply_rest < rollout < apply_job < poll, run.calls
    # Every apply is server-side, the same as the real API server test uses.
    assert all("--server-side" in c for c in run.calls if c.startswith("apply")), run.calls


def test_the_server_rollout_is_awaited_too_where_there_is_one(tmp_path: Path) -> None:
    run = make("k8s-apply", tmp_path, FAKE_SERVER="1")
    assert run.returncode == 0, run.stderr
    app = index(run.calls, "rollout", "status", "deployment/app")
    server = index(run.calls, "rollout", "status", "deployment/inngest")
    assert app < server < index(run.calls, "apply", "app.kubernetes.io/name=app-sync")


def test_the_first_pass_selector_leaves_out_the_job_and_nothing_else(overlay: tuple[str, list[Doc]]) -> None:
    """What `-l app.kubernetes.io/name!=app-sync` / `=app-sync` split: the Job alone in the second pass."""
    _, docs = overlay
    labelled = [d for d in docs if d["metadata"].get("labels", {}).get("app.kubernetes.io/name") == "app-sync"]
    assert [(d["kind"], d["metadata"]["name"]) for d in labelled] == [("Job", "app-sync")]


def test_a_failed_job_fails_at_once_with_its_logs(tmp_path: Path) -> None:
    run = make("k8s-apply", tmp_path, timeout=30, FAKE_JOB_STATES=";Failed")
    assert run.returncode != 0
    assert run.seconds < 15, f"took {run.seconds:.1f} s: waited instead of failing fast"
    assert "signing key invalid" in run.stderr
    assert any(c.startswith("logs") for c in run.calls)


def test_failure_target_counts_as_failed(tmp_path: Path) -> None:
    """Kubernetes >= 1.31 sets FailureTarget first, Failed once the pods are gone."""
    run = make("k8s-apply", tmp_path, timeout=30, FAKE_JOB_STATES=";FailureTarget")
    assert run.returncode != 0 and run.seconds < 15


def test_the_wait_lasts_the_jobs_deadline_and_then_gives_up(tmp_path: Path) -> None:
    """A Job that neither completes nor fails: waited for its activeDeadlineSeconds (+ grace), no less."""
    run = make("k8s-apply", tmp_path, timeout=40, FAKE_JOB_STATES="", FAKE_JOB_DEADLINE="3", SYNC_GRACE="1")
    assert run.returncode != 0
    assert 4 <= run.seconds < 20, run.seconds
    assert "within its deadline (3 s)" in run.stderr


def test_the_recipe_outwaits_the_rendered_job_deadline(rendered: dict[str, list[Doc]]) -> None:
    """The recipe's bound is the Job's own deadline plus a grace, and the Job has one."""
    for docs in rendered.values():
        job = one(docs, "Job", "app-sync")["spec"]
        assert 0 < job["activeDeadlineSeconds"] <= 3600
    script = (ROOT / "scripts" / "k8s_apply.sh").read_text()
    assert "activeDeadlineSeconds" in script and "--timeout=10m job/app-sync" not in script


# What each switch to Cloud must delete (PVCs stay: the old server's data).
STALE_SERVER = {
    "deployment.apps/inngest",
    "service/inngest",
    "serviceaccount/inngest",
    "networkpolicy.networking.k8s.io/inngest-server",
    "networkpolicy.networking.k8s.io/app-inngest-server",
    "networkpolicy.networking.k8s.io/app-sync-inngest-server",
}
# The app's in-cluster Postgres: Cloud expects a managed database (its PVC stays, with the app's data).
STALE_DB = {
    "statefulset.apps/postgres",
    "service/postgres",
    "serviceaccount/postgres",
    "networkpolicy.networking.k8s.io/postgres",
    "networkpolicy.networking.k8s.io/app-postgres",
}
STALE_HA = (
    STALE_SERVER
    | STALE_DB
    | {
        "statefulset.apps/redis",
        "service/redis",
        "serviceaccount/redis",
        "poddisruptionbudget.policy/inngest",
        "networkpolicy.networking.k8s.io/postgres-from-inngest",
        "networkpolicy.networking.k8s.io/redis",
        "networkpolicy.networking.k8s.io/inngest-datastores",
        "configmap/app-db-sql",  # generated: name-<hash>
    }
)


@pytest.mark.parametrize(("source", "expected"), [("self-hosted", STALE_SERVER | STALE_DB), ("ha", STALE_HA)])
def test_prune_before_the_switch_to_cloud_deletes_every_old_object(
    source: str, expected: set[str], tmp_path: Path, rendered: dict[str, list[Doc]]
) -> None:
    run = make("k8s-prune", tmp_path, ARGS=f"FROM={source} OVERLAY=cloud")
    assert run.returncode == 0, run.stderr
    (delete,) = [c.split() for c in run.calls if c.startswith("delete")]
    names = {w for w in delete if "/" in w}
    assert {n.rsplit("-", 1)[0] if n.startswith("configmap/") else n for n in names} == expected
    # Complete: nothing of the old overlay but the PVCs, the Namespace and generated ConfigMaps survives.
    cloud = {(d["kind"], d["metadata"]["name"]) for d in rendered["cloud"]}
    for doc in rendered[source]:
        key = (doc["kind"], doc["metadata"]["name"])
        if key in cloud or doc["kind"] in ("PersistentVolumeClaim", "Namespace"):
            continue
        if doc["kind"] == "ConfigMap" and find(rendered["cloud"], "ConfigMap"):
            continue
        assert any(n.endswith("/" + key[1]) and n.startswith(key[0].lower()) for n in names), key


def test_prune_needs_from(tmp_path: Path) -> None:
    run = make("k8s-prune", tmp_path, ARGS="OVERLAY=cloud")
    assert run.returncode != 0 and "FROM=" in run.stderr
    assert not any(c.startswith("delete") for c in run.calls)
