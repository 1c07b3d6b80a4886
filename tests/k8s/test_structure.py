"""Overlays compose the shared components; they do not copy workloads from each other."""

from __future__ import annotations

import pytest
import yaml

from tests.k8s.conftest import K8S, OVERLAYS

# What an overlay may define itself: things only that overlay needs.
OVERLAY_OWN_KINDS = {"PersistentVolumeClaim", "PodDisruptionBudget", "NetworkPolicy"}


@pytest.mark.parametrize("name", OVERLAYS)
def test_overlay_is_base_plus_components_plus_small_patches(name: str) -> None:
    directory = K8S / "overlays" / name
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    resources = kustomization["resources"]
    assert resources[0] == "../../base"
    assert all(c.startswith("../../components/") for c in kustomization["components"])
    assert kustomization["components"][-1] == "../../components/images", "images must be last to pin everything"
    for own in resources[1:]:
        for doc in yaml.safe_load_all((directory / own).read_text()):
            assert doc["kind"] in OVERLAY_OWN_KINDS, f"{name}/{own}: {doc['kind']} belongs in base or a component"
    for patch in kustomization.get("patches", []):
        text = (directory / patch["path"]).read_text()
        assert len(text.splitlines()) < 60, f"{name}/{patch['path']}: a patch, not a copy"
