# App image. The base is overridable so the same file builds on a locally made Debian
# bookworm base (python3 + python3-venv, no `python` binary): everything below only relies
# on `python3 -m venv` and then on the venv's own `python`.
ARG BASE_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

# --- build: resolve and install the pinned dependencies into a self-contained venv ---
FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
# The installer lives in a venv of its own, left behind in this stage: the runtime venv gets no
# pip or setuptools (22 MB the app never imports). `pip --python` (pip >= 22.3; both bases' ensurepip
# ship a newer one) runs the installer under the runtime venv's interpreter, so it installs there.
RUN python3 -m venv /opt/installer \
    && python3 -m venv --without-pip /opt/venv
# The pyproject pins every runtime dependency (all ship wheels: no compiler needed). pip also
# byte-compiles them here, since the runtime root fs is read-only.
COPY services/app /src/services/app
RUN /opt/installer/bin/pip --python /opt/venv/bin/python install --no-cache-dir /src/services/app

# --- runtime: same base, the venv copied in, nothing else ---
FROM ${BASE_IMAGE}
# No shell, no home, fixed uid so k8s runAsUser / file ownership checks are stable.
RUN groupadd --gid 10001 app \
    && useradd --no-log-init --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PORT=8000
# Read-only root fs: /tmp (metrics dir /tmp/app-metrics) is the only writable path.
# Compose mounts a tmpfs there; a plain `docker run --read-only` gets this anonymous volume.
VOLUME ["/tmp"]
# cwd stays `/` (not writable): `python -m` puts the cwd first on sys.path.
USER 10001:10001
# 8000: the API and the Inngest serve path; 9000: /metrics only (METRICS_PORT), for Prometheus alone.
EXPOSE 8000 9000
# Stdlib-only probe of /readyz (no curl in slim images); 503 while starting or draining.
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-m", "app.healthcheck"]
CMD ["python", "-m", "app"]
