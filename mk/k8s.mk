# Kubernetes: kustomize overlays in deploy/k8s/overlays/{self-hosted,ha,cloud}.
KUBECTL ?= kubectl
OVERLAY ?= self-hosted
K8S_OVERLAYS := self-hosted ha cloud
K8S_DIR := deploy/k8s/overlays/$(OVERLAY)
K8S_NAMESPACE ?= fastapi-inngest
K8S_SYNC_TIMEOUT ?= 10m

# checkov pins dozens of packages of its own: it gets a separate virtualenv.
CHECKOV_VERSION := 3.3.30
VENV_CHECKOV := .venv-checkov
CHECKOV := $(VENV_CHECKOV)/bin/checkov

.PHONY: k8s-render k8s-apply k8s-sync-monitoring k8s-checkov checkov-venv

k8s-render: ## Print the manifests of OVERLAY=self-hosted|ha|cloud
	@test -d $(K8S_DIR) || { echo "unknown OVERLAY=$(OVERLAY) (one of: $(K8S_OVERLAYS))" >&2; exit 2; }
	@$(KUBECTL) kustomize $(K8S_DIR)

# Jobs are immutable and the server never re-syncs a healthy app: drop the previous sync Job so
# this deploy runs (and verifies) a fresh sync, then wait for it.
k8s-apply: ## kubectl apply -k OVERLAY=... to the current context, then wait for the verified sync
	@test -d $(K8S_DIR) || { echo "unknown OVERLAY=$(OVERLAY) (one of: $(K8S_OVERLAYS))" >&2; exit 2; }
	$(KUBECTL) -n $(K8S_NAMESPACE) delete job app-sync --ignore-not-found
	$(KUBECTL) apply -k $(K8S_DIR)
	$(KUBECTL) -n $(K8S_NAMESPACE) wait --for=condition=complete --timeout=$(K8S_SYNC_TIMEOUT) job/app-sync \
	  || { $(KUBECTL) -n $(K8S_NAMESPACE) logs job/app-sync --all-containers --tail=20; exit 1; }

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
