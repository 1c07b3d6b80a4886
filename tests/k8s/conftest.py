"""Rendered kustomize overlays, shared by the tests in this folder (rendered once per session)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, require_tool

K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("self-hosted", "ha", "cloud")
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
APP_IMAGE = "fastapi-inngest-app"
SECRET_NAME = "inngest-keys"

Doc = dict[str, Any]


def kubectl() -> str:
    return require_tool("kubectl", "install kubectl (kustomize is built in): apt-get install kubectl")


def render(path: Path) -> list[Doc]:
    out = subprocess.run(
        [kubectl(), "kustomize", str(path)], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[Doc]]:
    return {name: render(K8S / "overlays" / name) for name in OVERLAYS}


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest, rendered: dict[str, list[Doc]]) -> tuple[str, list[Doc]]:
    return request.param, rendered[request.param]


def find(docs: list[Doc], kind: str, name: str | None = None) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def one(docs: list[Doc], kind: str, name: str) -> Doc:
    found = find(docs, kind, name)
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def pod_specs(docs: list[Doc]) -> Iterator[tuple[Doc, Doc]]:
    """(workload, pod spec) for every Deployment, StatefulSet and Job."""
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield d, d["spec"]["template"]["spec"]


def containers(docs: list[Doc], init: bool = True) -> Iterator[tuple[Doc, Doc]]:
    for workload, spec in pod_specs(docs):
        for c in spec["containers"] + (spec.get("initContainers", []) if init else []):
            yield workload, c


def app_config(docs: list[Doc]) -> dict[str, str]:
    """Data of the generated app ConfigMap (name carries a content hash)."""
    cms = [d for d in find(docs, "ConfigMap") if d["metadata"]["name"].startswith("app-config-")]
    assert len(cms) == 1
    return dict(cms[0]["data"])


class _ComposeLoader(yaml.SafeLoader):
    """Compose files use `!reset`/`!override` tags; their values do not matter here."""


_ComposeLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def load_compose(path: str) -> Doc:
    doc: Doc = yaml.load((ROOT / path).read_text(), Loader=_ComposeLoader)  # noqa: S506 - SafeLoader subclass
    return doc
