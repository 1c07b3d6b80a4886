"""Fixtures of the container tests: a private Docker engine, the base image, the images every compose
mode references, and the compose projects (see engine.py, base.py, images.py, stack.py).

Needs root (dockerd, debootstrap). Without root or a tool the tests skip, and fail under REQUIRE_ALL=1.
Run alone: `.venv/bin/python -m pytest tests/containers -s` (progress and timings on the terminal).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.containers.base import import_base_image
from tests.containers.engine import Engine, log, private_engine
from tests.containers.images import ensure_images, referenced_images
from tests.containers.stack import Stack, new_stack

# Every mode the tests bring up: their images are built together, in parallel, once per session.
MODES = ("", "ha", "dev")


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    with private_engine() as eng:
        yield eng
        log("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in eng.timings.items()))


@pytest.fixture(scope="session")
def base_image(engine: Engine) -> str:
    return import_base_image(engine)


@pytest.fixture(scope="session")
def images(engine: Engine, base_image: str) -> set[str]:
    """Every image the rendered projects of MODES reference, built where the engine lacks it."""
    refs: set[str] = set()
    for mode in MODES:
        refs |= referenced_images(new_stack(engine, mode).config())
    ensure_images(engine, base_image, refs)
    return refs


@pytest.fixture
def make_stack(engine: Engine, images: set[str]) -> Iterator[Callable[..., Stack]]:
    """Factory of compose projects; each one is removed (`down -v`) at the end of the test."""
    made: list[Stack] = []

    def make(mode: str = "", **values: str) -> Stack:
        stack = new_stack(engine, mode, **values)
        made.append(stack)
        return stack

    yield make
    for stack in made:
        stack.remove()
