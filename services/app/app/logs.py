"""JSON log lines on stdout; records inside an Inngest run carry its run id, function and step (and the
trace id when tracing is on)."""

from __future__ import annotations

import contextvars
import inspect
import logging
import logging.config
import typing
from typing import Any

import inngest
from pythonjsonlogger.json import JsonFormatter

from app import tracing

# Set by the Inngest middleware for the duration of one invocation; read by the log filter.
run_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("run_context", default=None)


class _RunContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.pop("color_message", None)  # uvicorn's ANSI copy of the message
        ctx = run_context.get()
        if ctx:
            for key, value in ctx.items():
                setattr(record, key, value)
        if trace_id := tracing.current_trace_id():
            record.trace_id = trace_id
        return True


class RunLogContext(inngest.Middleware):
    """Puts run id, function and attempt in the log context of an invocation, and the step inside steps."""

    async def transform_input(
        self,
        ctx: inngest.Context | inngest.ContextSync,
        function: inngest.Function[typing.Any],
        steps: inngest.StepMemos,
    ) -> None:
        run_context.set({"run_id": ctx.run_id, "function": function.local_id, "attempt": ctx.attempt})
        tracing.start_invocation(ctx.run_id, function.local_id, ctx.attempt)
        if isinstance(ctx.step, inngest.Step):
            ctx.step = typing.cast(inngest.Step, _StepLogContext(ctx.step))

    async def before_response(self) -> None:
        tracing.end_invocation()


class _StepLogContext:
    """Stands in for `ctx.step`: a `step.run` handler runs with its step id in the log context."""

    def __init__(self, step: inngest.Step) -> None:
        self._step = step

    def __getattr__(self, name: str) -> Any:
        return getattr(self._step, name)

    async def run(self, step_id: str, handler: Any, *args: Any, **kwargs: Any) -> Any:
        async def in_step(*handler_args: Any) -> Any:
            run = run_context.get() or {}
            token = run_context.set({**run, "step": step_id})
            try:
                with tracing.step_span(step_id, run):
                    result = handler(*handler_args)
                    return await result if inspect.isawaitable(result) else result
            finally:
                run_context.reset(token)

        return await self._step.run(step_id, in_step, *args, **kwargs)


def logging_config(level: str) -> dict[str, Any]:
    """The one logging setup of every process (`logging.config.dictConfig`): JSON lines on stdout through the
    root handler; uvicorn's loggers lose their text handlers and propagate to it. Given to uvicorn too, so its
    reloader process and each process it restarts log JSON as well (uvicorn's default config is text)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {
                "()": JsonFormatter,
                "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
                "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
                "datefmt": "%Y-%m-%dT%H:%M:%S%z",
            }
        },
        "filters": {"run_context": {"()": _RunContextFilter}},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "json",
                "filters": ["run_context"],
            }
        },
        "root": {"handlers": ["stdout"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            # One line per request is the HTTP metrics' job; access logs would double the hot path's I/O.
            "uvicorn.access": {"handlers": [], "propagate": True, "level": "WARNING"},
            "httpx": {"level": "WARNING"},  # one line per request to the server is noise
        },
    }


def configure_logging(level: str) -> None:
    logging.config.dictConfig(logging_config(level))
