"""app.http_limits: the uvicorn version it is written against, the open-file limit, and the settings."""

from __future__ import annotations

import re
import resource
import subprocess
import sys

import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app import http_limits
from app.settings import ConfigError, load_settings
from tests.support import ROOT

from .test_settings import GOOD_SELF_HOSTED


def test_uvicorn_is_the_version_whose_protocol_the_limits_extend() -> None:
    # LimitedHttpToolsProtocol replaces data_received and reads HttpToolsProtocol's per-connection state: on an
    # upgrade, re-read uvicorn's httptools_impl.py, adapt app/http_limits.py, then move UVICORN_VERSION.
    assert uvicorn.__version__ == http_limits.UVICORN_VERSION
    pin = re.search(r'"uvicorn==([^"]+)"', (ROOT / "services/app/pyproject.toml").read_text())
    assert pin and pin.group(1) == http_limits.UVICORN_VERSION
    for name in ("_unset_keepalive_if_required", "_should_upgrade", "handle_websocket_upgrade", "send_400_response"):
        assert callable(getattr(HttpToolsProtocol, name, None)), name


def test_the_soft_open_file_limit_is_raised_to_the_hard_one() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard <= 256:
        pytest.skip(f"hard open-file limit {hard}: nothing to raise")
    code = (
        "import resource; from app.http_limits import raise_open_file_limit as r; "
        "print(r(), *resource.getrlimit(resource.RLIMIT_NOFILE))"
    )

    def low_soft_limit() -> None:  # what a container starts the app with, e.g. 1024
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

    out = subprocess.run(
        [sys.executable, "-c", code], preexec_fn=low_soft_limit, capture_output=True, text=True, check=True
    ).stdout.split()
    returned, soft_after, hard_after = map(int, out)
    assert returned == soft_after == hard_after == hard


def test_the_connection_cap_keeps_descriptors_for_the_process() -> None:
    assert http_limits.connection_cap(1024) == 1024 - http_limits.FD_RESERVE
    assert http_limits.connection_cap(100) == 16  # never zero: a tiny limit still serves a few


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("HTTP_HEADER_TIMEOUT_SECONDS", "0"),
        ("HTTP_HEADER_TIMEOUT_SECONDS", "301"),
        ("HTTP_BODY_TIMEOUT_SECONDS", "0"),
        ("HTTP_IDLE_TIMEOUT_SECONDS", "-1"),
        ("HTTP_MAX_HEADER_BYTES", "100"),
        ("HTTP_MAX_HEADER_BYTES", "2097152"),
        ("HTTP_MAX_HEADERS", "5"),
        ("HTTP_LIMIT_CONCURRENCY", "0"),
        ("HTTP_LIMIT_CONCURRENCY", "many"),
    ],
)
def test_bad_connection_limits_are_refused_with_one_line_naming_the_variable(
    var: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, val in (GOOD_SELF_HOSTED | {var: value}).items():
        monkeypatch.setenv(key, val)
    with pytest.raises(ConfigError) as exc:
        load_settings()
    assert len(exc.value.problems) == 1 and exc.value.problems[0].startswith(f"{var}: "), exc.value.problems


def test_connection_limit_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, val in GOOD_SELF_HOSTED.items():
        monkeypatch.setenv(key, val)
    s = load_settings()
    assert (s.http_header_timeout_seconds, s.http_idle_timeout_seconds) == (10.0, 5.0)
    assert (s.http_max_header_bytes, s.http_max_headers, s.http_limit_concurrency) == (65536, 100, 1000)
