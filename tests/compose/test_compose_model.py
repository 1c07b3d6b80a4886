"""The compose files, rendered by the real Compose v2 binary, checked against the app's contract."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.compose.compose_support import MODES, ROOT, TEST_ENV, container_env, load_yaml

COMPOSE_FILES = [ROOT / "docker-compose.yml", *sorted((ROOT / "deploy" / "compose").glob("*.yml"))]
WITH_SERVER = ("base", "dev", "ha")
SECRETISH = re.compile(r"KEY|PASSWORD|SECRET|TOKEN|_URI$|AUTH")


def _settings() -> Any:
    return pytest.importorskip("app.settings", reason="the app package is not installed (make venv)")


def sdk_url(service: dict[str, Any]) -> str:
    cmd = service["command"]
    for flag in ("--sdk-url", "-u"):
        if flag in cmd:
            return str(cmd[cmd.index(flag) + 1])
    raise AssertionError(f"no --sdk-url in {cmd}")


@pytest.mark.parametrize("mode", MODES)
def test_config_quiet(run_compose: Callable[..., subprocess.CompletedProcess[str]], mode: str) -> None:
    proc = run_compose(mode, "config", "--quiet")
    assert proc.returncode == 0 and not proc.stderr, proc.stderr  # warnings count as failures too


def test_missing_keys_fail_fast_with_a_hint(run_compose: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    proc = run_compose("base", "config", "--quiet", env_path=None)
    assert proc.returncode != 0
    assert "run make up to create .env" in proc.stderr


@pytest.mark.parametrize("mode", WITH_SERVER)
def test_start_order(rendered: dict[str, dict[str, Any]], mode: str) -> None:
    services = rendered[mode]["services"]
    assert services["inngest"]["depends_on"]["app"]["condition"] == "service_healthy"
    sync = services["sync"]
    assert {k: v["condition"] for k, v in sync["depends_on"].items()} == {
        "app": "service_healthy",
        "inngest": "service_healthy",
    }
    assert sync["restart"] == "no"
    assert sync["command"] == ["python", "-m", "app", "sync"]
    assert sync["image"] == services["app"]["image"]
    for name, svc in services.items():
        if svc.get("restart") != "no":  # every long-running service; the one-shot jobs exit
            assert "test" in svc.get("healthcheck", {}), f"{name} has no health check"


@pytest.mark.parametrize("mode", MODES)
def test_the_database_is_healthy_and_migrated_before_the_app_starts(
    rendered: dict[str, dict[str, Any]], mode: str
) -> None:
    services = rendered[mode]["services"]
    app, migrate = services["app"], services["migrate"]
    assert app["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert migrate["command"] == ["python", "-m", "app", "migrate"] and migrate["restart"] == "no"
    assert migrate["image"] == app["image"]
    assert migrate["environment"]["DATABASE_URL"] == app["environment"]["DATABASE_URL"]
    # db (or, in ha, the server it shares with Inngest under the alias `db`) healthy -> migrate.
    (first,) = migrate["depends_on"]
    server = "postgres" if mode == "ha" else "db"
    if mode == "ha":
        assert first == "app-db-init" and migrate["depends_on"][first]["condition"] == "service_completed_successfully"
        assert services[first]["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert "db" not in services and services["postgres"]["networks"]["default"]["aliases"] == ["db"]
    else:
        assert first == "db" and migrate["depends_on"]["db"]["condition"] == "service_healthy"
        assert services["db"]["volumes"][0]["source"] == "app-db-data"
        assert services["db"]["environment"]["POSTGRES_PASSWORD"] == TEST_ENV["APP_DB_PASSWORD"]
    assert services[server]["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert "ports" not in services[server]  # never published
    url = app["environment"]["DATABASE_URL"]
    assert url == f"postgresql://app:{TEST_ENV['APP_DB_PASSWORD']}@db:5432/app"


def test_ha_gives_the_app_its_own_user_and_database_on_the_shared_server(rendered: dict[str, dict[str, Any]]) -> None:
    services = rendered["ha"]["services"]
    init = services["app-db-init"]
    # The same image as the server and the app's `db`: one pin, in docker-compose.yml's x-postgres-image.
    assert init["image"] == services["postgres"]["image"] == rendered["base"]["services"]["db"]["image"]
    assert init["environment"]["PGHOST"] == "postgres" and init["environment"]["PGUSER"] == "inngest"
    assert init["environment"]["APP_DB_PASSWORD"] == TEST_ENV["APP_DB_PASSWORD"]
    assert "POSTGRES_PASSWORD" not in init["environment"]  # nothing of the app's own `db` leaks in
    assert "healthcheck" not in init or not init["healthcheck"].get("test")
    sql = (ROOT / "deploy/compose/postgres/app-db.sql").read_text()
    assert "CREATE ROLE app" in sql and "CREATE DATABASE app OWNER app" in sql


def test_ha_server_waits_for_its_stores(rendered: dict[str, dict[str, Any]]) -> None:
    services = rendered["ha"]["services"]
    deps = services["inngest"]["depends_on"]
    for store in ("postgres", "redis"):
        assert deps[store]["condition"] == "service_healthy"
        assert services[store]["healthcheck"]["test"]
    env = services["inngest"]["environment"]
    assert env["INNGEST_POSTGRES_URI"].startswith("postgres://") and "@postgres:5432/" in env["INNGEST_POSTGRES_URI"]
    assert env["INNGEST_REDIS_URI"].startswith("redis://") and "@redis:6379" in env["INNGEST_REDIS_URI"]
    assert "INNGEST_SQLITE_DIR" not in env
    assert not services["inngest"].get("volumes")


def test_dev_runs_the_dev_server_and_the_app_in_dev_mode(rendered: dict[str, dict[str, Any]]) -> None:
    services = rendered["dev"]["services"]
    assert services["inngest"]["command"][:2] == ["inngest", "dev"]
    assert "--no-discovery" in services["inngest"]["command"]
    for name in ("app", "sync"):
        assert services[name]["environment"]["INNGEST_MODE"] == "dev"
        assert services[name]["working_dir"] == "/src"
    assert "--reload" in services["app"]["command"]


def test_cloud_has_no_local_server(rendered: dict[str, dict[str, Any]]) -> None:
    model = rendered["cloud"]
    assert "inngest" not in model["services"]
    assert "inngest-data" not in model.get("volumes", {})
    for name in ("app", "sync"):
        env = model["services"][name]["environment"]
        assert env["INNGEST_MODE"] == "cloud"
        assert "INNGEST_BASE_URL" not in env
        keys = container_env(model, name)
        assert Path(keys["INNGEST_SIGNING_KEY_FILE"]).read_text() == TEST_ENV["INNGEST_CLOUD_SIGNING_KEY"]
        assert Path(keys["INNGEST_EVENT_KEY_FILE"]).read_text() == TEST_ENV["INNGEST_CLOUD_EVENT_KEY"]
        assert env["INNGEST_SERVE_ORIGIN"] == TEST_ENV["INNGEST_CLOUD_SERVE_ORIGIN"]
    assert set(model["services"]["sync"]["depends_on"]) == {"app"}


@pytest.mark.parametrize("mode", MODES)
def test_images_are_pinned(rendered: dict[str, dict[str, Any]], mode: str) -> None:
    services = rendered[mode]["services"]
    built = {svc["image"] for svc in services.values() if "build" in svc}
    for name, svc in services.items():
        image = svc["image"]
        repo, _, tag = image.rpartition(":") if "@" not in image else (image, "", "digest")
        assert repo and tag and "/" not in tag, f"{name}: untagged image {image}"
        assert tag != "latest", f"{name}: {image}"
        if image not in built:  # pulled images: a concrete version, not a moving major tag
            assert re.search(r"\d+\.\d+", tag), f"{name}: {image} is not pinned to a release"


def test_inngest_version_defined_once() -> None:
    base = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert re.fullmatch(r"inngest/inngest:v\d+\.\d+\.\d+", base["x-inngest-image"])
    mentions = sum(f.read_text().count("inngest/inngest:") for f in COMPOSE_FILES)
    assert mentions == 1, "the Inngest image must be defined exactly once (x-inngest-image)"


@pytest.mark.parametrize("mode", MODES)
def test_published_ports_are_loopback_only(rendered: dict[str, dict[str, Any]], mode: str) -> None:
    published = {}
    for name, svc in rendered[mode]["services"].items():
        for port in svc.get("ports", []):
            assert port.get("host_ip") == "127.0.0.1", f"{name} publishes {port} beyond loopback"
            published[int(port["target"])] = name
    if mode in WITH_SERVER:
        assert published.get(8288) == "inngest"
        assert 8289 not in published


def test_no_secret_literals_in_compose_files() -> None:
    """Every secret-looking value in the files is an interpolation; no long hex/base64 literals."""
    for path in COMPOSE_FILES:
        text = path.read_text()
        assert not re.search(r"\b[0-9a-fA-F]{24,}\b", text), f"{path}: hex literal"
        assert "signkey-" not in text.replace("signkey-prod-...", ""), f"{path}: signing key literal"
        for svc in (load_yaml(path).get("services") or {}).values():
            for key, value in ((svc or {}).get("environment") or {}).items():
                if SECRETISH.search(key) and value is not None:
                    # A path under /run/secrets names a compose secret (a file), not a value.
                    assert "${" in str(value) or str(value).startswith("/run/secrets/"), f"{path}: {key} is a literal"


@pytest.mark.parametrize("mode", MODES)
def test_secrets_come_from_the_env_file(rendered: dict[str, dict[str, Any]], mode: str) -> None:
    """Each secret-looking variable carries a value of the env file, directly or in the file it names."""
    sentinels = set(TEST_ENV.values())
    for name in rendered[mode]["services"]:
        for key, value in container_env(rendered[mode], name).items():
            if key.endswith("_FILE") or key == "INNGEST_CONFIG":
                value = Path(value).read_text()
            if SECRETISH.search(key) and key != "INNGEST_EXPERIMENTAL_PROM_METRICS":
                assert any(s in value for s in sentinels), f"{mode}/{name}: {key}={value}"


KEYS = (
    "INNGEST_SIGNING_KEY",
    "INNGEST_EVENT_KEY",
    "EVENT_API_KEYS",
    "INNGEST_CLOUD_SIGNING_KEY",
    "INNGEST_CLOUD_EVENT_KEY",
)


@pytest.mark.parametrize("mode", MODES)
def test_keys_are_files_never_environment_values(rendered: dict[str, dict[str, Any]], mode: str) -> None:
    keys = {TEST_ENV[name] for name in KEYS}
    for name, svc in rendered[mode]["services"].items():
        env = {k: str(v) for k, v in (svc.get("environment") or {}).items()}
        assert not [k for k, v in env.items() if any(key in v for key in keys)], f"{mode}/{name}: {env}"
    for name in ("app", "sync", "migrate"):
        env = container_env(rendered[mode], name)
        assert Path(env["INNGEST_SIGNING_KEY_FILE"]).is_file() and Path(env["INNGEST_EVENT_KEY_FILE"]).is_file()
    assert Path(container_env(rendered[mode], "app")["EVENT_API_KEYS_FILE"]).read_text() == TEST_ENV["EVENT_API_KEYS"]
    if mode != "cloud":
        # `inngest start` reads its keys from its config file (it has no *_FILE variables).
        config = json.loads(Path(container_env(rendered[mode], "inngest")["INNGEST_CONFIG"]).read_text())
        assert config == {"signing-key": TEST_ENV["INNGEST_SIGNING_KEY"], "event-key": [TEST_ENV["INNGEST_EVENT_KEY"]]}


def test_app_healthcheck_matches_the_dockerfile(
    rendered: dict[str, dict[str, Any]], dockerfile_healthcheck: list[str]
) -> None:
    test = rendered["base"]["services"]["app"]["healthcheck"]["test"]
    assert test[0] == "CMD"
    assert test[1:] == dockerfile_healthcheck


@pytest.mark.parametrize("mode", MODES)
def test_app_env_is_known_to_the_settings_model(rendered: dict[str, dict[str, Any]], mode: str) -> None:
    known = _settings().known_env_vars()
    for name in ("app", "sync"):
        env = rendered[mode]["services"][name]["environment"]
        unknown = set(env) - known
        assert not unknown, f"{mode}/{name}: variables the app does not read: {sorted(unknown)}"


@pytest.mark.parametrize("mode", MODES)
def test_app_env_is_valid_for_the_settings_model(
    rendered: dict[str, dict[str, Any]], mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exact environment compose gives the app passes the app's own validation."""
    settings = _settings()
    for name in settings.known_env_vars():
        monkeypatch.delenv(name, raising=False)
    for key, value in container_env(rendered[mode], "app").items():
        monkeypatch.setenv(key, value)
    s = settings.load_settings()
    assert s.inngest_mode.value == {"base": "self-hosted", "ha": "self-hosted"}.get(mode, mode)


@pytest.mark.parametrize("mode", WITH_SERVER)
def test_server_calls_the_app_where_it_serves(rendered: dict[str, dict[str, Any]], mode: str) -> None:
    settings = _settings()
    services = rendered[mode]["services"]
    env = services["app"]["environment"]
    defaults = settings.Settings.model_fields
    port = int(env.get("PORT", defaults["port"].default))
    path = env.get("INNGEST_SERVE_PATH", defaults["inngest_serve_path"].default)

    url = urlsplit(sdk_url(services["inngest"]))
    assert (url.scheme, url.hostname, url.port, url.path) == ("http", "app", port, path)
    assert env["INNGEST_SERVE_ORIGIN"] == f"http://app:{port}"
    assert env.get("INNGEST_BASE_URL") == "http://inngest:8288"
    # Uvicorn in the dev override listens on the same port.
    cmd = services["app"].get("command") or []
    if "--port" in cmd:
        assert int(cmd[cmd.index("--port") + 1]) == port


def test_prometheus_scrapes_the_app_metrics_port_which_is_never_published(rendered: dict[str, dict[str, Any]]) -> None:
    config = yaml.safe_load((ROOT / "deploy" / "compose" / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for mode, model in rendered.items():
        app = model["services"]["app"]
        port = int(app["environment"]["METRICS_PORT"])
        assert port != int(app["environment"].get("PORT", 8000))
        assert jobs["app"]["static_configs"][0]["targets"] == [f"app:{port}"]
        assert [p["target"] for p in app["ports"]] == [8000], mode  # the host sees the API port only
    assert jobs["inngest"]["dns_sd_configs"][0]["port"] == 8288
    assert rendered["base"]["services"]["inngest"]["environment"]["INNGEST_EXPERIMENTAL_PROM_METRICS"] == "1"


def test_env_example_documents_every_variable() -> None:
    example = (ROOT / ".env.example").read_text()
    used = set()
    for path in COMPOSE_FILES:
        used |= set(re.findall(r"\$\{([A-Z0-9_]+)", path.read_text()))
    missing = {v for v in used if not re.search(rf"^#? ?{v}=", example, re.M)}
    assert not missing, f".env.example lacks {sorted(missing)}"


def test_override_files_do_not_copy_the_base() -> None:
    base = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for path in sorted((ROOT / "deploy" / "compose").glob("*.yml")):
        override = load_yaml(path) or {}
        for name, svc in (override.get("services") or {}).items():
            for key, value in (svc or {}).items():
                if name in base and key in base[name] and key != "environment":
                    assert value != base[name][key], f"{path.name}: {name}.{key} repeats the base"


def test_grafana_profile(run_compose: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    proc = run_compose("base", "--profile", "monitoring", "config", "--format", "json")
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    grafana = json.loads(proc.stdout)["services"]["grafana"]
    assert grafana["depends_on"]["prometheus"]["condition"] == "service_healthy"
    assert [p["host_ip"] for p in grafana["ports"]] == ["127.0.0.1"]
    targets = {v["target"]: v for v in grafana["volumes"]}
    assert targets["/etc/grafana/provisioning"]["source"].endswith("deploy/compose/grafana/provisioning")
    assert targets["/etc/grafana/dashboards"]["read_only"] is True
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == TEST_ENV["GRAFANA_ADMIN_PASSWORD"]
