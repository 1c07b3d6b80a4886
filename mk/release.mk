# Release image: `make image` builds it locally, `make push` builds and pushes it to REGISTRY
# (.github/workflows/release.yml runs `make push` on a version tag, multi-arch, with SBOM + provenance).
IMAGE_NAME ?= fastapi-inngest-app
REGISTRY ?=
# The version from git: the tag without its `v` (1.2.3), else a describe string (1.2.3-4-gabc1234, or the
# short commit without tags); `-dirty` with uncommitted changes.
VERSION ?= $(patsubst v%,%,$(shell git describe --tags --always --dirty 2>/dev/null || echo unknown))
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
PLATFORMS ?= linux/amd64,linux/arm64
IMAGE_METADATA ?= .cache/image-metadata.json
SOURCE ?= $(shell git remote get-url origin 2>/dev/null | sed 's/\.git$$//')
IMAGE = $(if $(REGISTRY),$(REGISTRY)/)$(IMAGE_NAME):$(VERSION)
# OCI annotations on the image config (visible in `docker inspect` and the registry).
OCI_LABELS = \
	--label org.opencontainers.image.title=$(IMAGE_NAME) \
	--label org.opencontainers.image.version=$(VERSION) \
	--label org.opencontainers.image.revision=$(REVISION) \
	--label org.opencontainers.image.created=$(shell date -u +%Y-%m-%dT%H:%M:%SZ) \
	$(if $(SOURCE),--label org.opencontainers.image.source=$(SOURCE))
BUILDX = docker buildx build $(OCI_LABELS) -t $(IMAGE) -f Dockerfile .

.PHONY: image push

image: ## Build the app image with buildx for this machine (OCI labels, VERSION from git): docker load'ed
	$(BUILDX) --load

push: ## Build for PLATFORMS and push to REGISTRY (e.g. REGISTRY=ghcr.io/acme), with SBOM + provenance
	@test -n "$(REGISTRY)" || { echo "make push: set REGISTRY, e.g. make push REGISTRY=ghcr.io/acme" >&2; exit 2; }
	@mkdir -p $(dir $(IMAGE_METADATA))
	$(BUILDX) --platform $(PLATFORMS) --sbom=true --provenance=mode=max --metadata-file $(IMAGE_METADATA) --push
