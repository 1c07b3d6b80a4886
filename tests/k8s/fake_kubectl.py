"""A stand-in `kubectl` for the `make k8s-apply` / `k8s-prune` recipes: records every call, answers
from a scenario, and hands `kustomize` to the real kubectl.

Scenario (environment): FAKE_KUBECTL_DIR (calls.log is written there), FAKE_JOB_STATES (the Job's
true conditions per poll, `;`-separated; the last one repeats, e.g. ";;Complete"), FAKE_JOB_DEADLINE
(its activeDeadlineSeconds), FAKE_SERVER ("1": deployment/inngest exists), REAL_KUBECTL.
`wait --for=condition=complete` behaves as kubectl's does: it returns once the Job is Complete and
otherwise sleeps out its --timeout.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

STATE = Path(os.environ["FAKE_KUBECTL_DIR"])


def job_state() -> str:
    states = os.environ.get("FAKE_JOB_STATES", "Complete").split(";")
    counter = STATE / "polls"
    n = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(n + 1))
    return states[min(n, len(states) - 1)]


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)([smh]?)", value)
    assert match, value
    return int(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def main(argv: list[str]) -> int:
    if argv[:1] == ["kustomize"]:
        os.execv(os.environ["REAL_KUBECTL"], [os.environ["REAL_KUBECTL"], *argv])  # noqa: S606 - a fixed binary
    # Recorded without the namespace flag: `-n fastapi-inngest delete ...` -> `delete ...`.
    args = argv[2:] if argv[:1] == ["-n"] else argv
    with open(STATE / "calls.log", "a") as log:
        log.write(" ".join(args) + "\n")
    joined = " ".join(args)
    if args[:3] == ["get", "job", "app-sync"] and "activeDeadlineSeconds" in joined:
        print(os.environ.get("FAKE_JOB_DEADLINE", "900"), end="")
    elif args[:3] == ["get", "job", "app-sync"] and "conditions" in joined:
        state = job_state()
        print("".join(f"{s} " for s in state.split(",") if s), end="")
    elif args[:3] == ["get", "deployment", "inngest"]:
        print("deployment.apps/inngest" if os.environ.get("FAKE_SERVER") == "1" else "", end="")
    elif args[:1] == ["logs"]:
        print("sync failed (rejected): server refused the registration: signing key invalid")
    elif args[:1] == ["wait"]:
        timeout = next((seconds(a.split("=", 1)[1]) for a in args if a.startswith("--timeout=")), 30.0)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if "Complete" in job_state().split(","):
                return 0
            time.sleep(0.2)
        print("error: timed out waiting for the condition on jobs/app-sync", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
