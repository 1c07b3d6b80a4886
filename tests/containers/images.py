"""The images a rendered compose project references, built locally when the engine lacks them.

Nothing is pulled: each image reference is matched by repository to a recipe below (a Dockerfile in
this directory and the files its context needs) and built FROM the debootstrap base with
`--network host`, tagged exactly as the compose files reference it. So the compose files run
unchanged, and a service added to them later gets its image as soon as its repository has a recipe.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.containers.base import CACHE_DIR
from tests.containers.engine import Engine, log
from tests.support import ROOT, require_tool
from tests.support.inngest import inngest_binary

HERE = Path(__file__).resolve().parent
# The app image the test override names (APP_IMAGE): the root Dockerfile on the debootstrap base.
APP_IMAGE = "ct/app:test"


def _inngest_files() -> dict[str, Path]:
    # scripts/inngest_bin.py builds the version docker-compose.yml pins, the version the tag names.
    return {"inngest": Path(inngest_binary())}


def _postgres_files() -> dict[str, Path]:
    return {"postgres-entrypoint.sh": HERE / "postgres-entrypoint.sh"}


def _prometheus_files() -> dict[str, Path]:
    return {"prometheus": Path(require_tool("prometheus", "apt-get install prometheus (Debian's package)")).resolve()}


@dataclass(frozen=True)
class Recipe:
    dockerfile: Path
    # Context files (name in the context -> source); None builds with the repository as the context.
    files: Callable[[], dict[str, Path]] | None


RECIPES: dict[str, Recipe] = {
    "ct/app": Recipe(ROOT / "Dockerfile", None),
    "inngest/inngest": Recipe(HERE / "inngest.Dockerfile", _inngest_files),
    "postgres": Recipe(HERE / "postgres.Dockerfile", _postgres_files),
    "redis": Recipe(HERE / "redis.Dockerfile", dict),
    "prom/prometheus": Recipe(HERE / "prometheus.Dockerfile", _prometheus_files),
}


def repository(ref: str) -> str:
    """`postgres:17.6-alpine` -> `postgres` (a registry host with a port keeps its colon)."""
    name, _, tag = ref.rpartition(":")
    return name if name and "/" not in tag else ref


def referenced_images(config: dict[str, Any]) -> set[str]:
    """Every image the services of a rendered project (`compose config --format json`) run."""
    return {svc["image"] for svc in config.get("services", {}).values() if svc.get("image")}


def _context(engine: Engine, ref: str, recipe: Recipe) -> Path:
    if recipe.files is None:
        return ROOT
    dest = engine.root / "contexts" / ref.replace("/", "_").replace(":", "_")
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for name, src in recipe.files().items():
        try:
            os.link(src, dest / name)  # the server binary is large: no copy when on the same file system
        except OSError:
            shutil.copy2(src, dest / name)
    shutil.copy2(recipe.dockerfile, dest / "Dockerfile")
    return dest


def _cache_file(base: str, ref: str, recipe: Recipe, context: Path) -> Path | None:
    """Where a recipe's image is saved between sessions: keyed by the base and every context file. The app
    (the repository as its context) is always built afresh: it is what the tests are about."""
    if recipe.files is None:
        return None
    h = hashlib.sha256(f"{base}\0{ref}".encode())
    for path in sorted(context.iterdir()):
        h.update(path.name.encode() + b"\0")
        with open(path, "rb") as f:
            h.update(hashlib.file_digest(f, "sha256").digest())
    return CACHE_DIR / "images" / f"{ref.replace('/', '_').replace(':', '_')}-{h.hexdigest()[:16]}.tar"


def _build(engine: Engine, base: str, ref: str, failures: list[str]) -> None:
    recipe = RECIPES.get(repository(ref))
    if recipe is None:
        failures.append(f"{ref}: not on the engine and no recipe for {repository(ref)!r} in tests/containers/images.py")
        return
    started = time.monotonic()
    context = _context(engine, ref, recipe)
    cached = _cache_file(base, ref, recipe, context)
    if cached and cached.is_file():
        engine.run("load", "-i", str(cached), timeout=300)
        engine.timings[f"load {ref}"] = time.monotonic() - started
        return
    log_path = engine.root / f"build-{ref.replace('/', '_')}.log"
    # The engine's BuildKit would fetch the `# syntax=` frontend from a registry: the classic builder
    # treats that line as a comment (no Dockerfile here uses a BuildKit-only feature).
    env = dict(engine.env, DOCKER_BUILDKIT="0")
    cmd = [engine.docker, "build", "--network", "host", "--force-rm", "--build-arg", f"BASE_IMAGE={base}"]
    cmd += ["-t", ref, "-f", str(context / "Dockerfile" if recipe.files is not None else recipe.dockerfile)]
    with open(log_path, "w") as out:
        proc = subprocess.run([*cmd, str(context)], env=env, stdout=out, stderr=subprocess.STDOUT, timeout=900)
    engine.timings[f"build {ref}"] = time.monotonic() - started
    if proc.returncode != 0:
        failures.append(f"{ref} (exit {proc.returncode}):\n{log_path.read_text()[-4000:]}")
        return
    if cached:
        cached.parent.mkdir(parents=True, exist_ok=True)
        for old in cached.parent.glob(cached.name.rsplit("-", 1)[0] + "-*.tar"):
            old.unlink()  # an older build of the same tag
        partial = cached.with_suffix(".partial")
        engine.run("save", "-o", str(partial), ref, timeout=300)
        partial.rename(cached)


def ensure_images(engine: Engine, base: str, refs: Iterable[str]) -> None:
    """Build, in parallel, every image in `refs` the engine does not have yet."""
    missing = sorted(ref for ref in set(refs) if not engine.has_image(ref))
    if not missing:
        return
    failures: list[str] = []
    started = time.monotonic()
    threads = [threading.Thread(target=_build, args=(engine, base, ref, failures)) for ref in missing]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - started
    if failures:
        raise AssertionError("image build failed: " + "\n".join(failures))
    done = [(k, v) for k, v in engine.timings.items() if k.split(" ", 1)[-1] in missing]
    log(", ".join(f"{k} {v:.1f} s" for k, v in done) + f" (in parallel: {wall:.1f} s)")
    engine.timings["builds wall"] = engine.timings.get("builds wall", 0.0) + wall
