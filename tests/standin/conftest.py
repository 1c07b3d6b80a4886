"""Fixtures for the stand-in's own tests (shared with tests/e2e)."""

from tests.standin.fixtures import *  # noqa: F403
