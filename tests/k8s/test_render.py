"""Every overlay renders and validates strictly: core kinds against the Kubernetes OpenAPI schemas
(kubernetes-validate), prometheus-operator kinds against their CRD schemas (vendored in crds/)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.conftest import ROOT, require_tool
from tests.k8s.conftest import CRD_KINDS, OVERLAYS, Doc

# 1.30: the oldest release with the preStop `sleep` action on by default; the tool's default is
# its newest bundled release.
K8S_VERSIONS = ("1.30.0", None)
CRDS = Path(__file__).parent / "crds"


@pytest.mark.parametrize("version", K8S_VERSIONS, ids=lambda v: v or "latest")
def test_core_kinds_validate_strictly(overlay: tuple[str, list[Doc]], version: str | None, tmp_path: Path) -> None:
    name, docs = overlay
    tool = require_tool("kubernetes-validate", "run `make venv`")
    core = [d for d in docs if d["kind"] not in CRD_KINDS]
    manifest = tmp_path / f"{name}.yaml"
    manifest.write_text(yaml.safe_dump_all(core))
    cmd = [tool, "--strict", "--quiet", *(["-k", version] if version else []), str(manifest)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    # --quiet only prints problems; a warning would mean an unknown kind slipped through.
    assert result.stdout.strip() == "", result.stdout


def _strict(schema: Any) -> Any:
    """CRD openAPIV3Schema -> JSON Schema that rejects unknown fields (the API server prunes them)."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def _crd_validator(kind: str, api_version: str = "v1") -> jsonschema.protocols.Validator:
    for path in CRDS.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        if crd["spec"]["names"]["kind"] == kind:
            (version,) = [v for v in crd["spec"]["versions"] if v["name"] == api_version]
            schema = _strict(version["schema"]["openAPIV3Schema"])
            schema["properties"]["metadata"] = {"type": "object"}  # ObjectMeta: checked by the API server
            return jsonschema.Draft7Validator(schema)
    raise AssertionError(f"no CRD for {kind} in {CRDS}")


@pytest.mark.parametrize("kind", sorted(CRD_KINDS))
def test_custom_resources_match_crd_schema(overlay: tuple[str, list[Doc]], kind: str) -> None:
    _, docs = overlay
    objects = [d for d in docs if d["kind"] == kind]
    assert objects, f"no {kind} rendered"
    validator = _crd_validator(kind)
    for obj in objects:
        assert obj["apiVersion"] == "monitoring.coreos.com/v1"
        errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(obj)]
        assert not errors, errors


def test_strict_crd_schema_catches_a_typo() -> None:
    validator = _crd_validator("ServiceMonitor")
    bad = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "x"},
        "spec": {"selector": {}, "endpoints": [{"port": "http", "paht": "/metrics"}]},
    }
    assert any("paht" in e.message for e in validator.iter_errors(bad))


@pytest.mark.parametrize("name", OVERLAYS)
def test_make_k8s_render_prints_the_overlay(name: str, rendered: dict[str, list[Doc]]) -> None:
    require_tool("kubectl", "install kubectl")
    out = subprocess.run(
        ["make", "-s", "--no-print-directory", "k8s-render", f"OVERLAY={name}"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert [d for d in yaml.safe_load_all(out) if d] == rendered[name]


def test_make_k8s_render_rejects_an_unknown_overlay() -> None:
    result = subprocess.run(
        ["make", "-s", "--no-print-directory", "k8s-render", "OVERLAY=nope"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "unknown OVERLAY=nope" in result.stderr
