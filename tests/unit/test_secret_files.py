"""Secrets from files: `<NAME>_FILE` (the Docker/Kubernetes secrets convention) for every secret setting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from app.settings import SECRET_SETTINGS, ConfigError, load_settings
from tests.support import free_port

from .app_process import app_env, running_app
from .conftest import EVENT_KEY, SIGNING_KEY, fn_url, run_body, signed
from .test_settings import GOOD_SELF_HOSTED


@pytest.fixture
def self_hosted(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key, value in GOOD_SELF_HOSTED.items():
        monkeypatch.setenv(key, value)
    for name in SECRET_SETTINGS:
        monkeypatch.delenv(name.upper(), raising=False)
        monkeypatch.delenv(f"{name.upper()}_FILE", raising=False)
    return monkeypatch


def test_every_secret_is_read_from_its_file_with_the_trailing_newline_stripped(
    self_hosted: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fallback = "ab" * 32
    for var, value in (
        ("INNGEST_SIGNING_KEY", SIGNING_KEY),
        ("INNGEST_SIGNING_KEY_FALLBACK", fallback),
        ("INNGEST_EVENT_KEY", EVENT_KEY),
    ):
        (tmp_path / var).write_text(value + "\n")
        self_hosted.setenv(f"{var}_FILE", str(tmp_path / var))
    settings = load_settings()
    assert settings.signing_key == SIGNING_KEY
    assert settings.inngest_signing_key_fallback == fallback
    assert settings.inngest_event_key == EVENT_KEY


def test_a_secret_file_is_validated_like_the_value(self_hosted: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "key").write_text("not-hex\n")
    self_hosted.setenv("INNGEST_SIGNING_KEY_FILE", str(tmp_path / "key"))
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert any(p.startswith("INNGEST_SIGNING_KEY: must be even-length hex") for p in info.value.problems)


def test_value_and_file_both_set_is_an_error(self_hosted: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "key").write_text(EVENT_KEY)
    self_hosted.setenv("INNGEST_EVENT_KEY", EVENT_KEY)
    self_hosted.setenv("INNGEST_EVENT_KEY_FILE", str(tmp_path / "key"))
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.problems == ["INNGEST_EVENT_KEY_FILE: INNGEST_EVENT_KEY is set too; set only one of them"]


def test_missing_file_stops_the_process_with_one_line_and_exit_2(tmp_path: Path) -> None:
    env = app_env(free_port(), tmp_path, INNGEST_SIGNING_KEY="", INNGEST_SIGNING_KEY_FILE=str(tmp_path / "absent"))
    proc = subprocess.run([sys.executable, "-m", "app"], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"config error: INNGEST_SIGNING_KEY_FILE: cannot read {tmp_path / 'absent'}: No such file or directory"
    ]


def test_the_app_starts_with_its_keys_from_files_and_checks_signatures_with_them(tmp_path: Path) -> None:
    (tmp_path / "signing").write_text(SIGNING_KEY + "\n")
    (tmp_path / "event").write_text(EVENT_KEY + "\n")
    port = free_port()
    env = app_env(
        port,
        tmp_path,
        INNGEST_SIGNING_KEY="",
        INNGEST_EVENT_KEY="",
        INNGEST_SIGNING_KEY_FILE=str(tmp_path / "signing"),
        INNGEST_EVENT_KEY_FILE=str(tmp_path / "event"),
    )
    with running_app(env, tmp_path / "app.log"):
        body = run_body("test/integration", {"message": "Hello"})
        url = f"http://127.0.0.1:{port}" + fn_url("test-integration")
        unsigned = httpx.post(url, content=body, headers={"Content-Type": "application/json"})
        assert unsigned.status_code == 401
        ok = httpx.post(url, content=body, headers=signed(body))  # signed with the key that is in the file
        assert ok.status_code == 200 and ok.json() == "Hello"
