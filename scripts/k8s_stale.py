#!/usr/bin/env python3
"""Print the objects one overlay renders and another does not, as `kubectl delete` names.

`make k8s-prune FROM=ha OVERLAY=cloud` deletes them before the switch: what `kubectl apply -k` of the
new overlay would leave behind (a server, its StatefulSets, PDB, policies, ServiceAccount). Kept on
purpose: PersistentVolumeClaims (the old server's data), the Namespace, and generated ConfigMaps whose
name the new overlay also generates (running pods still reference the old hash).
Usage: k8s_stale.py FROM_DIR TO_DIR   (env KUBECTL: the kubectl that renders, default `kubectl`)
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import yaml

KEEP = {"PersistentVolumeClaim", "Namespace"}


def rendered(directory: str) -> list[dict[str, Any]]:
    kubectl = os.environ.get("KUBECTL", "kubectl")
    out = subprocess.run([kubectl, "kustomize", directory], check=True, capture_output=True, text=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def name(doc: dict[str, Any]) -> str:
    """`kind.group/name` (`service/x` for the core group): unambiguous for `kubectl delete`."""
    group = doc["apiVersion"].rpartition("/")[0]
    return f"{doc['kind'].lower()}{'.' + group if group else ''}/{doc['metadata']['name']}"


def _generated(doc: dict[str, Any]) -> str:
    """A generated ConfigMap's name without its content hash (`app-config-579b9bk699` -> `app-config`)."""
    return str(doc["metadata"]["name"]).rpartition("-")[0]


def stale(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[str]:
    keep = {name(d) for d in new}
    generated = {_generated(d) for d in new if d["kind"] == "ConfigMap"}
    return sorted(
        name(d)
        for d in old
        if d["kind"] not in KEEP
        and name(d) not in keep
        and not (d["kind"] == "ConfigMap" and _generated(d) in generated)
    )


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    print("\n".join(stale(rendered(argv[1]), rendered(argv[2]))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
