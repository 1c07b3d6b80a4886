"""Constants of a run and the two profiles (full and quick)."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass

from tests.support import ROOT

BENCH = ROOT / "benchmarks"
LUA = BENCH / "wrk" / "inngest.lua"
SCHEMA_VERSION = 1

APP_ID = "fastapi-app"
FN_ID = f"{APP_ID}-test-integration"
SERVE_PATH = "/api/inngest"
STEP_PATH = f"{SERVE_PATH}?fnId={FN_ID}&stepId=step"
EVENT_KEY = "bench-event-key"
EVENT_API_TOKEN = "bench-event-api-token-0001"  # the event API caller (EVENT_API_KEYS)
# Registered URL only (the app validates it is not loopback); nothing connects to it during the run.
SERVE_ORIGIN = "http://app:8000"

# The stack's `inngest start` settings (INNGEST_TICK in docker-compose.yml and deploy/k8s; the server's
# default worker count), which the end-to-end phase uses unless told otherwise (tests/k8s checks they agree).
STACK_TICK_MS = 50
STACK_QUEUE_WORKERS = 100

SERVER_CPU = "0"
LOAD_CPU = "1"

PACKAGES = (
    "app",
    "inngest",
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "h11",
    "pydantic",
    "prometheus-client",
    "python-json-logger",
    "httpx",
    "jcs",
)


@dataclass
class Profile:
    quick: bool
    rounds: int
    duration: int
    warmup: int
    connections: int
    invocations: int
    cold_starts: int
    metrics_samples: int
    sync_repeats: int
    e2e_events: int = 2_000  # the burst of the end-to-end phase
    e2e_rounds: int = 9  # single bursts spread by +-25%: fewer rounds cannot resolve a few percent
    e2e_steady_seconds: int = 60  # ~500 runs at the steady rate: its p99 is not one or two outliers
    e2e_warmup: int = 1  # bursts of 20 runs per side before the rounds
    e2e_tick_ms: int = STACK_TICK_MS  # the server's queue poll interval (INNGEST_TICK)
    e2e_queue_workers: int = STACK_QUEUE_WORKERS  # its executor workers (INNGEST_QUEUE_WORKERS)
    e2e_data: str = "tmpfs"  # where the servers keep SQLite: tmpfs (/dev/shm, if present) or disk
    e2e_layout: str = "one-core"  # each side's server and SDK on one core, or split over two (end_to_end.py)
    sync_sizes: tuple[int, ...] = (10, 100, 500)
    metrics_functions: int = 50

    @classmethod
    def make(cls, quick: bool) -> Profile:
        # rounds, duration s, warm-up s, connections, invocations for RSS, cold starts, /metrics samples,
        # sync repeats (end to end: the fields above, fewer in quick mode)
        if quick:
            short = cls(True, 2, 2, 1, 32, 2_000, 2, 30, 2)
            short.e2e_events, short.e2e_rounds, short.e2e_steady_seconds = 200, 1, 5
            return short
        return cls(False, 5, 10, 3, 32, 20_000, 5, 300, 10)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def step_request_body(fn_id: str = FN_ID, event_name: str = "test/integration") -> bytes:
    """What the executor POSTs for the first (and, for a step-less function, only) call of a run: an event
    the function is triggered by, in canonical JSON (RFC 8785), the bytes the server signs."""
    event = {
        "name": event_name,
        "data": {"message": "Hello"},
        "id": "01JBENCH0000000000000000EV",
        "ts": 1_764_300_000_000,
        "user": {},
    }
    payload = {
        "event": event,
        "events": [event],
        "steps": {},
        "use_api": False,
        "version": 1,
        "ctx": {
            "run_id": "01JBENCH0000000000000000RN",
            "attempt": 0,
            "disable_immediate_execution": False,
            "use_api": False,
            "stack": {"stack": [], "current": 0},
            "fn_id": "00000000-0000-0000-0000-00000000beef",
            "env": "production",
            "max_attempts": 4,
        },
    }
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()  # JCS for ASCII strings and ints


def signed_headers(body: bytes, key: str) -> dict[str, str]:
    from app.sdk import sign

    return {
        "Content-Type": "application/json",
        "X-Inngest-Signature": sign(body, key),
        "X-Inngest-Server-Kind": "cloud",
        "User-Agent": "inngest-bench",
    }
