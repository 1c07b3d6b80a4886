"""Where the bytes of a venv are. Runs in the app image: `/opt/venv/bin/python -c <this file's text> MODULE...`.

Standard library only (it runs in the image, not in the test's venv). Prints one JSON object: the venv's
total file bytes, by kind (byte code, sources, compiled extensions, the rest), by distribution (each file
counted once, for the distribution whose RECORD lists it), the largest extensions, and which of the
MODULEs the venv's interpreter can import.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import sys


def kind(path: str) -> str:
    name = os.path.basename(path)
    if name.endswith(".pyc"):
        return "byte code"
    if name.endswith(".py"):
        return "sources"
    if name.endswith(".so") or ".so." in name:
        return "extensions"
    return "other"


def main() -> None:
    root = sys.prefix
    sizes: dict[str, int] = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                sizes[os.path.realpath(path)] = os.lstat(path).st_size
    owner: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        base = str(dist.locate_file(""))
        for file in dist.files or ():
            owner.setdefault(os.path.realpath(os.path.join(base, str(file))), dist.metadata["Name"])
    by_dist: dict[str, int] = {}
    kinds: dict[str, int] = {}
    for path, size in sizes.items():
        name = owner.get(path, "(no distribution)")
        by_dist[name] = by_dist.get(name, 0) + size
        kinds[kind(path)] = kinds.get(kind(path), 0) + size
    extensions = sorted((n, os.path.relpath(p, root)) for p, n in sizes.items() if kind(p) == "extensions")
    print(
        json.dumps(
            {
                "total": sum(sizes.values()),
                "kinds": kinds,
                "by_dist": dict(sorted(by_dist.items(), key=lambda item: -item[1])),
                "largest_extensions": extensions[::-1][:6],
                "bin": sorted(os.listdir(os.path.join(root, "bin"))),
                "importable": [m for m in sys.argv[1:] if importlib.util.find_spec(m) is not None],
            }
        )
    )


if __name__ == "__main__":  # also under `python -c`
    main()
