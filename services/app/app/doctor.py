"""`python -m app doctor`: one line per check, with the fix when it fails; exit 1 if any check failed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from app.inngest_client import build_client
from app.sdk import signed_headers
from app.settings import Mode, Settings
from app.sync import key_mismatch, signing_key_refused, sync_once


@dataclass(frozen=True)
class Target:
    """Where the checks look: the same origins the app's own SDK client uses (dev, self-hosted or Cloud)."""

    http: httpx.AsyncClient
    settings: Settings
    api: str
    events: str


Check = Callable[[Target], Awaitable[str]]


class CheckFailed(Exception):
    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(f"{problem} -> fix: {fix}")


async def check_settings(t: Target) -> str:
    s = t.settings
    return f"settings valid (mode {s.inngest_mode}, app id {s.inngest_app_id})"


async def check_server(t: Target) -> str:
    http, s = t.http, t.settings
    url = f"{t.api}/health"
    try:
        resp = await http.get(url)
    except httpx.HTTPError as exc:
        raise CheckFailed(f"server unreachable at {url}: {exc!r}", "start the server or fix INNGEST_BASE_URL") from None
    if s.inngest_mode is not Mode.CLOUD and resp.status_code != 200:
        raise CheckFailed(f"{url} answered {resp.status_code}", "check INNGEST_BASE_URL points at the Inngest server")
    return f"server reachable at {t.api}"


async def check_kind(t: Target) -> str:
    http, s = t.http, t.settings
    if s.inngest_mode is Mode.CLOUD:
        return "server kind: Inngest Cloud (nothing to compare)"
    resp = await http.get(f"{t.api}/dev")
    # The server stamps its kind on these responses; `inngest start` reports "cloud", `inngest dev` "dev".
    kind = resp.headers.get("x-inngest-server-kind") or ("dev" if resp.status_code == 200 else "cloud")
    expected = "dev" if s.is_dev else "cloud"
    if kind != expected:
        want = "inngest dev" if s.is_dev else "inngest start"
        other = "self-hosted" if kind == "cloud" else "dev"
        raise CheckFailed(
            f"server kind is {kind!r} but INNGEST_MODE={s.inngest_mode} expects {expected!r}",
            f"run `{want}` or set INNGEST_MODE={other}",
        )
    return f"server kind {kind!r} matches INNGEST_MODE={s.inngest_mode}"


async def check_keys(t: Target) -> str:
    http, s = t.http, t.settings
    if s.is_dev:
        return "keys: not used in dev mode"
    assert s.signing_key and s.inngest_event_key  # guaranteed by the settings model
    if s.inngest_mode is Mode.SELF_HOSTED and await signing_key_refused(t.api, s.signing_key):
        problem, _, fix = key_mismatch(t.api).partition(" -> fix: ")
        raise CheckFailed(problem, fix)
    resp = await http.post(f"{t.events}/e/{s.inngest_event_key}", json=[])
    if resp.status_code == 401:
        raise CheckFailed("the server rejected INNGEST_EVENT_KEY", "use one of the server's event keys")
    return "keys accepted by the server (signed round trip)"


async def check_origin(t: Target) -> str:
    http, s = t.http, t.settings
    # Not localhost outside dev: the settings model already refused that at load.
    url = s.serve_url or s.local_serve_url
    try:
        resp = await http.get(url, headers=signed_headers(s.signing_key))
    except httpx.HTTPError as exc:
        raise CheckFailed(
            f"serve endpoint {url} unreachable: {exc!r}", "start the app / fix INNGEST_SERVE_ORIGIN"
        ) from None
    body = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
    if resp.status_code != 200 or "function_count" not in body:
        raise CheckFailed(
            f"{url} answered {resp.status_code} without the SDK's introspection", "fix INNGEST_SERVE_PATH"
        )
    if s.signing_key and body.get("authentication_succeeded") is not True:
        raise CheckFailed(
            f"{url} did not accept a request signed with INNGEST_SIGNING_KEY", "give the app the same key"
        )
    return f"serve endpoint {url} answers ({body['function_count']} functions)"


async def check_registered(t: Target) -> str:
    http, s = t.http, t.settings
    url = s.serve_url or s.local_serve_url
    result = await sync_once(http, url, s.signing_key, s.api_base_url)
    if not result.ok:
        problem, _, fix = result.message.partition(" -> fix: ")
        raise CheckFailed(f"registration failed: {problem}", fix or "see the reason; then `python -m app sync`")
    if result.modified:
        return "app registered, but the server had a stale definition: re-synced now"
    return "app registered and up to date"


# Each check with the checks it builds on: when one of those failed it is skipped, so one root cause
# gives one FAIL line instead of a cascade.
CHECKS: list[tuple[Check, tuple[Check, ...]]] = [
    (check_settings, ()),
    (check_server, ()),
    (check_kind, (check_server,)),
    (check_keys, (check_server,)),
    (check_origin, ()),
    (check_registered, (check_server, check_keys, check_origin)),
]


def _name(check: Check) -> str:
    return check.__name__.removeprefix("check_")


async def run_doctor(settings: Settings) -> int:
    failed: list[Check] = []
    client = build_client(settings)
    async with httpx.AsyncClient(timeout=10) as http:
        target = Target(http, settings, client.api_origin.rstrip("/"), client.event_api_origin.rstrip("/"))
        for check, needs in CHECKS:
            blocked = [_name(dep) for dep in needs if dep in failed]
            if blocked:
                failed.append(check)
                print(f"skip {_name(check)}: needs {', '.join(blocked)} (fix that first)")
                continue
            try:
                print(f"ok   {await check(target)}")
            except CheckFailed as exc:
                failed.append(check)
                print(f"FAIL {exc}")
            except httpx.HTTPError as exc:
                failed.append(check)
                print(f"FAIL {_name(check)}: {exc!r} -> fix: check the network path and INNGEST_BASE_URL")
    return 1 if failed else 0
