# Test-only build of the pinned server image (tagged as docker-compose.yml pins it), laid out like
# upstream's Dockerfile.goreleaser: a Debian base with ca-certificates and tzdata, the binary (from
# scripts/inngest_bin.py) at /bin/inngest, CMD ["inngest"]. Upstream runs it as root; so does this.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/*
COPY inngest /bin/inngest
CMD ["inngest"]
