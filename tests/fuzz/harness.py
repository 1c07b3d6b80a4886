"""The app as a real process (self-hosted mode) and a loopback event sink standing in for `/e/{key}`.

The sink only answers the event API (no executor): bad input never reaches a function, and valid sends
must come back 200 quickly instead of after the SDK's retries against a closed port.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, Phase, settings

from tests.standin.protocol import canonical_json, sign_body
from tests.support import ROOT, free_port
from tests.support.process import clean_env, stop_process

PYTHON = ROOT / ".venv" / "bin" / "python"
APP_ID = "fastapi-app"


def openapi_schema(tmp: Path) -> dict[str, Any]:
    """The app's OpenAPI schema, built in-process from the same factory: the app serves /openapi.json in dev
    mode only, and the routes are the same in every mode."""
    from app.main import create_app
    from app.settings import load_settings

    settings = load_settings(
        inngest_mode="dev", side_effects_db=tmp / "schema-only.sqlite3", inngest_sync_on_startup=False
    )
    return create_app(settings).openapi()


def sign(body: bytes, key: str, ts: int | None = None) -> str:
    """`X-Inngest-Signature` the way the server computes it (the stand-in's RFC 8785 signer)."""
    return sign_body(body, key, ts)


def invocation(fn: str, data: dict[str, Any], steps: dict[str, Any] | None = None, run_id: str = "") -> bytes:
    """A call body as the executor sends it (see the contract: event, events, steps, use_api, ctx), in the
    canonical JSON (RFC 8785) whose bytes the server signs."""
    event = {"name": "test/integration", "data": data, "id": secrets.token_hex(8), "ts": 1_700_000_000_000}
    body = {
        "event": event,
        "events": [event],
        "steps": steps or {},
        "use_api": False,
        "ctx": {
            "run_id": run_id or "01FUZZ" + secrets.token_hex(10).upper(),
            "attempt": 0,
            "disable_immediate_execution": False,
            "use_api": False,
            "fn_id": fn,
            "env": "",
            "max_attempts": 4,
            "stack": {"stack": list((steps or {}).keys()), "current": len(steps or {})},
        },
    }
    return canonical_json(body)


class EventSink:
    """`POST /e/{key}` -> 200 `{"ids": [...], "status": 200}` for the right key, 401 otherwise."""

    def __init__(self, event_key: str) -> None:
        self.event_key = event_key
        self.received: Counter[str] = Counter()
        self.ids: list[str | None] = []  # the id each event arrived with
        self.accept = True  # False: answer 200 with no ids (the server accepted none)
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                if self.path != f"/e/{sink.event_key}":
                    self._answer(401, {"error": "event key not found", "status": 401})
                    return
                try:
                    payload = json.loads(raw)
                except ValueError:
                    self._answer(400, {"error": "invalid JSON", "status": 400})
                    return
                events = payload if isinstance(payload, list) else [payload]
                with sink.lock:
                    for event in events:
                        sink.received[str(event.get("name"))] += 1
                        sink.ids.append(event.get("id"))
                ids = [secrets.token_hex(13) for _ in events] if sink.accept else []
                self._answer(200, {"ids": ids, "status": 200})

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="event-sink", daemon=True)

    def start(self) -> EventSink:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def total(self) -> int:
        with self.lock:
            return sum(self.received.values())


class App:
    """`python -m app` in self-hosted mode, as in its container, with loopback URLs."""

    def __init__(self, tmp: Path, base_url: str, *, signing_key: str | None = None, event_key: str = "") -> None:
        self.port = free_port()
        self.metrics_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.signing_key = signing_key or secrets.token_hex(32)
        self.event_key = event_key or secrets.token_hex(16)
        self.event_api_token = secrets.token_hex(16)
        self.auth = {"Authorization": f"Bearer {self.event_api_token}"}
        self.log_path = tmp / f"app-{self.port}.log"
        self.env = {
            **clean_env(),
            "INNGEST_MODE": "self-hosted",
            "INNGEST_BASE_URL": base_url,
            "INNGEST_SIGNING_KEY": self.signing_key,
            "INNGEST_EVENT_KEY": self.event_key,
            "EVENT_API_KEYS": self.event_api_token,
            "INNGEST_SERVE_ORIGIN": self.url,
            "INNGEST_ALLOW_LOOPBACK_ORIGIN": "1",
            "INNGEST_SYNC_ON_STARTUP": "false",
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "METRICS_PORT": str(self.metrics_port),
            "LOG_LEVEL": "WARNING",
            "SHUTDOWN_DRAIN_SECONDS": "0",
            "SIDE_EFFECTS_DB": str(tmp / f"side-effects-{self.port}.sqlite3"),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> App:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(PYTHON), "-m", "app"], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app exited with {self.proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self
            time.sleep(0.1)
        raise RuntimeError(f"app not ready after {timeout}s:\n{self.log_tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        stop_process(self.proc, timeout=15)

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def unhandled_errors(self) -> int:
        """Tracebacks the app logged for requests ("unhandled error" lines of its JSON log)."""
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace").count('"message": "unhandled error"')
        return 0


@contextlib.contextmanager
def running_app(tmp: Path) -> Iterator[tuple[App, EventSink]]:
    event_key = secrets.token_hex(16)
    sink = EventSink(event_key).start()
    app = App(tmp, sink.url, event_key=event_key)
    try:
        yield app.start(), sink
    finally:
        app.stop()
        sink.stop()


class Tally:
    """Requests tried by category and the statuses they got; failures are collected, not raised one by one."""

    def __init__(self) -> None:
        self.statuses: dict[str, Counter[int]] = {}
        self.failures: list[str] = []
        self.examples: dict[str, str] = {}  # failure -> the first input that produced it
        self.durations: dict[str, float] = {}

    def record(self, category: str, res: httpx.Response, allowed: set[int], note: str = "") -> None:
        self.statuses.setdefault(category, Counter())[res.status_code] += 1
        if res.status_code not in allowed:
            answer = repr(res.text[:160]) if res.status_code >= 300 else "accepted"
            self.fail(category, f"HTTP {res.status_code} (allowed {sorted(allowed)}): {answer}", note)
        elif res.status_code >= 400 and not message_of(res):
            self.fail(category, f"HTTP {res.status_code} without a message: {res.text[:160]!r}", note)

    def call(self, category: str, allowed: set[int], send: Any, note: str = "") -> httpx.Response | None:
        """Send through `send()`; a dropped connection counts as a failure (status 0), not a crash."""
        try:
            res: httpx.Response = send()
        except httpx.TransportError as exc:
            self.statuses.setdefault(category, Counter())[0] += 1
            self.fail(category, f"connection error {type(exc).__name__}: {exc}", note)
            return None
        self.record(category, res, allowed, note)
        return res

    def fail(self, category: str, text: str, example: str = "") -> None:
        failure = f"[{category}] {text}"
        self.failures.append(failure)
        self.examples.setdefault(failure, example)

    def count(self, prefix: str = "") -> int:
        return sum(sum(c.values()) for k, c in self.statuses.items() if k.startswith(prefix))

    def report(self) -> str:
        lines = []
        for category, statuses in sorted(self.statuses.items()):
            seen = ", ".join(f"{s}x{n}" for s, n in sorted(statuses.items()))
            lines.append(f"  {category:<34} {sum(statuses.values()):>5}  {seen}")
        lines.append(f"  {'total':<34} {self.count():>5}")
        for name, seconds in self.durations.items():
            lines.append(f"  duration {name}: {seconds:.1f}s")
        return "\n".join(lines)

    def distinct_failures(self, *categories: str, limit: int = 25) -> str:
        """The most frequent failures (of categories starting with these prefixes, or all), with counts."""
        chosen = [f for f in self.failures if not categories or f.startswith(tuple(f"[{c}" for c in categories))]
        seen = Counter(chosen)
        return "\n".join(
            f"{n:>4}x {text}" + (f"\n        e.g. {self.examples[text]}" if self.examples.get(text) else "")
            for text, n in seen.most_common(limit)
        )


def message_of(res: httpx.Response) -> str:
    """The human message of an error answer: FastAPI `detail` or the SDK's `message`."""
    try:
        body: Any = res.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("message") or "")
    return ""


def assert_still_serving(app: App, tally: Tally) -> None:
    """The process is alive, /healthz answers and a validly signed invocation still runs to completion."""
    assert app.alive(), f"the app died:\n{app.log_tail()}"
    with httpx.Client(base_url=app.url, timeout=10) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        body = invocation("fastapi-app-test-integration", {"message": "still serving"})
        res = http.post(
            "/api/inngest",
            params={"fnId": "fastapi-app-test-integration", "stepId": "step"},
            content=body,
            headers={"content-type": "application/json", "X-Inngest-Signature": sign(body, app.signing_key)},
        )
    assert res.status_code == 200, res.text
    assert json.loads(res.content) == "still serving"
    assert res.headers.get("x-inngest-sdk", "").startswith("inngest-py:"), res.headers
    assert "x-inngest-signature" in res.headers, "a signed request gets a signed answer"


def fuzz(n: int) -> Any:
    """Hypothesis settings for volume: generate only (no shrinking, no database), reproducible."""
    return settings(
        max_examples=n,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
