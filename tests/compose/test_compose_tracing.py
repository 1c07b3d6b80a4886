"""The opt-in tracing profile: Jaeger on loopback, and the app's OTLP endpoint only when it is set."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.compose.compose_support import TEST_ENV, container_env


def _model(
    run_compose: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path, *args: str, **env: str
) -> dict[str, Any]:
    env_file = tmp_path / "tracing.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in (TEST_ENV | env).items()))
    proc = run_compose("base", *args, "config", "--format", "json", env_path=env_file)
    assert proc.returncode == 0, proc.stderr
    model: dict[str, Any] = json.loads(proc.stdout)
    return model


def test_tracing_profile_runs_jaeger_and_points_the_app_at_it(
    run_compose: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.settings import known_env_vars, load_settings

    model = _model(run_compose, tmp_path, "--profile", "tracing", OTEL_EXPORTER_OTLP_ENDPOINT="http://jaeger:4318")
    jaeger = model["services"]["jaeger"]
    assert [(p["host_ip"], p["target"]) for p in jaeger["ports"]] == [("127.0.0.1", 16686)]
    assert jaeger["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"
    env = container_env(model, "app")
    for var in known_env_vars():
        monkeypatch.delenv(var, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert load_settings().otel_exporter_otlp_endpoint == "http://jaeger:4318"


def test_without_the_profile_there_is_no_collector_and_tracing_is_off(
    run_compose: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.settings import known_env_vars, load_settings

    model = _model(run_compose, tmp_path)
    assert "jaeger" not in model["services"]
    env = container_env(model, "app")
    for var in known_env_vars():
        monkeypatch.delenv(var, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert not load_settings().otel_exporter_otlp_endpoint
