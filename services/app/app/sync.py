"""Verified sync: PUT the serve endpoint, which makes the SDK register with the server, then check `ok`.

The SDK answers the PUT with HTTP 200 even when the server refused the registration (it forwards the
server's body), so success is `ok: true` in the body, never the status code alone.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import metrics
from app.logs import configure_logging
from app.sdk import hash_signing_key, signed_headers
from app.settings import Settings

if TYPE_CHECKING:
    from tenacity import RetryCallState
    from tenacity.stop import StopBaseT

log = logging.getLogger("app.sync")


@dataclass(frozen=True)
class SyncResult:
    outcome: str  # ok | rejected | unreachable
    message: str
    modified: bool | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


def interpret(status: int, body: object) -> SyncResult:
    """Classify the serve endpoint's answer to a sync PUT."""
    data = body if isinstance(body, dict) else {}
    reason = data.get("error") or data.get("message")
    if status == 200 and data.get("ok") is True:
        modified = data.get("modified")
        return SyncResult("ok", "registered" + (" (changed)" if modified else ""), modified=modified)
    if status == 200:
        return SyncResult("rejected", f"server refused the registration: {reason or 'no reason given'}")
    if status == 401:
        return SyncResult("rejected", f"the app refused the signed sync request (signing key mismatch): {reason}")
    if status >= 500:
        return SyncResult("unreachable", f"the app could not reach the Inngest server: {reason or status}")
    return SyncResult("rejected", f"sync answered HTTP {status}: {reason or 'no reason given'}")


def key_mismatch(api_base: str) -> str:
    return (
        f"signing key mismatch: the Inngest server at {api_base} refused INNGEST_SIGNING_KEY (401)"
        " -> fix: give the app and the server the same signing key"
    )


async def signing_key_refused(api_base: str, signing_key: str) -> bool:
    """Whether the server's API refuses the key (401). `GET /dev` sits behind the same key check as
    `/fn/register`; `inngest start` answers 404 past it, `inngest dev` 200."""
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            resp = await http.get(
                f"{api_base}/dev", headers={"Authorization": f"Bearer {hash_signing_key(signing_key)}"}
            )
    except httpx.HTTPError:
        return False
    return resp.status_code == 401


async def sync_once(
    http: httpx.AsyncClient, url: str, signing_key: str | None, api_base: str | None = None
) -> SyncResult:
    """One sync PUT. `api_base` (the server's URL, None for Cloud) lets a failed registration be told apart
    from a key mismatch: the server refuses a wrong key with a plain-text 401, which the SDK can only
    report as "response is not valid JSON" (HTTP 500), indistinguishable from an outage."""
    try:
        resp = await http.put(url, headers=signed_headers(signing_key))
    except httpx.TransportError as exc:
        return SyncResult("unreachable", f"app serve endpoint {url} unreachable: {exc!r}")
    try:
        body = resp.json()
    except ValueError:
        body = {"error": resp.text[:200]}
    return await diagnose(resp.status_code, body, api_base, signing_key)


async def diagnose(status: int, body: object, api_base: str | None, signing_key: str | None) -> SyncResult:
    """`interpret`, and for a failed registration (5xx) whether the server refuses the signing key."""
    if status >= 500 and api_base and signing_key and await signing_key_refused(api_base, signing_key):
        return SyncResult("rejected", key_mismatch(api_base))
    return interpret(status, body)


async def sync_until(
    http: httpx.AsyncClient,
    url: str,
    signing_key: str | None,
    *,
    deadline: float | None,
    retry_rejected: bool,
    api_base: str | None = None,
    progress: Callable[[int, SyncResult], None] | None = None,
) -> SyncResult:
    """Retry with exponential backoff until ok, or the deadline; rejections end it unless retry_rejected.

    `progress` hears about every failed attempt that will be retried (attempt number, its result).
    """

    # Imported here: only the sync paths retry, and the app's startup need not load it (~20 ms).
    from tenacity import AsyncRetrying, retry_if_result, stop_after_delay, stop_never, wait_exponential_jitter

    def again(result: SyncResult) -> bool:
        if result.ok:
            return False
        log.debug("sync attempt failed; retrying", extra={"outcome": result.outcome, "reason": result.message})
        return retry_rejected or result.outcome == "unreachable"

    def before_sleep(state: RetryCallState) -> None:
        if progress and state.outcome:
            progress(state.attempt_number, state.outcome.result())

    stop: StopBaseT = stop_never if deadline is None else stop_after_delay(deadline)
    retrying = AsyncRetrying(
        stop=stop,
        wait=wait_exponential_jitter(multiplier=0.25, max=15),
        retry=retry_if_result(again),
        before_sleep=before_sleep,
        # At the deadline, hand back the last answer (with the server's reason) instead of raising.
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
    )
    result: SyncResult = await retrying(sync_once, http, url, signing_key, api_base)
    return result


class SyncObserver:
    """Counts every sync PUT the serve endpoint answers (server, job or self) and logs each change of outcome.

    A server that stays unreachable gets one warning, not one per retry: a repeat of the previous answer
    is logged at debug level with how many times it came in a row.
    """

    def __init__(self, app: ASGIApp, path: str, api_base: str | None = None, signing_key: str | None = None) -> None:
        self.app = app
        self.path = path
        self.api_base = api_base
        self.signing_key = signing_key
        self._last: SyncResult | None = None
        self._repeats = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "PUT" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        status = 0
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, capture)
        if status == 401:
            return  # an unverified caller: it may not move the sync state or its metrics
        try:
            body = json.loads(b"".join(chunks) or b"{}")
        except ValueError:
            body = {}
        self.record(await diagnose(status, body, self.api_base, self.signing_key))

    def record(self, result: SyncResult) -> None:
        metrics.SYNC_ATTEMPTS.labels(result.outcome).inc()
        if result.ok:
            metrics.LAST_SYNC_SUCCESS.set(time.time())
        changed = result != self._last
        self._repeats = 0 if changed else self._repeats + 1
        self._last = result
        if not changed:
            log.debug("sync: same answer again", extra={"outcome": result.outcome, "repeats": self._repeats})
        elif result.ok:
            log.info("synced with the Inngest server", extra={"detail": result.message})
        else:
            log.warning("sync failed", extra={"outcome": result.outcome, "reason": result.message})


async def run_sync(settings: Settings) -> int:
    """`python -m app sync`: one verified sync, retried until the deadline; exit 1 with the reason."""
    configure_logging(settings.log_level)
    url = settings.serve_url or settings.local_serve_url
    started = time.monotonic()

    def progress(attempt: int, result: SyncResult) -> None:
        # The app answers for the server: an unreachable serve URL means the app, anything else the server.
        waiting = f"the app at {url}" if result.message.startswith("app serve endpoint") else "the Inngest server"
        elapsed = time.monotonic() - started
        print(
            f"sync: waiting for {waiting} (attempt {attempt}, {elapsed:.1f}s of {settings.inngest_sync_timeout:g}s)",
            file=sys.stderr,
            flush=True,
        )

    async with httpx.AsyncClient(timeout=30) as http:
        result = await sync_until(
            http,
            url,
            settings.signing_key,
            deadline=settings.inngest_sync_timeout,
            retry_rejected=False,
            api_base=settings.api_base_url,
            progress=progress,
        )
    if result.ok:
        print(f"sync ok: {url} {result.message}")
        return 0
    print(f"sync failed ({result.outcome}): {result.message}", file=sys.stderr)
    return 1
