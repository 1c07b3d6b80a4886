"""Which function a verified serve request may run.

The server signs the body, not the query string, so `fnId` is the caller's to choose: a body signed for one
function, replayed within the signature window at another `fnId`, would run the other function. The body
names what it was signed for: the event(s) a run started with. Each must be one the function is called with
(inngest v1.43.0, checked against the real server in tests/real):

- a name its event triggers match (the server's wildcards: `app/*`, `app/user.*`); a cron trigger:
  `inngest/scheduled.timer`;
- `inngest/function.invoked` (step.invoke, the UI's Invoke) whose `data._inngest.fn_id` is this function;
- for the failure handler the SDK adds (`<id>-failure`): `inngest/function.failed` whose `data.function_id`
  is the failed function.

Functions that share a trigger event are not told apart: each of them was started by that same event.
The function's UUID in `ctx.fn_id` is no binding: the server keeps it across URL changes, so the app cannot
derive it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from starlette.datastructures import QueryParams

from app.sdk import FAILED_EVENT, INVOKED_EVENT, Callee

ANOTHER_FUNCTION = "Unauthorized: the signed request is for another function"
NOT_A_CALL = "the signed body is not a function call (a JSON object with an event)"


class Bindings:
    def __init__(self, callees: Sequence[Callee], app_id: str) -> None:
        self.app_id = app_id
        self.callees = {c.id: c for c in callees}

    def problem(self, query_string: bytes, body: bytes) -> tuple[int, str] | None:
        """(status, message) when a verified POST must not reach the SDK; None when it may."""
        # The query as the SDK reads it (the last of repeated keys), so both pick the same function.
        params = dict(QueryParams(query_string).items())
        if params.get("probe"):
            return None  # the SDK answers a probe without running anything
        callee = self._callee(params.get("fnId"))
        if callee is None:
            return None  # no such function: the SDK answers 500 function_not_found and runs nothing
        events = _events(body)
        if events is None:
            return 400, NOT_A_CALL
        if all(self._allows(callee, event) for event in events):
            return None
        return 401, ANOTHER_FUNCTION

    def _callee(self, fn_id: str | None) -> Callee | None:
        # The SDK's lookup (comm_lib handler `_get_function`): the id, then the id prefixed with the app's.
        if fn_id is None:
            return None
        return self.callees.get(fn_id) or self.callees.get(f"{self.app_id}-{fn_id}")

    def _allows(self, callee: Callee, event: dict[str, Any]) -> bool:
        name, data = event["name"], event.get("data")
        data = data if isinstance(data, dict) else {}
        if name == INVOKED_EVENT:
            meta = data.get("_inngest")
            return isinstance(meta, dict) and meta.get("fn_id") == callee.id
        if callee.failure_of is not None:
            return name == FAILED_EVENT and data.get("function_id") == callee.failure_of
        return not callee.events.isdisjoint(_triggers_matching(name))


def _events(body: bytes) -> list[dict[str, Any]] | None:
    """`event` and every entry of `events` (empty when the server sends the batch through its API)."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    batch = doc.get("events") or []
    if not isinstance(batch, list):
        return None
    events = [doc.get("event"), *batch]
    if not all(isinstance(e, dict) and isinstance(e.get("name"), str) for e in events):
        return None
    return events


def _triggers_matching(name: str) -> set[str]:
    """The trigger names an event name matches: itself and a wildcard after each `/` and each `.` in it
    (inngest pkg/event_trigger_patterns `GenerateMatchingPatterns`)."""
    found = {name}
    for sep in "/.":
        parts = name.split(sep)
        found.update(sep.join(parts[: n + 1]) + sep + "*" for n in range(len(parts) - 1))
    return found
