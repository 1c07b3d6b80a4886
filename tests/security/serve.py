"""Calls to the serve path (`/api/inngest`) of a `secure_app` process, as the server or a forger makes them."""

from __future__ import annotations

import re
import socket
import sqlite3
import time
from typing import Any

import httpx

from tests.fuzz.harness import APP_ID, App

MB = 1 << 20


def serve_path(fn: str = "test-integration") -> str:
    return f"/api/inngest?fnId={APP_ID}-{fn}&stepId=step"


def post_serve(
    app: App, body: bytes, signature: str | bytes | None, fn: str = "test-integration", method: str = "POST"
) -> httpx.Response:
    """One call; a bytes signature is sent as is (non-ASCII too), None sends no signature header."""
    headers = {b"Content-Type": b"application/json"}
    if signature is not None:
        headers[b"X-Inngest-Signature"] = signature if isinstance(signature, bytes) else signature.encode()
    return httpx.request(method, f"{app.url}{serve_path(fn)}", content=body, headers=headers, timeout=30)


def forged(ts: int | None = None) -> str:
    """Well-formed and fresh, with a MAC no key produced: only the HMAC itself can refuse it."""
    return f"t={int(time.time()) if ts is None else ts}&s={'0' * 64}"


def answer(res: httpx.Response) -> tuple[int, bytes, dict[str, str]]:
    """Status, body and headers (without Date), to compare two answers byte for byte."""
    return res.status_code, res.content, {k: v for k, v in res.headers.items() if k != "date"}


def refusal_lines(app: App) -> list[str]:
    return [line for line in app.log_path.read_text().splitlines() if "serve request refused" in line]


def ledger_rows(app: App) -> int:
    """Side effects the app recorded (its SQLite ledger): 0 until a function performed one."""
    with sqlite3.connect(app.env["SIDE_EFFECTS_DB"]) as db:
        rows: Any = db.execute("SELECT count(*) FROM side_effects").fetchone()
    return int(rows[0])


def read_answer(sock: socket.socket) -> bytes:
    """One response, head and Content-Length body, as far as it arrived before the connection ended."""
    answered = b""
    while True:
        top, end, rest = answered.partition(b"\r\n\r\n")
        length = re.search(rb"(?i)content-length: (\d+)", top)
        if end and length and len(rest) >= int(length.group(1)):
            return answered
        try:
            data = sock.recv(4096)
        except ConnectionResetError:
            return answered
        if not data:
            return answered
        answered += data
