# Kubernetes: kustomize overlays in deploy/k8s/overlays/{self-hosted,ha,cloud}.
KUBECTL ?= kubectl
OVERLAY ?= self-hosted
K8S_OVERLAYS := self-hosted ha cloud
K8S_DIR := deploy/k8s/overlays/$(OVERLAY)
K8S_NAMESPACE ?= fastapi-inngest
K8S_ROLLOUT_TIMEOUT ?= 10m
# Overlay deployed before, for k8s-prune (e.g. FROM=ha OVERLAY=cloud).
FROM ?=

# checkov pins dozens of packages of its own: it gets a separate virtualenv.
CHECKOV_VERSION := 3.3.30
VENV_CHECKOV := .venv-checkov
CHECKOV := $(VENV_CHECKOV)/bin/checkov

.PHONY: k8s-render k8s-apply k8s-prune k8s-apiserver-bin k8s-apiserver-test k8s-sync-monitoring k8s-checkov checkov-venv

k8s-render: ## Print the manifests of OVERLAY=self-hosted|ha|cloud
	@test -d $(K8S_DIR) || { echo "unknown OVERLAY=$(OVERLAY) (one of: $(K8S_OVERLAYS))" >&2; exit 2; }
	@$(KUBECTL) kustomize $(K8S_DIR)

# Apply all but the sync Job, wait for the rollout, then run a fresh sync Job and watch it until it
# completes or fails (with its logs): scripts/k8s_apply.sh says why each step is where it is.
k8s-apply: ## kubectl apply -k OVERLAY=... to the current context, then wait for the verified sync
	@test -d $(K8S_DIR) || { echo "unknown OVERLAY=$(OVERLAY) (one of: $(K8S_OVERLAYS))" >&2; exit 2; }
	KUBECTL="$(KUBECTL)" ROLLOUT_TIMEOUT=$(K8S_ROLLOUT_TIMEOUT) scripts/k8s_apply.sh $(K8S_NAMESPACE) $(K8S_DIR)

# The venv only for PyYAML: order-only, so a newer requirements file does not reinstall it mid-switch.
k8s-prune: | $(VENV)/.installed ## Delete what overlay FROM=... has and OVERLAY=... has not (PVCs kept)
	@test -d $(K8S_DIR) || { echo "unknown OVERLAY=$(OVERLAY) (one of: $(K8S_OVERLAYS))" >&2; exit 2; }
	@test -n "$(FROM)" -a -d deploy/k8s/overlays/$(FROM) || { echo "FROM=<the overlay deployed now> (one of: $(K8S_OVERLAYS))" >&2; exit 2; }
	@stale=$$(KUBECTL="$(KUBECTL)" $(PY) scripts/k8s_stale.py deploy/k8s/overlays/$(FROM) $(K8S_DIR)) && \
	  if [ -n "$$stale" ]; then $(KUBECTL) -n $(K8S_NAMESPACE) delete --ignore-not-found $$stale; fi

k8s-apiserver-bin: ## Print the path of kube-apiserver at the pinned release (built once with Go)
	@$(PYTHON) scripts/kube_apiserver_bin.py

# Not part of `make test`: a cold kube-apiserver build takes longer than its share of the CI budget
# (figures in deploy/k8s/README.md). Needs Go, etcd (Debian etcd-server) and openssl.
k8s-apiserver-test: venv ## Apply every overlay to a real kube-apiserver + etcd (server-side, admission, re-apply)
	@PATH="$$PATH:/usr/local/go/bin" $(PYTHON) scripts/kube_apiserver_bin.py >/dev/null
	$(PY) -m pytest -m apiserver tests/k8s/test_apiserver.py $(PYTEST_ARGS)

k8s-sync-monitoring: $(VENV)/.installed ## Copy the compose alert rules + Grafana dashboards into deploy/k8s
	$(PY) deploy/k8s/sync_monitoring.py

$(VENV_CHECKOV)/.installed: mk/k8s.mk
	test -x $(VENV_CHECKOV)/bin/python || $(PYTHON) -m venv $(VENV_CHECKOV)
	$(VENV_CHECKOV)/bin/python -m pip install -q --upgrade pip
	$(VENV_CHECKOV)/bin/python -m pip install -q checkov==$(CHECKOV_VERSION)
	touch $@

checkov-venv: $(VENV_CHECKOV)/.installed ## Create .venv-checkov (pinned checkov, used by tests/k8s)

k8s-checkov: checkov-venv ## checkov on every rendered overlay and the Dockerfile (config: .checkov.yaml)
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	for o in $(K8S_OVERLAYS); do $(KUBECTL) kustomize deploy/k8s/overlays/$$o > "$$tmp/$$o.yaml" || exit 1; done && \
	$(CHECKOV) --config-file .checkov.yaml --framework kubernetes -d "$$tmp" && \
	$(CHECKOV) --config-file .checkov.yaml --framework dockerfile -f Dockerfile
