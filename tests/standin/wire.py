"""A small asyncio HTTP/1.1 client with a keep-alive pool, for the stand-in's calls to the app.

httpx costs milliseconds of CPU per request in its pool bookkeeping; at a thousand concurrent runs the
stand-in, not the app, would be the bottleneck. This client does just what the executor needs: POST a
body, read a Content-Length or chunked response, reuse idle connections for a short while. It also
keeps the stand-in's dependencies to starlette and uvicorn.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from dataclasses import dataclass


class TransportError(Exception):
    """`kind` is `connect` (nothing was sent), `timeout`, or `reset` (the connection broke after sending)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


_Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter, float]


class Client:
    def __init__(self, timeout: float = 30.0, keepalive: float = 2.0) -> None:
        self.timeout = timeout
        self.keepalive = keepalive  # below uvicorn's 5 s idle timeout: no idle-close races in normal runs
        self._idle: dict[tuple[str, int], list[_Conn]] = {}

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Reply:
        return await self.request("POST", url, body, headers)

    async def request(self, method: str, url: str, body: bytes, headers: dict[str, str]) -> Reply:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http":
            raise TransportError("connect", f"unsupported scheme in {url!r} (the stand-in speaks plain http)")
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        head = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        reader, writer = await self._connection(host, port)
        try:
            writer.write(request)
            reply, keep = await asyncio.wait_for(self._read(reader), self.timeout)
        except TimeoutError:
            writer.close()
            raise TransportError("timeout", f"no response within {self.timeout}s") from None
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            writer.close()
            raise TransportError("reset", f"{type(exc).__name__}: {exc}") from None
        if keep:
            self._idle.setdefault((host, port), []).append((reader, writer, time.monotonic() + self.keepalive))
        else:
            writer.close()
        return reply

    async def _connection(self, host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        idle = self._idle.get((host, port), [])
        now = time.monotonic()
        while idle:
            reader, writer, expires = idle.pop()
            if expires > now and not reader.at_eof() and not writer.is_closing():
                return reader, writer
            writer.close()
        try:
            return await asyncio.wait_for(asyncio.open_connection(host, port), self.timeout)
        except (OSError, TimeoutError) as exc:
            raise TransportError("connect", f"{type(exc).__name__}: {exc}") from None

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> tuple[Reply, bool]:
        status_line = await reader.readuntil(b"\r\n")
        version, status, *_ = status_line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
            await reader.readuntil(b"\r\n")
            body = b"".join(chunks)
        else:
            body = await reader.read()
            return Reply(int(status), headers, body), False
        keep = headers.get("connection", "").lower() != "close" and version == "HTTP/1.1"
        return Reply(int(status), headers, body), keep

    async def close(self) -> None:
        for conns in self._idle.values():
            for _, writer, _ in conns:
                writer.close()
        self._idle.clear()
