"""Every bad configuration stops the start with its own line, exit code 2 and no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.settings import ConfigError, Mode, bare_signing_key, known_env_vars, load_settings

from .conftest import EVENT_KEY, SIGNING_KEY

GOOD_SELF_HOSTED = {
    "INNGEST_MODE": "self-hosted",
    "INNGEST_BASE_URL": "http://inngest:8288",
    "INNGEST_SIGNING_KEY": SIGNING_KEY,
    "INNGEST_EVENT_KEY": EVENT_KEY,
    "INNGEST_SERVE_ORIGIN": "http://app:8000",
}
GOOD_CLOUD = {
    "INNGEST_MODE": "cloud",
    "INNGEST_SIGNING_KEY": "signkey-prod-" + SIGNING_KEY,
    "INNGEST_EVENT_KEY": EVENT_KEY,
    "INNGEST_SERVE_ORIGIN": "https://api.example.com",
}

BAD = [
    pytest.param({}, ["INNGEST_SIGNING_KEY: required in cloud mode", "INNGEST_EVENT_KEY: required"], id="nothing-set"),
    pytest.param({"INNGEST_MODE": "prod"}, ["INNGEST_MODE: must be one of dev, self-hosted, cloud"], id="unknown-mode"),
    pytest.param(
        GOOD_SELF_HOSTED | {"INNGEST_SIGNING_KEY": ""}, ["INNGEST_SIGNING_KEY: required in self-hosted"], id="no-key"
    ),
    pytest.param(
        GOOD_SELF_HOSTED | {"INNGEST_SIGNING_KEY": "abc"}, ["INNGEST_SIGNING_KEY: must be even-length hex"], id="odd"
    ),
    pytest.param(
        GOOD_SELF_HOSTED | {"INNGEST_SIGNING_KEY": "zz" * 16},
        ["INNGEST_SIGNING_KEY: must be even-length hex"],
        id="non-hex",
    ),
    pytest.param(
        GOOD_CLOUD | {"INNGEST_SIGNING_KEY_FALLBACK": "signkey-prod-xyz"},
        ["INNGEST_SIGNING_KEY_FALLBACK: must be even-length hex"],
        id="bad-fallback",
    ),
    pytest.param(GOOD_SELF_HOSTED | {"INNGEST_EVENT_KEY": ""}, ["INNGEST_EVENT_KEY: required"], id="no-event-key"),
    pytest.param(
        GOOD_SELF_HOSTED | {"INNGEST_BASE_URL": ""}, ["INNGEST_BASE_URL: required in self-hosted"], id="no-base"
    ),
    pytest.param(
        GOOD_SELF_HOSTED | {"INNGEST_BASE_URL": "inngest:8288"},
        ["INNGEST_BASE_URL: must be an http(s) URL"],
        id="base-scheme",
    ),
    pytest.param(
        GOOD_CLOUD | {"INNGEST_BASE_URL": "http://inngest:8288"},
        ["INNGEST_BASE_URL: must not be set in cloud"],
        id="base-cloud",
    ),
    pytest.param(
        GOOD_SELF_HOSTED | {"INNGEST_SERVE_ORIGIN": "app:8000"},
        ["INNGEST_SERVE_ORIGIN: needs a scheme"],
        id="no-scheme",
    ),
    pytest.param(
        GOOD_SELF_HOSTED | {"INNGEST_SERVE_ORIGIN": "http://localhost:8000"},
        ["INNGEST_SERVE_ORIGIN: points at localhost"],
        id="localhost",
    ),
    pytest.param(
        GOOD_CLOUD | {"INNGEST_SERVE_ORIGIN": "http://127.0.0.1:8000"},
        ["INNGEST_SERVE_ORIGIN: points at localhost"],
        id="loopback",
    ),
    pytest.param(
        GOOD_SELF_HOSTED | {"INNGEST_SERVE_ORIGIN": "http://app:8000/api/inngest"},
        ["INNGEST_SERVE_ORIGIN: origin only"],
        id="origin-with-path",
    ),
    pytest.param(GOOD_SELF_HOSTED | {"INNGEST_SERVE_ORIGIN": ""}, ["INNGEST_SERVE_ORIGIN: required"], id="no-origin"),
    pytest.param(
        GOOD_SELF_HOSTED | {"INNGEST_SERVE_PATH": "api/inngest/"}, ["INNGEST_SERVE_PATH: must start with /"], id="path"
    ),
    pytest.param(GOOD_SELF_HOSTED | {"PORT": "eighty"}, ["PORT:"], id="port-type"),
    pytest.param(
        GOOD_SELF_HOSTED | {"PORT": "9100", "METRICS_PORT": "9100"},
        ["METRICS_PORT: must differ from PORT (9100)"],
        id="metrics-port-same",
    ),
    pytest.param(GOOD_SELF_HOSTED | {"METRICS_PORT": "70000"}, ["METRICS_PORT:"], id="metrics-port-range"),
    pytest.param(GOOD_SELF_HOSTED | {"WEB_CONCURRENCY": "0"}, ["WEB_CONCURRENCY:"], id="workers"),
    pytest.param(GOOD_SELF_HOSTED | {"LOG_LEVEL": "verbose"}, ["LOG_LEVEL: must be one of DEBUG"], id="log-level"),
    pytest.param(
        # Below the 4 MiB the server may send in one call: a legitimate call could be refused.
        GOOD_SELF_HOSTED | {"SERVE_MAX_BODY_BYTES": str(4 * 1024 * 1024 - 1)},
        ["SERVE_MAX_BODY_BYTES: Input should be greater than or equal to 4194304"],
        id="serve-body-limit-below-the-servers",
    ),
    pytest.param(
        GOOD_SELF_HOSTED | {"DATABASE_URL": "mysql://app:pw@db/app"},
        ["DATABASE_URL: unsupported scheme 'mysql'"],
        id="db-scheme",
    ),
    pytest.param(
        GOOD_SELF_HOSTED | {"DATABASE_URL": "postgresql://app:pw@db"},
        ["DATABASE_URL: a PostgreSQL URL needs a host and a database name"],
        id="db-no-name",
    ),
    pytest.param(
        GOOD_SELF_HOSTED | {"DATABASE_URL": "postgresql://app:pw@db:port/app"},
        ["DATABASE_URL: the port is not a number"],
        id="db-port",
    ),
    pytest.param(
        GOOD_SELF_HOSTED | {"DATABASE_URL": "sqlite:///:memory:"},
        ["DATABASE_URL: a SQLite URL needs a file path"],
        id="db-memory",
    ),
    pytest.param(
        GOOD_SELF_HOSTED | {"DATABASE_URL": "sqlite://host/file.db"},
        ["DATABASE_URL: a SQLite URL needs a file path"],
        id="db-sqlite-host",
    ),
    pytest.param(
        GOOD_SELF_HOSTED | {"SIDE_EFFECTS_RETENTION_HOURS": "24"},
        ["SIDE_EFFECTS_RETENTION_HOURS: must be >= 25"],
        id="retention-inside-retry-horizon",
    ),
]


def _env(extra: dict[str, str], tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INNGEST_") and k not in {"PORT", "WEB_CONCURRENCY"}}
    return env | {"SIDE_EFFECTS_DB": str(tmp_path / "db.sqlite3")} | extra


@pytest.mark.parametrize(("env", "expected"), BAD)
def test_bad_configuration_is_refused_in_process(
    env: dict[str, str], expected: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    for line in expected:
        assert any(p.startswith(line) for p in info.value.problems), (line, info.value.problems)


@pytest.mark.parametrize(("env", "expected"), BAD[:6] + BAD[10:13] + BAD[-1:])
def test_bad_configuration_stops_the_process_with_exit_2(
    env: dict[str, str], expected: list[str], tmp_path: Path
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "app"], env=_env(env, tmp_path), capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert all(line.startswith("config error: ") for line in lines), lines
    for line in expected:
        assert any(line in got for got in lines), (line, lines)


@pytest.mark.parametrize("command", ["serve", "migrate"])
def test_bad_database_url_stops_with_one_line_that_hides_the_password(command: str, tmp_path: Path) -> None:
    env = _env(GOOD_SELF_HOSTED | {"DATABASE_URL": "postgres://app:s3cret-pw@db:5432"}, tmp_path)
    proc = subprocess.run([sys.executable, "-m", "app", command], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "config error: DATABASE_URL: a PostgreSQL URL needs a host and a database name; use "
        "postgresql://user:password@host:5432/dbname or sqlite:///path/to/file.sqlite3"
    ]
    assert "s3cret-pw" not in proc.stderr + proc.stdout


def test_database_url_takes_precedence_over_the_sqlite_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key, value in GOOD_SELF_HOSTED.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SIDE_EFFECTS_DB", str(tmp_path / "ledger.sqlite3"))
    assert load_settings().database == f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:pw@db:5432/app")
    assert load_settings().database == "postgresql://app:pw@db:5432/app"


def test_safe_default_is_production_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forgetting INNGEST_MODE must never turn signature checks off."""
    for key, value in GOOD_CLOUD.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("INNGEST_MODE")
    settings = load_settings()
    assert settings.inngest_mode is Mode.CLOUD
    assert not settings.is_dev
    assert settings.api_base_url is None  # Inngest Cloud
    assert settings.sync_on_startup is False


def test_prefixed_cloud_key_is_reduced_to_bare_hex(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in GOOD_CLOUD.items():
        monkeypatch.setenv(key, value)
    assert load_settings().signing_key == SIGNING_KEY
    assert bare_signing_key("signkey-branch-abcd") == "abcd"


def test_dev_mode_needs_nothing_and_defaults_to_the_local_dev_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INNGEST_MODE", "dev")
    settings = load_settings()
    assert settings.api_base_url == "http://127.0.0.1:8288"
    assert settings.sync_on_startup is True
    assert settings.drain_seconds == 0


def test_self_hosted_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in GOOD_SELF_HOSTED.items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    assert settings.serve_url == "http://app:8000/api/inngest"
    assert settings.sync_on_startup is True
    assert settings.drain_seconds > 0
    assert (settings.port, settings.web_concurrency) == (8000, 1)


def test_known_env_vars_names_every_setting() -> None:
    names = known_env_vars()
    assert {"INNGEST_MODE", "INNGEST_SIGNING_KEY", "INNGEST_SIGNING_KEY_FALLBACK", "PORT", "WEB_CONCURRENCY"} <= names
    assert "INNGEST_SIGNING_KEYS" not in names
