"""Event intake (`/e/{key}`, cron, function triggers) and the executor that drives runs with signed POSTs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import urllib.parse
import uuid
from collections import Counter
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.standin import protocol, wire
from tests.standin.core import Core
from tests.standin.model import (
    BACKOFF_TABLE,
    CRON_EVENT,
    FAILED_EVENT,
    Function,
    Pause,
    Run,
    Step,
)

log = logging.getLogger("standin")


class Executor(Core):
    async def receive_event(self, request: Request) -> Response:
        """pkg/api/api.go `ReceiveEvent`: 401 for an unknown key, 400 for a bad payload, else ids."""
        key = request.path_params["key"]
        if self.opts.event_keys and key not in self.opts.event_keys:
            return JSONResponse({"status": 401, "message": "", "error": "Event key not found"}, status_code=401)
        try:
            payload = json.loads(await request.body())
            items = payload if isinstance(payload, list) else [payload]
            for item in items:
                if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
                    raise ValueError("event name is required")
                if item.get("data") is not None and not isinstance(item["data"], dict):
                    raise ValueError("event data must be an object")
        except ValueError as exc:
            return JSONResponse({"ids": [], "status": 400, "error": str(exc)}, status_code=400)
        ids = [self.ingest(item) for item in items]
        return JSONResponse({"ids": ids, "status": 200})

    def ingest(self, item: dict[str, Any]) -> str:
        """Store an event, resume matching pauses and start a run of every matching function."""
        internal_id = protocol.ulid()
        event = {
            "name": item["name"],
            "data": item.get("data") or {},
            "id": item.get("id") or internal_id,
            "ts": item.get("ts") or int(time.time() * 1000),
            "user": item.get("user") or {},
        }
        if item.get("v") is not None:
            event["v"] = item["v"]
        self.events.append({**event, "internal_id": internal_id, "received_at": time.time()})
        self.stats["events_received"] += 1
        self._resume_pauses(event)
        for fn in list(self.functions.values()):
            if any(self._trigger_matches(t, event) for t in fn.triggers):
                # runner.go `Initialize`: the event id is the run's idempotency key per function.
                if (fn.id, event["id"]) in self.idempotency:
                    self.stats["runs_deduplicated"] += 1
                    continue
                self.idempotency.add((fn.id, event["id"]))
                self.start_run(fn, event, internal_id)
        return internal_id

    @staticmethod
    def _trigger_matches(trigger: dict[str, Any], event: dict[str, Any]) -> bool:
        name = trigger.get("event")
        if not name or not protocol.name_matches(name, event["name"]):
            return False
        expression = trigger.get("expression")
        if not expression:
            return True
        try:
            return protocol.evaluate(expression, {"event": event})
        except protocol.UnsupportedExpression:
            log.warning("unsupported trigger expression %r: no match", expression)
            return False

    def fire_cron(self, fn_id: str) -> str:
        fn = self.functions[fn_id]
        cron = next(t["cron"] for t in fn.triggers if t.get("cron"))
        event = {"name": CRON_EVENT, "data": {"cron": cron}, "id": protocol.ulid(), "ts": int(time.time() * 1000)}
        self.events.append({**event, "internal_id": event["id"], "received_at": time.time()})
        return self.start_run(fn, {**event, "user": {}}, str(event["id"]))

    # --- executor --------------------------------------------------------------------------------------

    def start_run(self, fn: Function, event: dict[str, Any], internal_id: str) -> str:
        run = Run(id=protocol.ulid(), fn=fn, event=event, started_at=time.time())
        self.runs[run.id] = run
        self.event_runs.setdefault(internal_id, []).append(run.id)
        self.stats["runs_scheduled"] += 1
        self._enqueue(run, "step", 0, 0.0)
        return run.id

    def _enqueue(self, run: Run, step_id: str, attempt: int, delay: float) -> None:
        self.pending += 1
        self._later(delay, self._execute, run, step_id, attempt)

    def _backoff(self, attempt: int) -> float:
        """pkg/backoff: TableBackoff (+ up to 30 s jitter), or the fixed `--retry-interval`."""
        if self.opts.retry_interval > 0:
            return self.opts.retry_interval
        base = BACKOFF_TABLE[min(attempt, len(BACKOFF_TABLE) - 1)] + random.uniform(0, 30)
        return base * self.opts.time_scale

    def _fn_slot(self, run: Run) -> asyncio.Semaphore | None:
        """Function concurrency limits bound concurrent SDK calls (steps), not runs in a sleep/wait."""
        for c in run.fn.concurrency:
            limit = int(c.get("limit") or 0)
            if limit <= 0:
                continue
            key = ""
            if c.get("key"):
                with contextlib.suppress(protocol.UnsupportedExpression):
                    key = json.dumps(protocol._operand(c["key"], {"event": run.event}), default=str)
            slot = (run.fn.id + "|" + str(c.get("key")), key)
            if slot not in self._fn_slots:
                self._fn_slots[slot] = asyncio.Semaphore(limit)
            return self._fn_slots[slot]
        return None

    async def _execute(self, run: Run, step_id: str, attempt: int) -> None:
        try:
            if run.status != "Running":
                return
            fn_slot = self._fn_slot(run)
            async with contextlib.AsyncExitStack() as stack:
                if fn_slot:
                    await stack.enter_async_context(fn_slot)
                await stack.enter_async_context(self._slots)
                await self._call(run, step_id, attempt)
        except Exception:
            log.exception("executor failure for run %s", run.id)
            self._finish(run, "Failed", {"error": "stand-in executor failure"})
        finally:
            self.pending -= 1

    def _request_body(self, run: Run, step_id: str, attempt: int) -> dict[str, Any]:
        """pkg/execution/driver/driver.go `MarshalV1` / request.go `SDKRequest`."""
        return {
            "event": run.event,
            "events": [run.event],
            "steps": {sid: run.steps[sid] for sid in run.stack},
            "defers": {},
            "ctx": {
                "fn_id": str(uuid.uuid5(uuid.NAMESPACE_URL, run.fn.id)),
                "run_id": run.id,
                "env": "",
                "step_id": "step",
                "attempt": attempt,
                "max_attempts": run.fn.max_attempts,
                "stack": {"stack": list(run.stack), "current": len(run.stack)},
                "qi_id": f"{run.id}:{step_id}:{attempt}",
                "disable_immediate_execution": False,
                "use_api": False,
            },
            "version": 2,
            "use_api": False,
        }

    async def _call(self, run: Run, step_id: str, attempt: int) -> None:
        # httpdriver.go `ExecuteDriverRequest`: the registered URL with `stepId` set to the edge.
        parts = urllib.parse.urlsplit(run.fn.url)
        query = dict(urllib.parse.parse_qsl(parts.query))
        query.update(fnId=query.get("fnId") or run.fn.id, stepId=step_id)
        url = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
        body = protocol.canonical_json(self._request_body(run, step_id, attempt))
        headers = {
            "Content-Type": "application/json",
            "X-Inngest-Signature": protocol.sign_canonical(body, self.opts.signing_key),
            "X-Run-ID": run.id,
            "X-Inngest-Req-Version": "2",
            "X-Inngest-Step-Id": step_id,
        }
        run.calls += 1
        self.stats["sdk_requests"] += 1
        started = time.time()
        try:
            res = await self._wire.post(url, body, headers)
        except wire.TransportError as exc:
            # exechttp ErrUnableToReach & friends: a transport error is a failed attempt, retried.
            self.stats[f"sdk_error_{exc.kind}"] += 1
            self.calls.append((started, time.time(), exc.kind))
            if len(self.errors) < 1000:
                self.errors.append({"run_id": run.id, "kind": exc.kind, "at": started, "error": str(exc)})
            run.history.append(f"{step_id}#{attempt}: {exc.kind}")
            self._retry_or_fail(run, step_id, attempt, {"error": f"{exc.kind}: {exc}"}, retry_after=None)
            return
        self.calls.append((started, time.time(), str(res.status)))
        self.stats[f"sdk_status_{res.status}"] += 1
        no_retry = res.headers.get("x-inngest-no-retry") == "true"
        self.per_fn.setdefault(run.fn.id, Counter())[f"status_{res.status}{'_no_retry' if no_retry else ''}"] += 1
        run.history.append(f"{step_id}#{attempt}: {res.status}")
        # httpdriver.go: a response without X-Inngest-Sdk is not from an SDK (ErrNotSDK, retried).
        if not res.headers.get("x-inngest-sdk"):
            self.stats["sdk_missing_header"] += 1
            self._retry_or_fail(run, step_id, attempt, {"error": "response did not come from an SDK"}, None)
            return
        # Stricter than the real server: the app must sign responses to signed requests.
        if not protocol.verify_response(res.body, res.headers.get("x-inngest-signature"), self.opts.signing_key):
            self.stats["sdk_bad_signature"] += 1
            self._retry_or_fail(run, step_id, attempt, {"error": "response signature invalid"}, None)
            return
        try:
            payload = json.loads(res.body) if res.body else None
        except ValueError:
            payload = res.body.decode(errors="replace")
        if res.status == 206:
            await self._handle_ops(run, step_id, attempt, payload or [], no_retry)
        elif res.status == 200:
            self._finish(run, "Completed", payload)
        elif no_retry:
            self._finish(run, "Failed", payload)
        else:
            self._retry_or_fail(run, step_id, attempt, payload, res.headers.get("retry-after"))

    def _retry_or_fail(self, run: Run, step_id: str, attempt: int, error: Any, retry_after: str | None) -> None:
        if attempt + 1 >= run.fn.max_attempts:
            self._finish(run, "Failed", error)
            return
        delay = self._backoff(attempt)
        if retry_after:  # seconds, or a time (the Python SDK sends ISO 8601 for RetryAfterError)
            with contextlib.suppress(ValueError):
                delay = max(0.0, float(retry_after)) * self.opts.time_scale
            with contextlib.suppress(ValueError):
                delay = protocol.sleep_seconds({"name": retry_after}) * self.opts.time_scale
        self.stats["retries"] += 1
        self._enqueue(run, step_id, attempt + 1, delay)

    def _observe(self, run: Run, op: dict[str, Any]) -> Step:
        step = run.observed.get(op["id"])
        if step is None:
            step = run.observed[op["id"]] = Step(name=op.get("displayName") or op.get("name") or op["id"])
        step.op = op.get("op", "")
        return step

    def _save(self, run: Run, step_id: str, value: Any) -> bool:
        """state SaveStep: the first result wins (ErrDuplicateResponse keeps the existing output)."""
        if step_id in run.steps:
            self.stats["duplicate_step_results"] += 1
            return False
        run.steps[step_id] = value
        run.stack.append(step_id)
        run.observed.setdefault(step_id, Step(name=step_id)).saved = True
        return True

    async def _handle_ops(
        self, run: Run, step_id: str, attempt: int, ops: list[dict[str, Any]], no_retry: bool
    ) -> None:
        """executor.go `handleGeneratorOp` (per opcode) for every op in a 206 response."""
        if not ops:  # OpcodeNone
            return
        for op in ops:
            code = op.get("op")
            step = self._observe(run, op)
            self.stats[f"op_{code}"] += 1
            self.per_fn.setdefault(run.fn.id, Counter())[f"op_{code}"] += 1
            if code == "StepRun":  # handleGeneratorStep: memoize {"data": ...}, re-run discovery
                step.reports += 1
                self._save(run, op["id"], {"data": op.get("data")})
                self._enqueue(run, "step", 0, 0.0)
            elif code == "StepError":  # handleStepError: retry the step unless final / no-retry
                step.errors += 1
                if not no_retry and attempt + 1 < run.fn.max_attempts:
                    self.stats["retries"] += 1
                    self._enqueue(run, step_id, attempt + 1, self._backoff(attempt))
                else:
                    step.reports += 1
                    self._save(run, op["id"], {"error": op.get("error")})
                    self._enqueue(run, "step", 0, 0.0)
            elif code == "StepFailed":  # handleStepFailed: memoize {"error": ...}, discovery
                step.reports += 1
                self._save(run, op["id"], {"error": op.get("error")})
                self._enqueue(run, "step", 0, 0.0)
            elif code == "StepPlanned":  # handleGeneratorStepPlanned: call again targeting the step
                self._enqueue(run, op["id"], 0, 0.0)
            elif code == "Sleep":  # handleGeneratorSleep: resume later with a null result
                delay = protocol.sleep_seconds(op) * self.opts.time_scale
                self._later(delay, self._resume, run, op["id"], None)
            elif code == "WaitForEvent":  # handleGeneratorWaitForEvent: a pause with a timeout
                self._wait(run, op)
            else:
                self._finish(run, "Failed", {"error": f"opcode {code} is not supported by the stand-in"})
                return

    async def _resume(self, run: Run, step_id: str, value: Any) -> None:
        if run.status == "Running" and self._save(run, step_id, value):
            self.pending += 1
            await self._execute(run, "step", 0)

    def _wait(self, run: Run, op: dict[str, Any]) -> None:
        opts = op.get("opts") or {}
        name: str = opts.get("event") or op["name"]  # opcode.go WaitForEventOpts falls back to the name
        expression = opts.get("if")
        if expression and "event." in expression:
            expression = protocol.interpolate_event(expression, run.event)
        if expression:
            try:
                protocol.evaluate(expression, {"async": {}})
            except protocol.UnsupportedExpression as exc:
                self._finish(run, "Failed", {"error": f"InvalidExpression: {exc}"})
                return
        pause = Pause(run=run, step_id=op["id"], event=name, expression=expression)
        timeout = protocol.parse_duration(str(opts.get("timeout") or "0s")) * self.opts.time_scale
        pause.timer = asyncio.get_running_loop().call_later(timeout, self._timeout_pause, pause)
        self.pauses.append(pause)

    def _timeout_pause(self, pause: Pause) -> None:
        if pause in self.pauses:
            self.pauses.remove(pause)
            self.stats["waits_timed_out"] += 1
            self._spawn(self._resume(pause.run, pause.step_id, None))

    def _resume_pauses(self, event: dict[str, Any]) -> None:
        for pause in list(self.pauses):
            if pause.event != event["name"] or pause.run.status != "Running":
                continue
            if pause.expression and not protocol.evaluate(pause.expression, {"async": event}):
                continue
            self.pauses.remove(pause)
            if pause.timer:
                pause.timer.cancel()
            self.stats["waits_matched"] += 1
            self._spawn(self._resume(pause.run, pause.step_id, event))

    def _finish(self, run: Run, status: str, output: Any) -> None:
        if run.status != "Running":
            return
        run.status, run.output, run.ended_at = status, output, time.time()
        self.stats[f"runs_{status.lower()}"] += 1
        for pause in [p for p in self.pauses if p.run is run]:
            self.pauses.remove(pause)
            if pause.timer:
                pause.timer.cancel()
        if status == "Failed" and run.event["name"] != FAILED_EVENT:
            # The real server emits inngest/function.failed, which triggers `on_failure` handlers.
            self.ingest(
                {
                    "name": FAILED_EVENT,
                    "data": {"function_id": run.fn.id, "run_id": run.id, "error": output, "event": run.event},
                }
            )
