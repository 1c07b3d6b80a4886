"""A loopback stand-in for `inngest start` (tests only, never shipped).

It behaves like the real server as described in the Inngest contract notes and the server's sources
(inngest/inngest v1.43.0; the files followed are cited next to the code):
sync polling of `--sdk-url`s, `/fn/register`, `/e/{key}`, and an executor that drives the app with
signed POSTs. Everything is in memory. `/test/*` is an inspection/control API for the tests; it does
not exist on the real server.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import random
import time
import urllib.parse
import uuid
from collections import Counter
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.standin import protocol, wire

log = logging.getLogger("standin")

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


class StandIn:
    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.functions: dict[str, Function] = {}
        self.apps: dict[str, dict[str, Any]] = {}  # app name -> {url, checksum, app_id, ...}
        self.synced: dict[str, bool] = {self._norm(u): False for u in opts.sdk_urls}
        self.puts: list[dict[str, Any]] = []
        self.registrations: list[dict[str, Any]] = []
        self.runs: dict[str, Run] = {}
        self.events: list[dict[str, Any]] = []
        self.event_runs: dict[str, list[str]] = {}
        self.idempotency: set[tuple[str, str]] = set()
        self.pauses: list[Pause] = []
        self.stats: Counter[str] = Counter()
        self.per_fn: dict[str, Counter[str]] = {}  # per function: responses by status, ops by opcode
        self.errors: list[dict[str, Any]] = []  # failed SDK calls (bounded)
        self.calls: list[tuple[float, float, str]] = []  # (start, end, outcome) of every SDK call
        self.pending = 0  # queue depth: scheduled SDK calls not yet finished
        self._slots = asyncio.Semaphore(max(1, opts.queue_workers))
        self._fn_slots: dict[tuple[str, str], asyncio.Semaphore] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._wire = wire.Client(timeout=opts.request_timeout)  # executor calls
        self._ping = wire.Client(timeout=10.0, keepalive=0.0)  # sync PUTs (deploy.Client: 10 s timeout)

    # --- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        self._spawn(self._poll_sdk_urls())

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self._wire.close()
        await self._ping.close()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _later(self, delay: float, coro_fn: Any, *args: Any) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(max(0.0, delay), lambda: self._spawn(coro_fn(*args)))

    @staticmethod
    def _norm(url: str) -> str:
        if "://" not in url:
            url = "http://" + url
        parts = urllib.parse.urlsplit(url)
        return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))

    # --- sync ------------------------------------------------------------------------------------------

    async def _poll_sdk_urls(self) -> None:
        """pkg/devserver/service.go `pollSDKs`: PUT every `-u` URL each poll interval while the app is
        in error (not yet synced); a healthy app is never pinged again (inngest/inngest#3791)."""
        interval = self.opts.poll_interval or 5.0
        while True:
            for url in list(self.synced):
                if not self.synced[url]:
                    await self.ping(url)
            await asyncio.sleep(interval)

    async def ping(self, url: str) -> dict[str, Any]:
        """pkg/deploy/deploy.go `Ping`: signed PUT with body {"url": ...} and X-Inngest-Server-Kind."""
        url = self._norm(url)
        body = json.dumps({"url": url}).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Inngest-Server-Kind": "cloud",  # `inngest start` is a cloud-kind server
            "X-Inngest-Signature": protocol.sign_body(body, self.opts.signing_key),
        }
        before = len(self.registrations)
        record: dict[str, Any] = {"url": url, "at": time.time()}
        try:
            res = await self._ping.request("PUT", url, body, headers)
            text = res.body.decode(errors="replace")[:500]
            record.update(status=res.status, body=text, sdk=res.headers.get("x-inngest-sdk"))
            ok = res.status < 300 and any(r["ok"] and self._norm(r["url"]) == url for r in self.registrations[before:])
        except wire.TransportError as exc:
            record.update(status=None, error=f"{exc.kind}: {exc}")
            ok = False
        record["synced"] = ok
        self.puts.append(record)
        if ok:
            self.synced[url] = True
        return record

    async def register(self, request: Request) -> Response:
        """pkg/devserver/api.go `Register`/`register`, behind pkg/authn `SigningKeyMiddleware`."""
        if not protocol.bearer_ok(request.headers.get("authorization"), self.opts.signing_key):
            self.stats["register_unauthorized"] += 1
            return PlainTextResponse("Authentication failed\n", status_code=401)
        expected = request.headers.get("x-inngest-expected-server-kind")
        if expected and expected != "cloud":
            return JSONResponse({"error": f"Expected server kind cloud, got {expected}"}, status_code=400)
        raw = await request.body()
        try:
            body = json.loads(raw)
            name, url, fns = body["appname"], body["url"], body["functions"]
            assert isinstance(fns, list) and name
        except (ValueError, KeyError, AssertionError, TypeError):
            return JSONResponse({"error": "Invalid request"}, status_code=400)
        checksum = hashlib.sha256(protocol.canonical_json(body)).hexdigest()
        app = self.apps.get(name)
        sync_id = str(uuid.uuid4())
        modified = not (app and app["checksum"] == checksum)
        if modified:
            try:
                parsed = [self._function(name, f) for f in fns]
            except (KeyError, TypeError, ValueError) as exc:
                return JSONResponse({"error": f"At least one function is invalid: {exc}"}, status_code=400)
            for fid in [f for f, fn in self.functions.items() if fn.app == name]:
                del self.functions[fid]  # functions missing from a new sync are removed
            self.functions.update({f.id: f for f in parsed})
            app_id = str(uuid.uuid5(uuid.NAMESPACE_URL, name))  # DeterministicAppUUID
            self.apps[name] = {"url": url, "checksum": checksum, "app_id": app_id, "sdk": body.get("sdk")}
        self.registrations.append(
            {"ok": True, "modified": modified, "url": url, "app": name, "at": time.time(), "checksum": checksum}
        )
        # A registration clears the app's error, which stops the `-u` polling for its URL.
        if self._norm(url) in self.synced:
            self.synced[self._norm(url)] = True
        reply = {"ok": True, "modified": modified, "sync_id": sync_id, "app_id": self.apps[name]["app_id"]}
        return JSONResponse(reply)

    @staticmethod
    def _function(app: str, cfg: dict[str, Any]) -> Function:
        step = cfg["steps"]["step"]
        retries = (step.get("retries") or {}).get("attempts")
        retries = DEFAULT_RETRIES if retries is None else min(int(retries), 20)  # consts.MaxRetries
        return Function(
            id=cfg["id"],
            app=app,
            name=cfg.get("name") or cfg["id"],
            url=step["runtime"]["url"],
            triggers=list(cfg.get("triggers") or []),
            max_attempts=retries + 1,  # pkg/inngest/function.go MaxAttempts
            concurrency=list(cfg.get("concurrency") or []),
            config=cfg,
        )

    # --- events ----------------------------------------------------------------------------------------

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
        return self.start_run(fn, {**event, "user": {}}, event["id"])

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
        name = opts.get("event") or op.get("name")  # opcode.go WaitForEventOpts falls back to the name
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

    # --- HTTP ------------------------------------------------------------------------------------------

    def app(self) -> Starlette:
        def auth(handler: Any) -> Any:
            async def wrapped(request: Request) -> Response:
                if not protocol.bearer_ok(request.headers.get("authorization"), self.opts.signing_key):
                    return PlainTextResponse("Authentication failed\n", status_code=401)
                return await handler(request)

            return wrapped

        routes = [
            Route("/health", self.health),
            Route("/fn/register", self.register, methods=["POST"]),
            Route("/e/{key}", self.receive_event, methods=["POST"]),
            Route("/metrics", self.metrics),
            Route("/v0/runs/{run_id}/batch", auth(self.api_batch)),
            Route("/v0/runs/{run_id}/actions", auth(self.api_actions)),
            Route("/v1/events/{event_id}/runs", auth(self.api_event_runs)),
            Route("/v1/runs/{run_id}", auth(self.api_run)),
            Route("/test/state", self.t_state),
            Route("/test/stats", self.t_stats),
            Route("/test/events", self.t_events),
            Route("/test/runs", self.t_runs),
            Route("/test/summary", self.t_summary),
            Route("/test/runs/{run_id}", self.t_run),
            Route("/test/calls", self.t_calls),
            Route("/test/cron/{fn_id}", self.t_cron, methods=["POST"]),
            Route("/test/sync", self.t_sync, methods=["POST"]),
        ]

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> Any:
            await self.start()
            yield
            await self.stop()

        return Starlette(routes=routes, lifespan=lifespan)

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

    async def t_state(self, request: Request) -> Response:
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

    async def t_stats(self, request: Request) -> Response:
        by_status = Counter(r.status for r in self.runs.values())
        return JSONResponse(
            {
                "counters": dict(self.stats),
                "runs": dict(by_status),
                "functions": {k: dict(v) for k, v in self.per_fn.items()},
                "errors": self.errors[-50:],
            }
        )

    async def t_events(self, request: Request) -> Response:
        name = request.query_params.get("name")
        return JSONResponse([e for e in self.events if not name or e["name"] == name])

    async def t_runs(self, request: Request) -> Response:
        q = request.query_params
        runs = [
            r.summary(full=q.get("full") == "1")
            for r in self.runs.values()
            if (not q.get("function") or r.fn.id == q["function"] or r.fn.id.endswith("-" + q["function"]))
            and (not q.get("status") or r.status == q["status"])
            and (not q.get("event_id") or r.id in self.event_runs.get(q["event_id"], []))
        ]
        return JSONResponse(runs)

    async def t_summary(self, request: Request) -> Response:
        """Cheap progress view: run counts by function and status."""
        counts: dict[str, Counter[str]] = {}
        for r in self.runs.values():
            counts.setdefault(r.fn.id, Counter())[r.status] += 1
        return JSONResponse({"runs": {k: dict(v) for k, v in counts.items()}, "waits": len(self.pauses)})

    async def t_run(self, request: Request) -> Response:
        run = self._run(request)
        return JSONResponse(run.summary(full=True) if run else {"error": "not found"}, status_code=200 if run else 404)

    async def t_calls(self, request: Request) -> Response:
        return JSONResponse([{"start": s, "end": e, "outcome": o} for s, e, o in self.calls])

    async def t_cron(self, request: Request) -> Response:
        fn_id = request.path_params["fn_id"]
        matches = [f for f in self.functions if f == fn_id or f.endswith("-" + fn_id)]
        if not matches:
            return JSONResponse({"error": f"no function {fn_id}"}, status_code=404)
        fn = self.functions[matches[0]]
        if not any(t.get("cron") for t in fn.triggers):
            return JSONResponse({"error": f"{fn.id} has no cron trigger"}, status_code=400)
        return JSONResponse({"run_id": self.fire_cron(fn.id)})

    async def t_sync(self, request: Request) -> Response:
        """What the UI's "sync" button does: one PUT to the given URL now, regardless of state."""
        url = request.query_params.get("url") or next(iter(self.synced), "")
        if not url:
            return JSONResponse({"error": "url required"}, status_code=400)
        self.synced.setdefault(self._norm(url), False)
        return JSONResponse(await self.ping(url))
