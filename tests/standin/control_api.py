"""`/test/*`: inspection and control for the tests; it does not exist on the real server."""

from __future__ import annotations

from collections import Counter

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.standin.executor import Executor
from tests.standin.registration import Registration
from tests.standin.server_api import ServerApi


class ControlApi(Registration, Executor, ServerApi):
    """Every `/test/*` handler is named `control_*`; it reads and drives the other concerns."""

    async def control_state(self, request: Request) -> Response:
        fns = {
            f.id: {"app": f.app, "url": f.url, "triggers": f.triggers, "max_attempts": f.max_attempts}
            for f in self.functions.values()
        }
        return JSONResponse(
            {
                "synced": self.synced,
                "puts": self.puts,
                "registrations": self.registrations,
                "apps": self.apps,
                "functions": fns,
                "pauses": len(self.pauses),
                "waits": [{"run_id": p.run.id, "event": p.event, "if": p.expression} for p in self.pauses],
                "pending": self.pending,
            }
        )

    async def control_stats(self, request: Request) -> Response:
        by_status = Counter(r.status for r in self.runs.values())
        return JSONResponse(
            {
                "counters": dict(self.stats),
                "runs": dict(by_status),
                "functions": {k: dict(v) for k, v in self.per_fn.items()},
                "errors": self.errors[-50:],
            }
        )

    async def control_events(self, request: Request) -> Response:
        name = request.query_params.get("name")
        return JSONResponse([e for e in self.events if not name or e["name"] == name])

    async def control_runs(self, request: Request) -> Response:
        q = request.query_params
        runs = [
            r.summary(full=q.get("full") == "1")
            for r in self.runs.values()
            if (not q.get("function") or r.fn.id == q["function"] or r.fn.id.endswith("-" + q["function"]))
            and (not q.get("status") or r.status == q["status"])
            and (not q.get("event_id") or r.id in self.event_runs.get(q["event_id"], []))
        ]
        return JSONResponse(runs)

    async def control_summary(self, request: Request) -> Response:
        """Cheap progress view: run counts by function and status."""
        counts: dict[str, Counter[str]] = {}
        for r in self.runs.values():
            counts.setdefault(r.fn.id, Counter())[r.status] += 1
        return JSONResponse({"runs": {k: dict(v) for k, v in counts.items()}, "waits": len(self.pauses)})

    async def control_run(self, request: Request) -> Response:
        run = self._run(request)
        return JSONResponse(run.summary(full=True) if run else {"error": "not found"}, status_code=200 if run else 404)

    async def control_calls(self, request: Request) -> Response:
        return JSONResponse([{"start": s, "end": e, "outcome": o} for s, e, o in self.calls])

    async def control_fire_cron(self, request: Request) -> Response:
        fn_id = request.path_params["fn_id"]
        matches = [f for f in self.functions if f == fn_id or f.endswith("-" + fn_id)]
        if not matches:
            return JSONResponse({"error": f"no function {fn_id}"}, status_code=404)
        fn = self.functions[matches[0]]
        if not any(t.get("cron") for t in fn.triggers):
            return JSONResponse({"error": f"{fn.id} has no cron trigger"}, status_code=400)
        return JSONResponse({"run_id": self.fire_cron(fn.id)})

    async def control_sync(self, request: Request) -> Response:
        """What the UI's "sync" button does: one PUT to the given URL now, regardless of state."""
        url = request.query_params.get("url") or next(iter(self.synced), "")
        if not url:
            return JSONResponse({"error": "url required"}, status_code=400)
        self.synced.setdefault(self._norm(url), False)
        return JSONResponse(await self.ping(url))
