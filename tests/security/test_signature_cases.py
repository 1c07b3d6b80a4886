"""45 ways to get `X-Inngest-Signature` wrong, each answered with the same 401 as no signature at all; the
signing key and the fallback key (rotation) both pass."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.fuzz.harness import APP_ID, App, EventSink, invocation
from tests.security.serve import answer, serve_path

BODY = invocation(f"{APP_ID}-test-integration", {"message": "signed"})
SIG = b"X-Inngest-Signature"
Headers = list[tuple[bytes, bytes]]
Forge = Callable[[str, int], tuple[Headers, bytes]]  # (key, now) -> (signature headers, body sent)


def mac(key: bytes | str, message: bytes, algo: Any = hashlib.sha256) -> str:
    return hmac.new(key if isinstance(key, bytes) else key.encode(), message, algo).hexdigest()


def good(key: str, now: int, body: bytes = BODY) -> str:
    return f"t={now}&s={mac(key, body + str(now).encode())}"


def header(build: Callable[[str, int], str], body: bytes = BODY) -> Forge:
    """One signature header, the body as signed."""
    return lambda key, now: ([(SIG, build(key, now).encode())], body)


CASES: dict[str, Forge] = {
    "none": lambda key, now: ([], BODY),
    "empty": header(lambda key, now: ""),
    "twice": lambda key, now: ([(SIG, good(key, now).encode())] * 2, BODY),
    "valid-and-garbage": lambda key, now: ([(SIG, good(key, now).encode()), (SIG, b"t=1&s=00")], BODY),
    "t-only": header(lambda key, now: f"t={now}"),
    "s-only": header(lambda key, now: f"s={mac(key, BODY + str(now).encode())}"),
    "s-before-t": header(lambda key, now: "&".join(reversed(good(key, now).split("&")))),
    "upper-case-hex": header(lambda key, now: good(key, now).upper().replace("T=", "t=").replace("&S=", "&s=")),
    "mac-63-hex": header(lambda key, now: good(key, now)[:-1]),
    "mac-65-hex": header(lambda key, now: good(key, now) + "0"),
    "sha1": header(lambda key, now: f"t={now}&s={mac(key, BODY + str(now).encode(), hashlib.sha1)}"),
    "sha512": header(lambda key, now: f"t={now}&s={mac(key, BODY + str(now).encode(), hashlib.sha512)}"),
    "md5": header(lambda key, now: f"t={now}&s={mac(key, BODY + str(now).encode(), hashlib.md5)}"),
    "mac-without-t": header(lambda key, now: f"t={now}&s={mac(key, BODY)}"),
    "t-in-ms": header(lambda key, now: good(key, now * 1000)),
    "t-301-s-old": header(lambda key, now: good(key, now - 301)),
    "t-301-s-ahead": header(lambda key, now: good(key, now + 301)),
    "t-zero": header(lambda key, now: f"t=0&s={mac(key, BODY)}"),
    "t-negative": header(lambda key, now: good(key, -now)),
    "t-decimal": header(lambda key, now: f"t={now}.0&s={mac(key, BODY + f'{now}.0'.encode())}"),
    "t-plus-sign": header(lambda key, now: f"t=+{now}&s={mac(key, BODY + str(now).encode())}"),
    "t-13-digits": header(lambda key, now: good(key, now * 1000 + 1)),
    "extra-pair-after": header(lambda key, now: good(key, now) + "&v=1"),
    "extra-pair-before": header(lambda key, now: "v=1&" + good(key, now)),
    "trailing-ampersand": header(lambda key, now: good(key, now) + "&"),
    "url-encoded": header(lambda key, now: good(key, now).replace("=", "%3D").replace("&", "%26")),
    "semicolon": header(lambda key, now: good(key, now).replace("&", ";")),
    "comma": header(lambda key, now: good(key, now).replace("&", ",")),
    "non-ascii": lambda key, now: ([(SIG, f"t={now}&s={'é' * 64}".encode())], BODY),
    "github-style": header(lambda key, now: f"t={now}&s=sha256={mac(key, BODY + str(now).encode())}"),
    "random-key": header(lambda key, now: good(secrets.token_hex(32), now)),
    "key-with-prefix": header(lambda key, now: good("signkey-prod-" + key, now)),
    "key-bytes-from-hex": header(
        lambda key, now: f"t={now}&s={mac(bytes.fromhex(key), BODY + str(now).encode())}",
    ),
    "key-upper-case": header(lambda key, now: good(key.upper(), now)),
    "bearer-token-as-key": header(lambda key, now: good(hashlib.sha256(bytes.fromhex(key)).hexdigest(), now)),
    "empty-key": header(lambda key, now: good("", now)),
    "t-other-than-signed": header(lambda key, now: f"t={now}&s={mac(key, BODY + str(now - 1).encode())}"),
    "t-before-body": header(lambda key, now: f"t={now}&s={mac(key, str(now).encode() + BODY)}"),
    "body-altered": header(good, BODY.replace(b"signed", b"signeD")),
    "body-newline-added": header(good, BODY + b"\n"),
    "body-truncated": header(good, BODY[:-1]),
    "body-empty": header(good, b""),
    "another-body": header(lambda key, now: good(key, now, BODY + b" ")),
    "same-json-other-bytes": header(good, json.dumps(json.loads(BODY)).encode()),
    "other-header-name": lambda key, now: ([(b"X-Inngest-Signature-256", good(key, now).encode())], BODY),
}


@pytest.fixture(scope="module")
def keyed_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """One app for the module, with a fallback key as during a rotation."""
    sink = EventSink(secrets.token_hex(16)).start()
    app = App(tmp_path_factory.mktemp("signatures"), sink.url, event_key=sink.event_key)
    app.env["INNGEST_SIGNING_KEY_FALLBACK"] = secrets.token_hex(32)
    yield app.start()
    app.stop()
    sink.stop()


def post(app: App, signatures: Headers, body: bytes) -> httpx.Response:
    headers = [(b"Content-Type", b"application/json"), *signatures]
    return httpx.post(f"{app.url}{serve_path()}", content=body, headers=headers, timeout=30)


def test_there_are_45_cases() -> None:
    assert len(CASES) == 45


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_wrong_signature_gets_the_same_401(keyed_app: App, case: str) -> None:
    unsigned = answer(post(keyed_app, [], BODY))
    assert unsigned[0] == 401
    signatures, body = CASES[case](keyed_app.signing_key, int(time.time()))
    assert answer(post(keyed_app, signatures, body)) == unsigned


@pytest.mark.parametrize("which", ["INNGEST_SIGNING_KEY", "INNGEST_SIGNING_KEY_FALLBACK"])
def test_the_key_and_the_fallback_key_pass(keyed_app: App, which: str) -> None:
    res = post(keyed_app, [(SIG, good(keyed_app.env[which], int(time.time())).encode())], BODY)
    assert (res.status_code, res.json()) == (200, "signed")
