"""Wire details of the Inngest server <-> SDK protocol, written from the server's sources (v1.43.0).

Only the standard library (the stand-in as a whole needs nothing but starlette and uvicorn).
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import hmac
import json
import math
import os
import re
import time
import urllib.parse
from typing import Any

# pkg/authn/signing_key_strategy.go `keyRegexp` (and inngestgo signature.go `normalizeKey`).
_KEY_PREFIX = re.compile(r"^signkey-\w+-")


def bare_key(key: str) -> str:
    """The signing key without its human-readable `signkey-<env>-` prefix."""
    return _KEY_PREFIX.sub("", key, count=1)


def hashed_signing_key(key: str) -> str:
    """pkg/authn `HashedSigningKey`: sha256 over the hex-decoded key, hex encoded (the SDK's bearer token)."""
    return hashlib.sha256(bytes.fromhex(bare_key(key))).hexdigest()


def bearer_ok(header: str | None, signing_key: str) -> bool:
    """pkg/authn `HandleSigningKey`: the token may be the plain key or its hash, prefixes ignored."""
    if not header or not header.startswith("Bearer "):
        return False
    token = bare_key(header[len("Bearer ") :].strip())
    if not token:
        return False
    trusted = bare_key(signing_key)
    return hmac.compare_digest(token, trusted) or hmac.compare_digest(token, hashed_signing_key(trusted))


def canonical_json(value: Any) -> bytes:
    """RFC 8785 (JCS) serialisation, which the server signs (`jcs.Transform` in driver.MarshalV1 and
    inngestgo `Sign`). Keys sorted by UTF-16 code units, no whitespace, ECMAScript number format."""
    return _jcs(value).encode("utf-8")


def go_json(value: dict[str, str]) -> bytes:
    """Go's `json.Marshal` of a map[string]string: sorted keys, no whitespace, UTF-8, and `<`, `>`, `&`,
    U+2028, U+2029 escaped as \\uXXXX (which RFC 8785 does not do, so the two can differ)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    for char in "<>&\u2028\u2029":
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text.encode()


def _jcs(value: Any) -> str:
    if value is None or value is True or value is False:
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int):
        return str(value) if abs(value) <= 2**53 else _jcs_number(float(value))  # IEEE-754 like JS
    if isinstance(value, float):
        return _jcs_number(value)
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: kv[0].encode("utf-16-be"))
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + _jcs(v) for k, v in items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_jcs(v) for v in value) + "]"
    raise TypeError(f"not JSON: {type(value).__name__}")


def _jcs_number(x: float) -> str:
    """ECMAScript Number::toString over the shortest round-trip digits (what RFC 8785 requires)."""
    if math.isnan(x) or math.isinf(x):
        raise ValueError("NaN/Infinity are not JSON")
    if x == 0:
        return "0"
    _sign, digits_t, exp = decimal.Decimal(repr(abs(x))).normalize().as_tuple()
    digits = "".join(map(str, digits_t))
    k, n = len(digits), len(digits) + int(exp)  # value = 0.<digits> * 10**n
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        e = n - 1
        text = digits[0] + ("." + digits[1:] if k > 1 else "") + "e" + ("+" if e > 0 else "-") + str(abs(e))
    return ("-" if x < 0 else "") + text


def _mac(key: str, message: bytes, ts: int) -> str:
    mac = hmac.new(bare_key(key).encode("utf-8"), message, hashlib.sha256)
    mac.update(str(ts).encode("utf-8"))
    return mac.hexdigest()


def sign_body(body: bytes, key: str, ts: int | None = None) -> str:
    """`X-Inngest-Signature` for a request the server sends (httpdriver `Sign`, inngestgo `Sign`):
    HMAC-SHA256 keyed with the bare key's UTF-8 bytes over the canonical body then the unix seconds."""
    message = canonical_json(json.loads(body)) if body else b""
    return sign_canonical(message, key, ts)


def sign_canonical(message: bytes, key: str, ts: int | None = None) -> str:
    """`sign_body` for a body that is already canonical JSON (what the executor sends)."""
    ts = int(time.time()) if ts is None else ts
    return f"t={ts}&s={_mac(key, message, ts)}"


def verify_response(body: bytes, header: str | None, key: str) -> bool:
    """The SDK signs its response body bytes as sent (inngest-py `net.sign_response`, no canonicalisation)."""
    if not header:
        return False
    parsed = urllib.parse.parse_qs(header)
    try:
        ts, sig = int(parsed["t"][0]), parsed["s"][0]
    except (KeyError, ValueError, IndexError):
        return False
    return hmac.compare_digest(sig, _mac(key, body, ts))


# --- identifiers -----------------------------------------------------------------------------------

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid() -> str:
    """Event and run ids are ULIDs on the real server (48-bit ms time + 80 random bits)."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


# --- durations -------------------------------------------------------------------------------------

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d|w)")


def parse_duration(text: str) -> float:
    """Seconds in a duration like `1h30m`, `500ms`, `2d` (str2duration, used by opcode.go)."""
    text = text.strip()
    parts = _PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"bad duration {text!r}")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def sleep_seconds(op: dict[str, Any], now: float | None = None) -> float:
    """pkg/execution/state/opcode.go `SleepDuration`: `opts.duration`, else the op's name; a value of
    10+ characters that parses as a date means "until" (the Python SDK sends an ISO time as the name)."""
    raw = str((op.get("opts") or {}).get("duration") or op.get("name") or "")
    if not raw:
        return 0.0
    if len(raw) >= 10:
        try:
            until = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if until.tzinfo is None:
                until = until.replace(tzinfo=dt.UTC)
            now = time.time() if now is None else now
            return max(0.0, round(until.timestamp() - now))
    return parse_duration(raw)


# --- expressions -----------------------------------------------------------------------------------
# The server evaluates CEL. The stand-in understands the subset the stack uses: `&&`-joined comparisons
# (==, !=, <, <=, >, >=) of dotted paths (`event.data.x`, `async.data.x`) and JSON-ish literals.

_CMP = re.compile(r"^\s*(.+?)\s*(==|!=|<=|>=|<|>)\s*(.+?)\s*$")
_MISSING = object()


class UnsupportedExpression(ValueError):
    pass


def _lookup(root: dict[str, Any], path: str) -> Any:
    node: Any = root
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _operand(text: str, scope: dict[str, Any]) -> Any:
    text = text.strip()
    if text[:1] in "'\"" and text[-1:] == text[:1] and len(text) >= 2:
        return text[1:-1]
    if text in ("true", "false", "null"):
        return json.loads(text)
    try:
        return json.loads(text)
    except ValueError:
        pass
    if re.fullmatch(r"[A-Za-z_][\w]*(\.[\w-]+)*", text):
        if text.split(".")[0] not in scope:
            raise UnsupportedExpression(f"unknown variable in {text!r}")
        return _lookup(scope, text)
    raise UnsupportedExpression(f"unsupported operand {text!r}")


def evaluate(expression: str, scope: dict[str, Any]) -> bool:
    """True when every `&&` clause holds. Missing fields compare unequal (CEL would error: no match)."""
    if "||" in expression or "(" in expression:
        raise UnsupportedExpression(f"unsupported expression {expression!r}")
    for clause in expression.split("&&"):
        match = _CMP.match(clause)
        if not match:
            raise UnsupportedExpression(f"unsupported clause {clause!r}")
        left, op, right = match.group(1), match.group(2), match.group(3)
        a, b = _operand(left, scope), _operand(right, scope)
        if a is _MISSING or b is _MISSING:
            return False
        try:
            ok = {
                "==": a == b,
                "!=": a != b,
                "<": a < b,
                "<=": a <= b,
                ">": a > b,
                ">=": a >= b,
            }[op]
        except TypeError:
            return False
        if not ok:
            return False
    return True


def interpolate_event(expression: str, event: dict[str, Any]) -> str:
    """executor.go `handleGeneratorWaitForEvent`: `event.*` references are replaced by the trigger
    event's values before the pause is stored, leaving only `async.*` to match later events."""

    def repl(match: re.Match[str]) -> str:
        value = _lookup({"event": event}, match.group(0))
        return "null" if value is _MISSING else json.dumps(value)

    return re.sub(r"(?<![\w.])event(\.[\w-]+)+", repl, expression)


def name_matches(pattern: str, name: str) -> bool:
    """Event triggers match exactly, or by prefix with a trailing `*` (`shop/*`)."""
    if pattern.endswith("*"):
        return name.startswith(pattern[:-1])
    return pattern == name
