"""The app's database in every overlay: DATABASE_URL from the Secret, migrations before the app serves."""

from __future__ import annotations

import secrets
import socket
import subprocess
import time
from pathlib import Path

from app.migrate import head
from tests.k8s.conftest import Doc, app_config, find, load_compose, one
from tests.standin.fixtures import PYTHON
from tests.support import ROOT
from tests.support.postgres import PostgresServer, postgres_bindir, postgres_server
from tests.support.process import clean_env


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
    env = {**clean_env(), **app_config(docs), **secret}
    runs = [
        subprocess.run(
            [PYTHON, *migrate["command"][1:]], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        for _ in range(2)  # a second pod's init container
    ]
    assert [r.returncode for r in runs] == [0, 0], [r.stderr for r in runs]
    assert runs[0].stdout.strip() == f"migrate: schema at {head()} (was empty)"
    assert runs[1].stdout.strip() == f"migrate: schema at {head()} (already up to date)"


# The overlays that run the app's PostgreSQL in the cluster (components/postgres); cloud expects a managed one.
IN_CLUSTER = ("self-hosted", "ha")


def _postgres(docs: list[Doc]) -> tuple[Doc, Doc]:
    """(pod spec, container) of the Postgres StatefulSet."""
    spec: Doc = one(docs, "StatefulSet", "postgres")["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    return spec, container


def _env(container: Doc) -> dict[str, Doc]:
    return {e["name"]: e for e in container["env"]}


def _secret_key(env: Doc) -> str:
    ref = env["valueFrom"]["secretKeyRef"]
    assert ref["name"] == "inngest-keys" and not ref.get("optional")
    key: str = ref["key"]
    return key


def test_self_hosted_runs_the_apps_own_postgres_as_compose_does(rendered: dict[str, list[Doc]]) -> None:
    """Superuser and database `app`, the password from the Secret, probes as that user, a PVC."""
    docs = rendered["self-hosted"]
    statefulset = one(docs, "StatefulSet", "postgres")
    spec, postgres = _postgres(docs)
    env = _env(postgres)
    assert env["POSTGRES_USER"]["value"] == env["POSTGRES_DB"]["value"] == "app"
    assert _secret_key(env["POSTGRES_PASSWORD"]) == "APP_DB_PASSWORD"
    assert (env["PGUSER"]["value"], env["PGDATABASE"]["value"]) == ("$(POSTGRES_USER)", "$(POSTGRES_DB)")
    for probe in ("startupProbe", "readinessProbe"):
        assert postgres[probe]["exec"]["command"] == ["pg_isready", "-h", "127.0.0.1"]
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["metadata"] == {"name": "data"} and claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
    assert {"name": "data", "mountPath": "/var/lib/postgresql/data"} in postgres["volumeMounts"]
    assert (spec["securityContext"]["runAsUser"], postgres["securityContext"]["runAsUser"]) == (70, 70)
    assert postgres["image"] == load_compose("docker-compose.yml")["services"]["db"]["image"]  # one pin
    service = one(docs, "Service", "postgres")
    assert [p["port"] for p in service["spec"]["ports"]] == [5432]
    assert not find(rendered["cloud"], "StatefulSet", "postgres")


def test_ha_shares_the_server_with_the_app_as_a_separate_user(rendered: dict[str, list[Doc]]) -> None:
    """Inngest's superuser and database; the app's user and database from compose's app-db.sql, run by a hook."""
    docs = rendered["ha"]
    spec, postgres = _postgres(docs)
    env = _env(postgres)
    assert env["POSTGRES_USER"]["value"] == env["POSTGRES_DB"]["value"] == "inngest"
    assert _secret_key(env["POSTGRES_PASSWORD"]) == _secret_key(env["PGPASSWORD"]) == "POSTGRES_PASSWORD"
    assert _secret_key(env["APP_DB_PASSWORD"]) == "APP_DB_PASSWORD"
    hook = postgres["lifecycle"]["postStart"]["exec"]["command"][-1]
    assert '-v pw="$APP_DB_PASSWORD" -f /init/app-db.sql' in hook
    (mount,) = [m for m in postgres["volumeMounts"] if m["mountPath"] == "/init"]
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    sql = one(docs, "ConfigMap", volume["configMap"]["name"])["data"]["app-db.sql"]
    assert sql.endswith((ROOT / "deploy/compose/postgres/app-db.sql").read_text())  # one script, copied


def test_ha_hook_creates_the_apps_user_and_database_on_a_real_postgres(
    rendered: dict[str, list[Doc]], tmp_path: Path
) -> None:
    """The rendered hook with the rendered script, twice (every server start; the second rotates the
    password): the app then migrates its own database as its own user."""
    docs = rendered["ha"]
    spec, postgres = _postgres(docs)
    (volume,) = [v for v in spec["volumes"] if v["name"] == "app-db-sql"]
    (tmp_path / "app-db.sql").write_text(one(docs, "ConfigMap", volume["configMap"]["name"])["data"]["app-db.sql"])
    hook = postgres["lifecycle"]["postStart"]["exec"]["command"]
    hook = [*hook[:-1], hook[-1].replace("/init/", f"{tmp_path}/")]
    with postgres_server() as pg:
        pg.create_database("inngest")
        for password in ("first-pw", "rotated-pw"):
            # The test server's superuser stands in for the image's (POSTGRES_USER=inngest).
            env = {"PATH": f"{postgres_bindir()}:/usr/bin:/bin", "PGPORT": str(pg.port), "PGUSER": "postgres"}
            env |= {"PGDATABASE": "inngest", "PGPASSWORD": pg.password, "APP_DB_PASSWORD": password}
            run = subprocess.run(hook, env=env, capture_output=True, text=True, timeout=120, check=False)
            assert run.returncode == 0, run.stderr
        keys = {"INNGEST_SIGNING_KEY": secrets.token_hex(32), "INNGEST_EVENT_KEY": secrets.token_hex(16)}
        url = pg.dsn("app", user="app", password="rotated-pw")
        migrate = subprocess.run(
            [PYTHON, "-m", "app", "migrate"],
            env={**clean_env(), **app_config(docs), **keys, "DATABASE_URL": url},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert migrate.returncode == 0, migrate.stderr
        assert migrate.stdout.strip() == f"migrate: schema at {head()} (was empty)"


def test_migrate_waits_for_the_in_cluster_database(overlay: tuple[str, list[Doc]]) -> None:
    """Where the overlay runs Postgres: wait for its Service, then migrate, and DATABASE_URL is required
    (no silent per-pod SQLite). Cloud: the managed database is the operator's, the key optional."""
    name, docs = overlay
    pod = _pod(docs)
    (url,) = [e for e in pod["containers"][0]["env"] if e["name"] == "DATABASE_URL"]
    names = [c["name"] for c in pod["initContainers"]]
    if name in IN_CLUSTER:
        assert names == ["wait-for-db", "migrate"]
        assert url["valueFrom"]["secretKeyRef"]["optional"] is False
        (wait,) = [c for c in pod["initContainers"] if c["name"] == "wait-for-db"]
        assert '("postgres", 5432)' in wait["command"][-1]
    else:
        assert names == ["migrate"]
        assert url["valueFrom"]["secretKeyRef"]["optional"] is True


def test_wait_for_db_loops_until_postgres_accepts(rendered: dict[str, list[Doc]], tmp_path: Path) -> None:
    """The init container's loop, pointed at a loopback port that starts listening 3 s later."""
    (wait,) = [c for c in _pod(rendered["self-hosted"])["initContainers"] if c["name"] == "wait-for-db"]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    script = wait["command"][-1].replace('("postgres", 5432)', f'("127.0.0.1", {port})')
    (tmp_path / "python").symlink_to(PYTHON)
    started = time.monotonic()
    proc = subprocess.Popen([*wait["command"][:-1], script], env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
    try:
        time.sleep(3)
        assert proc.poll() is None, "returned before anything listened"
        listener.listen()
        assert proc.wait(timeout=15) == 0
    finally:
        proc.kill()
        listener.close()
    assert time.monotonic() - started >= 3
