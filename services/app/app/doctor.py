"""`python -m app doctor`: one line per check, with the fix when it fails; exit 1 if any check failed."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import httpx

from app.settings import Mode, Settings, _is_loopback
from app.sync import sign, sync_once

Check = Callable[[httpx.AsyncClient, Settings], Awaitable[str]]


class CheckFailed(Exception):
    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(f"{problem} -> fix: {fix}")


def _hashed(key: str) -> str:
    return hashlib.sha256(bytes.fromhex(key)).hexdigest()


def _api(settings: Settings) -> str:
    return settings.api_base_url or "https://api.inngest.com"


async def check_settings(http: httpx.AsyncClient, s: Settings) -> str:
    return f"settings valid (mode {s.inngest_mode}, app id {s.inngest_app_id})"


async def check_server(http: httpx.AsyncClient, s: Settings) -> str:
    url = f"{_api(s)}/health"
    try:
        resp = await http.get(url)
    except httpx.HTTPError as exc:
        raise CheckFailed(f"server unreachable at {url}: {exc!r}", "start the server or fix INNGEST_BASE_URL") from None
    if s.inngest_mode is not Mode.CLOUD and resp.status_code != 200:
        raise CheckFailed(f"{url} answered {resp.status_code}", "check INNGEST_BASE_URL points at the Inngest server")
    return f"server reachable at {_api(s)}"


async def check_kind(http: httpx.AsyncClient, s: Settings) -> str:
    if s.inngest_mode is Mode.CLOUD:
        return "server kind: Inngest Cloud (nothing to compare)"
    resp = await http.get(f"{_api(s)}/dev")
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


async def check_keys(http: httpx.AsyncClient, s: Settings) -> str:
    if s.is_dev:
        return "keys: not used in dev mode"
    assert s.signing_key and s.inngest_event_key  # guaranteed by the settings model
    if s.inngest_mode is Mode.SELF_HOSTED:
        resp = await http.get(f"{_api(s)}/dev", headers={"Authorization": f"Bearer {_hashed(s.signing_key)}"})
        if resp.status_code == 401:
            raise CheckFailed(
                "the server rejected INNGEST_SIGNING_KEY",
                "use the same signing key for the server and the app",
            )
    events = f"{_api(s) if s.api_base_url else 'https://inn.gs'}/e/{s.inngest_event_key}"
    resp = await http.post(events, json=[])
    if resp.status_code == 401:
        raise CheckFailed("the server rejected INNGEST_EVENT_KEY", "use one of the server's event keys")
    return "keys accepted by the server (signed round trip)"


async def check_origin(http: httpx.AsyncClient, s: Settings) -> str:
    url = s.serve_url or s.local_serve_url
    host = urlsplit(url).hostname or ""
    if not s.is_dev and _is_loopback(host) and not s.inngest_allow_loopback_origin:
        raise CheckFailed(f"serve origin {url} is localhost", "set INNGEST_SERVE_ORIGIN to the app's service URL")
    headers = {"X-Inngest-Signature": sign(b"", s.signing_key)} if s.signing_key else {}
    try:
        resp = await http.get(url, headers=headers)
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


async def check_registered(http: httpx.AsyncClient, s: Settings) -> str:
    url = s.serve_url or s.local_serve_url
    result = await sync_once(http, url, s.signing_key)
    if not result.ok:
        raise CheckFailed(f"registration failed: {result.message}", "see the reason; then `python -m app sync`")
    if result.modified:
        return "app registered, but the server had a stale definition: re-synced now"
    return "app registered and up to date"


CHECKS: list[Check] = [check_settings, check_server, check_kind, check_keys, check_origin, check_registered]


async def run_doctor(settings: Settings) -> int:
    failed = 0
    async with httpx.AsyncClient(timeout=10) as http:
        for check in CHECKS:
            try:
                print(f"ok   {await check(http, settings)}")
            except CheckFailed as exc:
                failed += 1
                print(f"FAIL {exc}")
            except httpx.HTTPError as exc:
                failed += 1
                print(f"FAIL {check.__name__.removeprefix('check_')}: {exc!r}")
    return 1 if failed else 0
