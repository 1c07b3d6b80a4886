"""Sync: polling the `--sdk-url`s with signed PUTs, and `/fn/register`."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from tests.standin import protocol, wire
from tests.standin.core import Core
from tests.standin.model import (
    DEFAULT_RETRIES,
    Function,
)


class Registration(Core):
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
        """pkg/deploy/deploy.go `Ping`: signed PUT with body {"url": ...} and X-Inngest-Server-Kind; the
        body is Go's json.Marshal bytes, the signature inngestgo `Sign`'s, over their canonical form."""
        url = self._norm(url)
        body = protocol.go_json({"url": url})
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
