"""The one settings model. The only place the environment is read; validated once at start."""

from __future__ import annotations

import enum
import ipaddress
import os
import re
import string
import sys
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from app import __version__

# Inngest Cloud signing keys look like `signkey-prod-<hex>`; `inngest start` only takes the bare hex.
MIN_EVENT_API_TOKEN_LENGTH = 16
EXIT_CONFIG = 2  # bad configuration, distinct from a failed check (1)
_KEY_PREFIX = re.compile(r"^signkey-\w+-")
_LOCAL_HOSTNAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
# The order workflow's durations (seconds): how long an order waits for its payment, and the window
# for the customer to cancel before it ships. Settings, so a test run or a staging stack can shorten them.
DEFAULT_PAYMENT_TIMEOUT = 24 * 3600.0
DEFAULT_COOL_OFF = 600.0
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Settings that are secrets: each also accepts `<NAME>_FILE`, a path to read it from (Docker/k8s secrets).
SECRET_SETTINGS = (
    "inngest_signing_key",
    "inngest_signing_key_fallback",
    "inngest_event_key",
    "database_url",
    "event_api_keys",
)
_POSTGRES_SCHEMES = {"postgresql", "postgres", "postgresql+psycopg"}
_SQLITE_SCHEMES = {"sqlite", "sqlite+aiosqlite"}
_DATABASE_URL_HINT = "use postgresql://user:password@host:5432/dbname or sqlite:///path/to/file.sqlite3"
# The server retries a failing step at most 20 times, waiting 15 s, 30 s, 1, 2, 5, 10, 20, 40 min, 1 h, then
# 2 h (plus up to 30 s of jitter) between attempts (inngest pkg/backoff): about 24 h 10 min from the first
# attempt to the last. A ledger record younger than that may still be asked for again.
MIN_SIDE_EFFECTS_RETENTION_HOURS = 25
# A week: that schedule plus days of margin for a server outage or a backlog.
DEFAULT_SIDE_EFFECTS_RETENTION_HOURS = 168.0
# The server sends at most 4 MiB per call (inngest pkg/consts MaxSDKRequestBodySize: larger state is fetched
# through its API instead); the serve path reads 1 MiB more at most, then answers 413.
SERVER_MAX_REQUEST_BYTES = 4 * 1024 * 1024
DEFAULT_SERVE_MAX_BODY_BYTES = 5 * 1024 * 1024


class Mode(enum.StrEnum):
    DEV = "dev"
    SELF_HOSTED = "self-hosted"
    CLOUD = "cloud"


class ConfigError(Exception):
    """Bad configuration: one human line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def bare_signing_key(key: str) -> str:
    """The hex part of a signing key (what `inngest start --signing-key` accepts)."""
    return _KEY_PREFIX.sub("", key, count=1)


def _key_problem(var: str, key: str) -> str | None:
    bare = bare_signing_key(key)
    if not bare or len(bare) % 2 or any(c not in string.hexdigits for c in bare):
        return (
            f"{var}: must be even-length hex (optionally prefixed signkey-<env>-); "
            "generate one with `openssl rand -hex 32`"
        )
    return None


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOCAL_HOSTNAMES:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


class SecretFiles(PydanticBaseSettingsSource):
    """`<NAME>_FILE` for every secret setting: read once, the trailing newline stripped; both set is an error."""

    def __init__(self, settings_cls: type[BaseSettings], environ: dict[str, str]) -> None:
        super().__init__(settings_cls)
        self.environ = {k.upper(): v for k, v in environ.items()}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads every secret at once

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        problems: list[str] = []
        for name in SECRET_SETTINGS:
            var = name.upper()
            path = self.environ.get(f"{var}_FILE")
            if not path:
                continue
            if self.environ.get(var):
                problems.append(f"{var}_FILE: {var} is set too; set only one of them")
                continue
            try:
                values[name] = Path(path).read_text().rstrip("\r\n")
            except OSError as exc:
                problems.append(f"{var}_FILE: cannot read {path}: {exc.strerror or exc}")
            except UnicodeDecodeError:
                problems.append(f"{var}_FILE: {path} is not UTF-8 text")
        if problems:
            raise ConfigError(problems)
        return values


class Settings(BaseSettings):
    """Every variable the app understands. Unknown `INNGEST_MODE` values and bad keys stop the start."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    # Safe default: without an explicit mode the app runs in production mode and insists on keys.
    inngest_mode: Mode = Mode.CLOUD
    inngest_app_id: str = Field(default="fastapi-app", min_length=1, max_length=64)
    inngest_base_url: str | None = None
    inngest_signing_key: str | None = None
    inngest_signing_key_fallback: str | None = None
    inngest_event_key: str | None = None
    inngest_serve_origin: str | None = None
    inngest_serve_path: str = "/api/inngest"
    # Allows a loopback serve origin outside dev: for a server on the same host (tests, single box).
    inngest_allow_loopback_origin: bool = False
    inngest_sync_on_startup: bool | None = None
    inngest_sync_timeout: float = Field(default=60.0, gt=0)
    # Traces are on when this is set (an OTLP/HTTP collector, e.g. http://otel-collector:4318); the other
    # standard OTEL_* variables are read by the OpenTelemetry SDK itself.
    otel_exporter_otlp_endpoint: str | None = None

    host: str = "0.0.0.0"
    port: int = Field(default=8000, ge=1, le=65535)
    # Prometheus' /metrics, on its own port so the users' Service and Ingress never carry it; 0: not served.
    metrics_port: int = Field(default=9000, ge=0, le=65535)
    web_concurrency: int = Field(default=1, ge=1, le=64)
    graceful_shutdown_timeout: float = Field(default=20.0, ge=0)
    shutdown_drain_seconds: float | None = Field(default=None, ge=0)
    # What one client may hold of the server (app.http_limits): time to send the request headers, their size
    # and count, time to send the body, idle keep-alive time, and requests in flight per worker (503 above it;
    # probes exempt).
    http_header_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    http_body_timeout_seconds: float = Field(default=60.0, gt=0, le=3600)
    http_idle_timeout_seconds: float = Field(default=5.0, gt=0, le=3600)
    http_max_header_bytes: int = Field(default=64 * 1024, ge=1024, le=1024 * 1024)
    http_max_headers: int = Field(default=100, ge=10, le=1000)
    http_limit_concurrency: int = Field(default=1000, ge=1, le=100_000)
    log_level: str = "INFO"
    # /tmp is the one writable path of the read-only container (a tmpfs / emptyDir).
    prometheus_multiproc_dir: Path = Path("/tmp/app-metrics")  # noqa: S108
    # The ledger's database. Without DATABASE_URL: the SQLite file SIDE_EFFECTS_DB (one host only).
    database_url: str | None = None
    side_effects_db: Path = Path("/tmp/app-side-effects.sqlite3")  # noqa: S108
    # The nightly cleanup forgets records older than this (see DEFAULT_SIDE_EFFECTS_RETENTION_HOURS).
    side_effects_retention_hours: float = DEFAULT_SIDE_EFFECTS_RETENTION_HOURS
    app_version: str = __version__
    order_payment_timeout: float = Field(default=DEFAULT_PAYMENT_TIMEOUT, gt=0)
    order_cool_off: float = Field(default=DEFAULT_COOL_OFF, ge=0)
    # Bearer tokens for POST /api/events (see app.event_auth); SecretStr keeps them out of reprs and logs.
    event_api_keys: SecretStr | None = None
    event_api_max_batch: int = Field(default=100, ge=1, le=1000)
    # Signed requests from the server older or newer than this are refused (replays, clock skew).
    signature_max_age_seconds: float = Field(default=300.0, gt=0, le=3600)
    # Request bodies on the serve path (every mode); below the server's own maximum a legitimate call could fail.
    serve_max_body_bytes: int = Field(default=DEFAULT_SERVE_MAX_BODY_BYTES, ge=SERVER_MAX_REQUEST_BYTES, le=64 << 20)
    # Serve-path bytes held per worker before their HMAC is checked, all requests together: without it
    # HTTP_LIMIT_CONCURRENCY forged bodies could each hold SERVE_MAX_BODY_BYTES (5 GiB at the defaults).
    serve_unverified_budget_bytes: int = Field(default=64 << 20, ge=SERVER_MAX_REQUEST_BYTES, le=4 << 30)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, SecretFiles(settings_cls, dict(os.environ)), env_settings

    @model_validator(mode="after")
    def _check(self) -> Settings:
        problems = _problems(self)
        if problems:
            raise ConfigError(problems)
        return self

    # Derived values: computed once, never re-read from the environment.
    @property
    def is_dev(self) -> bool:
        return self.inngest_mode is Mode.DEV

    @cached_property
    def api_base_url(self) -> str | None:
        """Where the SDK sends registrations and events; None means Inngest Cloud."""
        if self.inngest_mode is Mode.CLOUD:
            return None
        return (self.inngest_base_url or "http://127.0.0.1:8288").rstrip("/")

    @property
    def database(self) -> str:
        """The ledger's database URL as given (DATABASE_URL, else the SQLite default)."""
        return self.database_url or f"sqlite:///{self.side_effects_db}"

    @property
    def event_api_tokens(self) -> list[tuple[str, tuple[str, ...]]]:
        """(token, event-name patterns) per EVENT_API_KEYS entry; no patterns: any name."""
        return event_api_tokens(self.event_api_keys.get_secret_value() if self.event_api_keys else "")

    @property
    def signing_key(self) -> str | None:
        return bare_signing_key(self.inngest_signing_key) if self.inngest_signing_key else None

    @property
    def sync_on_startup(self) -> bool:
        if self.inngest_sync_on_startup is not None:
            return self.inngest_sync_on_startup
        return self.inngest_mode is not Mode.CLOUD

    @property
    def drain_seconds(self) -> float:
        if self.shutdown_drain_seconds is not None:
            return self.shutdown_drain_seconds
        return 0.0 if self.is_dev else 3.0

    @property
    def serve_url(self) -> str | None:
        """The URL the Inngest server calls the app at (what gets registered)."""
        if not self.inngest_serve_origin:
            return None
        return self.inngest_serve_origin.rstrip("/") + self.inngest_serve_path

    @property
    def local_serve_url(self) -> str:
        """The serve endpoint over loopback, for the app's own checks."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}{self.inngest_serve_path}"


def _problems(s: Settings) -> list[str]:
    problems: list[str] = []
    production = s.inngest_mode is not Mode.DEV
    if not s.inngest_serve_path.startswith("/") or s.inngest_serve_path.endswith("/"):
        problems.append("INNGEST_SERVE_PATH: must start with / and not end with / (e.g. /api/inngest)")

    if s.otel_exporter_otlp_endpoint and not _has_http_scheme(s.otel_exporter_otlp_endpoint):
        problems.append(
            "OTEL_EXPORTER_OTLP_ENDPOINT: must be the http(s) URL of an OTLP/HTTP collector "
            "(e.g. http://otel-collector:4318); unset it to turn tracing off"
        )
    if s.metrics_port == s.port:
        problems.append(f"METRICS_PORT: must differ from PORT ({s.port}); 0 turns the metrics listener off")
    if s.log_level.upper() not in LOG_LEVELS:
        problems.append(f"LOG_LEVEL: must be one of {', '.join(LOG_LEVELS)} (got {s.log_level!r})")

    if s.inngest_mode is Mode.SELF_HOSTED and not s.inngest_base_url:
        problems.append(
            "INNGEST_BASE_URL: required in self-hosted mode; set it to the server URL (e.g. http://inngest:8288)"
        )
    if s.inngest_mode is Mode.CLOUD and s.inngest_base_url:
        problems.append(
            "INNGEST_BASE_URL: must not be set in cloud mode (the SDK talks to Inngest Cloud); "
            "unset it or use INNGEST_MODE=self-hosted"
        )
    if s.inngest_base_url and not _has_http_scheme(s.inngest_base_url):
        problems.append("INNGEST_BASE_URL: must be an http(s) URL with a host (e.g. http://inngest:8288)")

    if production:
        if not s.inngest_signing_key:
            problems.append(
                f"INNGEST_SIGNING_KEY: required in {s.inngest_mode} mode; "
                + (
                    "use the Cloud signing key (signkey-prod-...)"
                    if s.inngest_mode is Mode.CLOUD
                    else "use the server's key (openssl rand -hex 32)"
                )
            )
        if not s.inngest_event_key:
            problems.append(f"INNGEST_EVENT_KEY: required in {s.inngest_mode} mode; use the server's event key")
        if not s.inngest_serve_origin:
            problems.append(
                f"INNGEST_SERVE_ORIGIN: required in {s.inngest_mode} mode; set the URL the server reaches "
                "the app at (e.g. http://app:8000)"
            )
    for var, key in (
        ("INNGEST_SIGNING_KEY", s.inngest_signing_key),
        ("INNGEST_SIGNING_KEY_FALLBACK", s.inngest_signing_key_fallback),
    ):
        if key and (problem := _key_problem(var, key)):
            problems.append(problem)

    if s.event_api_keys is not None:
        problems.extend(_event_api_key_problems(s.event_api_keys.get_secret_value()))
    ledger = _sqlite_file(s.database)
    if ledger is not None and _inside(ledger, s.prometheus_multiproc_dir):
        problems.append(
            "PROMETHEUS_MULTIPROC_DIR: contains the SQLite ledger (SIDE_EFFECTS_DB or DATABASE_URL), and is "
            "emptied at every start with several workers; point them at different directories"
        )

    if s.inngest_serve_origin:
        parts = urlsplit(s.inngest_serve_origin)
        if not _has_http_scheme(s.inngest_serve_origin):
            problems.append(
                "INNGEST_SERVE_ORIGIN: needs a scheme and host, e.g. http://app:8000 "
                "(without a scheme the SDK registers https://)"
            )
        elif parts.path.strip("/") or parts.query:
            problems.append(
                "INNGEST_SERVE_ORIGIN: origin only (scheme://host:port); put the path in INNGEST_SERVE_PATH"
            )
        elif production and not s.inngest_allow_loopback_origin and _is_loopback(parts.hostname or ""):
            problems.append(
                "INNGEST_SERVE_ORIGIN: points at localhost, which the server cannot reach from its own "
                "container; use the app's service URL (e.g. http://app:8000)"
            )
    if s.database_url is not None and (problem := _database_url_problem(s.database_url)):
        problems.append(problem)
    if s.side_effects_retention_hours < MIN_SIDE_EFFECTS_RETENTION_HOURS:
        problems.append(
            f"SIDE_EFFECTS_RETENTION_HOURS: must be >= {MIN_SIDE_EFFECTS_RETENTION_HOURS} (the server retries a "
            "step for up to about 24 h; a shorter retention could perform a retried step twice)"
        )
    return problems


def _database_url_problem(url: str) -> str | None:
    # Never echo the URL: it carries the password.
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in _POSTGRES_SCHEMES:
        try:
            parts.port  # noqa: B018 (raises on a non-numeric port)
        except ValueError:
            return f"DATABASE_URL: the port is not a number; {_DATABASE_URL_HINT}"
        if not parts.hostname or not parts.path.strip("/"):
            return f"DATABASE_URL: a PostgreSQL URL needs a host and a database name; {_DATABASE_URL_HINT}"
        return None
    if scheme in _SQLITE_SCHEMES:
        if parts.netloc or not parts.path.lstrip("/") or parts.path.lstrip("/") == ":memory:":
            # An in-memory database is private to one connection: the ledger would forget everything.
            return f"DATABASE_URL: a SQLite URL needs a file path (three slashes, then the path); {_DATABASE_URL_HINT}"
        return None
    return f"DATABASE_URL: unsupported scheme {scheme or '(none)'!r}; {_DATABASE_URL_HINT}"


def event_api_tokens(raw: str) -> list[tuple[str, tuple[str, ...]]]:
    """`tok1=shop/order.*|test/*,tok2` -> [(tok1, (shop/order.*, test/*)), (tok2, ())]; empty entries skipped."""
    tokens = []
    for entry in raw.split(","):
        token, _, patterns = entry.strip().partition("=")
        if token:
            tokens.append((token, tuple(p for p in patterns.split("|") if p)))
    return tokens


def _event_api_key_problems(raw: str) -> list[str]:
    # Worded by position, never with the token itself.
    problems = []
    for n, entry in enumerate((e for e in raw.split(",") if e.strip()), start=1):
        token, sep, patterns = entry.strip().partition("=")
        if not token.isascii() or not token.isprintable() or " " in token:
            problems.append(f"EVENT_API_KEYS: token {n} must be printable ASCII without spaces")
        elif len(token) < MIN_EVENT_API_TOKEN_LENGTH:
            problems.append(
                f"EVENT_API_KEYS: token {n} is shorter than {MIN_EVENT_API_TOKEN_LENGTH} characters; "
                "generate one with `openssl rand -hex 32`"
            )
        elif sep and not [p for p in patterns.split("|") if p]:
            problems.append(f"EVENT_API_KEYS: token {n} has '=' but no event-name pattern after it")
    return problems


def _sqlite_file(url: str) -> Path | None:
    parts = urlsplit(url)
    if parts.scheme.lower() not in _SQLITE_SCHEMES or not parts.path[1:]:
        return None
    return Path(parts.path[1:])  # sqlite:///relative or sqlite:////absolute


def _inside(path: Path, directory: Path) -> bool:
    return path.resolve().is_relative_to(directory.resolve())


def _has_http_scheme(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def known_env_vars() -> set[str]:
    """Names of every environment variable the settings model reads."""
    return {name.upper() for name in Settings.model_fields} | {f"{name.upper()}_FILE" for name in SECRET_SETTINGS}


def load_settings(**overrides: Any) -> Settings:
    """Read and validate the environment; raises ConfigError with one line per problem."""
    try:
        return Settings(**overrides)
    except ConfigError:
        raise
    except ValidationError as exc:
        raise ConfigError([_describe(err) for err in exc.errors()]) from None


def settings_or_exit() -> Settings:
    """load_settings for entry points: one `config error:` line per problem on stderr, then exit 2."""
    try:
        return load_settings()
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"config error: {problem}", file=sys.stderr)
        sys.exit(EXIT_CONFIG)


def _describe(err: Any) -> str:
    loc = err.get("loc") or ()
    var = str(loc[0]).upper() if loc else "settings"
    ctx = err.get("ctx") or {}
    if isinstance(ctx.get("error"), ConfigError):
        return "\n".join(ctx["error"].problems)
    if var == "INNGEST_MODE":
        return "INNGEST_MODE: must be one of dev, self-hosted, cloud"
    return f"{var}: {err.get('msg', 'invalid value')}"
