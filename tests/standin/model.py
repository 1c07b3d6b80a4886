"""The stand-in's data: options, registered functions, runs, their steps and paused waits.

Constants cite the server's sources (inngest/inngest v1.43.0).
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

CRON_EVENT = "inngest/scheduled.timer"  # pkg/consts/events.go FnCronName
FAILED_EVENT = "inngest/function.failed"  # pkg/consts/events.go FnFailedName
DEFAULT_RETRIES = 4  # pkg/consts/consts.go DefaultRetryCount; max attempts = retries + 1
BACKOFF_TABLE = [15, 30, 60, 120, 300, 600, 1200, 2400, 3600, 7200]  # pkg/backoff TableBackoff (s)


@dataclasses.dataclass
class Options:
    port: int = 8288
    host: str = "127.0.0.1"
    sdk_urls: list[str] = dataclasses.field(default_factory=list)
    signing_key: str = ""
    event_keys: list[str] = dataclasses.field(default_factory=list)
    poll_interval: float = 5.0  # `--poll-interval` (0 means 5 s, pkg/devserver/service.go)
    time_scale: float = 1.0  # multiplies every sleep, wait timeout and retry backoff
    retry_interval: float = 0.0  # `--retry-interval`: fixed backoff (pkg/backoff GetLinearBackoffFunc)
    queue_workers: int = 100  # `--queue-workers`: concurrent SDK requests
    request_timeout: float = 30.0


@dataclasses.dataclass
class Function:
    id: str  # fully qualified, `<app id>-<fn id>`
    app: str
    name: str
    url: str  # steps.step.runtime.url (carries `fnId` and `stepId=step`)
    triggers: list[dict[str, Any]]
    max_attempts: int
    concurrency: list[dict[str, Any]]
    config: dict[str, Any]


@dataclasses.dataclass
class Step:
    """What the stand-in observed for one hashed step id of one run."""

    name: str
    op: str = ""
    reports: int = 0  # times the SDK reported a result (StepRun/StepFailed) for it
    errors: int = 0  # StepError responses (retried)
    saved: bool = False  # memoized exactly once (pkg/execution/state SaveStep is idempotent)


@dataclasses.dataclass
class Run:
    id: str
    fn: Function
    event: dict[str, Any]
    started_at: float
    status: str = "Running"  # pkg/enums/run_status.go names
    output: Any = None
    ended_at: float | None = None
    steps: dict[str, Any] = dataclasses.field(default_factory=dict)  # memoized state by hashed id
    stack: list[str] = dataclasses.field(default_factory=list)
    observed: dict[str, Step] = dataclasses.field(default_factory=dict)
    calls: int = 0
    history: list[str] = dataclasses.field(default_factory=list)

    def summary(self, full: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "run_id": self.id,
            "function_id": self.fn.id,
            "event_id": self.event["id"],
            "event_name": self.event["name"],
            "status": self.status,
            "output": self.output,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "sdk_calls": self.calls,
            "steps": {
                k: {"name": v.name, "op": v.op, "reports": v.reports, "errors": v.errors, "saved": v.saved}
                for k, v in self.observed.items()
            },
        }
        if full:
            data["history"] = self.history
            data["state"] = self.steps
            data["stack"] = self.stack
        return data


@dataclasses.dataclass
class Pause:
    run: Run
    step_id: str
    event: str
    expression: str | None
    timer: asyncio.TimerHandle | None = None
