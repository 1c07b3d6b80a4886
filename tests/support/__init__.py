"""Helpers shared by every test suite (and the benchmarks): one definition of each."""

from tests.support.polling import wait_until
from tests.support.ports import free_port
from tests.support.tools import ROOT, require_tool, unavailable

__all__ = ["ROOT", "free_port", "require_tool", "unavailable", "wait_until"]
