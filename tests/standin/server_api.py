"""The real server's HTTP API the tests rely on: health, metrics, the v0/v1 run endpoints."""

from __future__ import annotations

import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from tests.standin.core import Core
from tests.standin.model import (
    Run,
)


class ServerApi(Core):
    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": 200, "message": "OK"})  # pkg/api/api.go HealthCheck

    async def metrics(self, request: Request) -> Response:
        lines = [
            "# TYPE inngest_queue_depth gauge",
            f"inngest_queue_depth {self.pending}",
        ]
        values = {
            "scheduled": self.stats["runs_scheduled"],
            "started": sum(1 for r in self.runs.values() if r.calls),
            "ended": sum(1 for r in self.runs.values() if r.status != "Running"),
        }
        for name, value in values.items():
            lines += [f"# TYPE inngest_function_run_{name}_total counter", f"inngest_function_run_{name}_total {value}"]
        return PlainTextResponse("\n".join(lines) + "\n")

    def _run(self, request: Request) -> Run | None:
        return self.runs.get(request.path_params["run_id"])

    async def api_batch(self, request: Request) -> Response:
        run = self._run(request)
        return JSONResponse([run.event] if run else [], status_code=200 if run else 404)

    async def api_actions(self, request: Request) -> Response:
        run = self._run(request)
        return JSONResponse({k: run.steps[k] for k in run.stack} if run else {}, status_code=200 if run else 404)

    def _v1(self, run: Run) -> dict[str, Any]:
        return {
            "run_id": run.id,
            "function_id": str(uuid.uuid5(uuid.NAMESPACE_URL, run.fn.id)),
            "event_id": run.event["id"],
            "status": run.status,
            "output": run.output,
            "run_started_at": run.started_at,
            "ended_at": run.ended_at,
        }

    async def api_event_runs(self, request: Request) -> Response:
        """pkg/api/apiv1 `getEventRuns`: {data: [FunctionRun], metadata}."""
        ids = self.event_runs.get(request.path_params["event_id"], [])
        data = [self._v1(self.runs[i]) for i in ids]
        return JSONResponse({"data": data, "metadata": {"fetched_at": time.time()}})

    async def api_run(self, request: Request) -> Response:
        run = self._run(request)
        if not run:
            return JSONResponse({"error": "run not found"}, status_code=404)
        return JSONResponse({"data": self._v1(run), "metadata": {"fetched_at": time.time()}})
