# Test-only image of the Inngest stand-in (tests/standin), used in place of inngest/inngest by the
# container tests (compose.hostnet.yml). It needs python3 with starlette, uvicorn and httpx: the app
# image's venv has exactly these, so it is built FROM the app image (no second pip install, no
# network) and only adds the stand-in's modules. Nothing of the app runs in it.
ARG APP_IMAGE
FROM ${APP_IMAGE}
COPY tests/standin/ /srv/tests/standin/
WORKDIR /srv
USER 65534:65534
# The app's /readyz probe does not apply; compose.hostnet.yml probes the stand-in's /health.
HEALTHCHECK NONE
CMD ["python", "-m", "tests.standin", "--help"]
