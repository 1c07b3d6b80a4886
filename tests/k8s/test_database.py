"""The app's database in every overlay: DATABASE_URL from the Secret, migrations before the app serves."""

from __future__ import annotations

import secrets
import subprocess

from app.migrate import head
from tests.k8s.conftest import Doc, app_config, one
from tests.standin.fixtures import PYTHON
from tests.support import ROOT
from tests.support.postgres import PostgresServer


def _pod(docs: list[Doc]) -> Doc:
    spec: Doc = one(docs, "Deployment", "app")["spec"]["template"]["spec"]
    return spec


def test_database_url_comes_from_the_secret_and_migrate_runs_first(overlay: tuple[str, list[Doc]]) -> None:
    _, docs = overlay
    pod = _pod(docs)
    (app,) = pod["containers"]
    (url,) = [e for e in app["env"] if e["name"] == "DATABASE_URL"]
    assert url["valueFrom"]["secretKeyRef"]["name"] == "inngest-keys"
    assert url["valueFrom"]["secretKeyRef"]["key"] == "DATABASE_URL"
    assert "DATABASE_URL" not in app_config(docs)  # never in a ConfigMap: it carries the password
    (migrate,) = [c for c in pod["initContainers"] if c["name"] == "migrate"]
    assert migrate["command"] == ["python", "-m", "app", "migrate"] and migrate["image"] == app["image"]
    assert {"name": "inngest-keys"} in [e.get("secretRef") for e in migrate["envFrom"]]
    assert [m["mountPath"] for m in migrate["volumeMounts"]] == ["/tmp"]  # read-only root fs otherwise


def test_the_init_container_migrates_a_real_database(overlay: tuple[str, list[Doc]], postgres: PostgresServer) -> None:
    """The init container's command with the overlay's ConfigMap and a Secret as the README creates it."""
    name, docs = overlay
    database = f"k8s_{name.replace('-', '_')}_{secrets.token_hex(3)}"
    postgres.create_database(database)
    secret = {
        "INNGEST_SIGNING_KEY": secrets.token_hex(32),
        "INNGEST_EVENT_KEY": secrets.token_hex(16),
        "DATABASE_URL": postgres.dsn(database),
    }
    (migrate,) = [c for c in _pod(docs)["initContainers"] if c["name"] == "migrate"]
    env = {"PATH": "/usr/bin:/bin", **app_config(docs), **secret}
    runs = [
        subprocess.run(
            [PYTHON, *migrate["command"][1:]], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        for _ in range(2)  # a second pod's init container
    ]
    assert [r.returncode for r in runs] == [0, 0], [r.stderr for r in runs]
    assert runs[0].stdout.strip() == f"migrate: schema at {head()} (was empty)"
    assert runs[1].stdout.strip() == f"migrate: schema at {head()} (already up to date)"
