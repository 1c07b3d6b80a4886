"""The opt-in components (ingress, ingress-inngest-cloud, inngest-ui-auth, keda, secret-files), added to the overlays
they are meant for: strict schema validation, exact routes, the NetworkPolicy flows they add, and KEDA
taking over from the HPA."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import require_tool
from tests.k8s.conftest import K8S, Doc, find, one, render
from tests.k8s.test_networkpolicy import EXPECTED, flows
from tests.k8s.test_render import K8S_VERSIONS, _crd_validator

# overlay -> the opt-in components an operator adds to it (as the component files describe).
COMBOS = {
    "self-hosted": ("ingress", "inngest-ui-auth", "secret-files"),
    "ha": ("ingress", "inngest-ui-auth", "keda", "secret-files"),
    "cloud": ("ingress", "ingress-inngest-cloud"),
}
UI_FLOW = ("ingress", "inngest", "ingress-nginx/*", "8288/TCP")


@pytest.fixture(scope="module")
def combos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Doc]]:
    """Each overlay with its opt-in components, as the overlay's own `components:` would add them."""
    out = {}
    for overlay, components in COMBOS.items():
        root = tmp_path_factory.mktemp(overlay)
        kustomization = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "namespace": "fastapi-inngest",
            # kustomize refuses absolute paths: relative to this temporary directory.
            "resources": [os.path.relpath(K8S / "overlays" / overlay, root)],
            "components": [os.path.relpath(K8S / "components" / c, root) for c in components],
        }
        (root / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
        out[overlay] = render(root)
    return out


@pytest.mark.parametrize("version", K8S_VERSIONS, ids=lambda v: v or "latest")
@pytest.mark.parametrize("overlay", COMBOS)
def test_core_kinds_validate_strictly(
    combos: dict[str, list[Doc]], overlay: str, version: str | None, tmp_path: Path
) -> None:
    tool = require_tool("kubernetes-validate", "run `make venv`")
    core = [
        d for d in combos[overlay] if "monitoring.coreos.com" not in d["apiVersion"] and d["kind"] != "ScaledObject"
    ]
    manifest = tmp_path / "all.yaml"
    manifest.write_text(yaml.safe_dump_all(core))
    cmd = [tool, "--strict", "--quiet", *(["-k", version] if version else []), str(manifest)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "", result.stdout


def _routes(ingress: Doc) -> dict[str, tuple[str, str, str]]:
    (rule,) = ingress["spec"]["rules"]
    return {
        p["path"]: (p["pathType"], p["backend"]["service"]["name"], p["backend"]["service"]["port"]["name"])
        for p in rule["http"]["paths"]
    }


@pytest.mark.parametrize("overlay", COMBOS)
def test_app_ingress_routes_only_the_public_api_over_tls(combos: dict[str, list[Doc]], overlay: str) -> None:
    ingress = one(combos[overlay], "Ingress", "app")
    expected = {"/api/events": ("Exact", "app", "http")}
    if overlay == "cloud":  # Inngest Cloud calls the SDK endpoint from the internet
        expected["/api/inngest"] = ("Exact", "app", "http")
    assert _routes(ingress) == expected  # never /metrics, never a Prefix `/`
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"]
    (tls,) = ingress["spec"]["tls"]
    assert tls["secretName"] == "app-tls" and tls["hosts"] == [ingress["spec"]["rules"][0]["host"]]
    # The named port exists on the Service the route points at.
    service = one(combos[overlay], "Service", "app")
    assert "http" in {p["name"] for p in service["spec"]["ports"]}


@pytest.mark.parametrize("overlay", COMBOS)
def test_the_users_service_and_ingresses_never_carry_the_metrics_port(
    combos: dict[str, list[Doc]], overlay: str
) -> None:
    """/metrics is on its own port behind Service app-metrics; nothing a user reaches routes there."""
    docs = combos[overlay]
    app = one(docs, "Service", "app")
    assert [(p["port"], p["targetPort"]) for p in app["spec"]["ports"]] == [(8000, "http")]
    backends = [
        (ingress["metadata"]["name"], path["backend"]["service"])
        for ingress in find(docs, "Ingress")
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    ]
    assert backends
    for name, backend in backends:
        assert backend["name"] != "app-metrics", name
        assert backend["port"] not in ({"name": "metrics"}, {"number": 9000}), name


@pytest.mark.parametrize("overlay", ["self-hosted", "ha"])
def test_inngest_ui_is_behind_basic_auth_and_only_the_controller_may_reach_it(
    combos: dict[str, list[Doc]], overlay: str
) -> None:
    docs = combos[overlay]
    ingress = one(docs, "Ingress", "inngest-ui")
    notes = ingress["metadata"]["annotations"]
    assert notes["nginx.ingress.kubernetes.io/auth-type"] == "basic"
    assert notes["nginx.ingress.kubernetes.io/auth-secret"] == "inngest-ui-basic-auth"
    assert find(docs, "Secret") == []  # the htpasswd Secret is created by the operator, never rendered
    assert _routes(ingress) == {"/": ("Prefix", "inngest", "http")}
    assert ingress["spec"]["tls"][0]["secretName"] == "inngest-ui-tls"
    # Exactly one flow more than the overlay alone: the ingress controller to the server's UI port.
    assert flows(docs) == EXPECTED[overlay] | {UI_FLOW}


def test_cloud_ingress_adds_no_network_flow(combos: dict[str, list[Doc]]) -> None:
    # The controller -> app:8000 flow is already part of the overlay (components/network-policy).
    assert flows(combos["cloud"]) == EXPECTED["cloud"]


def test_keda_scales_the_server_on_queue_depth_and_replaces_the_app_hpa(combos: dict[str, list[Doc]]) -> None:
    docs = combos["ha"]
    assert find(docs, "HorizontalPodAutoscaler") == []  # KEDA owns the HPAs now; two would fight
    validator = _crd_validator("ScaledObject", "v1alpha1")
    objects = {d["metadata"]["name"]: d for d in find(docs, "ScaledObject")}
    assert set(objects) == {"inngest", "app"}
    for obj in objects.values():
        assert obj["apiVersion"] == "keda.sh/v1alpha1"
        errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(obj)]
        assert not errors, errors
        one(docs, "Deployment", obj["spec"]["scaleTargetRef"]["name"])  # the target exists
    (server,) = objects["inngest"]["spec"]["triggers"]
    assert server["type"] == "prometheus"
    # Each replica reports the whole shared queue: only max() keeps the figure independent of the replica count.
    assert server["metadata"]["query"].replace(" ", "").startswith("max(inngest_queue_depth")
    assert objects["inngest"]["spec"]["minReplicaCount"] >= 2  # the PDB of the ha overlay keeps one
    (app,) = objects["app"]["spec"]["triggers"]
    assert (app["type"], app["metricType"]) == ("cpu", "Utilization")


def test_strict_keda_schema_catches_a_typo() -> None:
    validator = _crd_validator("ScaledObject", "v1alpha1")
    bad = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {}}
    bad["spec"] = {"scaleTargetRef": {"name": "inngest"}, "minReplicas": 2, "triggers": []}
    assert any("minReplicas" in e.message for e in validator.iter_errors(bad))


def test_keda_is_offered_for_the_ha_storage_only() -> None:
    text = (K8S / "components" / "keda" / "kustomization.yaml").read_text()
    assert "ha overlay only" in text
    for overlay in ("self-hosted", "cloud"):
        overlay_text = (K8S / "overlays" / overlay / "kustomization.yaml").read_text()
        assert "components/keda" not in overlay_text


@pytest.mark.parametrize("overlay", ["self-hosted", "ha"])
def test_secret_files_give_the_app_and_the_sync_job_their_keys_as_files(
    combos: dict[str, list[Doc]], overlay: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.settings import known_env_vars, load_settings

    docs = combos[overlay]
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("app-config"))
    for kind, name, container in (("Deployment", "app", "app"), ("Job", "app-sync", "sync")):
        spec = one(docs, kind, name)["spec"]["template"]["spec"]
        (c,) = [c for c in spec["containers"] if c["name"] == container]
        env = {e["name"]: e for e in c["env"]}
        assert not {"INNGEST_SIGNING_KEY", "INNGEST_EVENT_KEY"} & set(env), f"{name}: key still in the environment"
        (mount,) = [m for m in c["volumeMounts"] if m["name"] == "inngest-keys"]
        assert mount["readOnly"] is True
        (volume,) = [v for v in spec["volumes"] if v["name"] == "inngest-keys"]
        assert volume["secret"]["secretName"] == "inngest-keys"
        # The Secret as the kubelet would project it, then the app's own settings model reads it.
        keys = {"INNGEST_SIGNING_KEY": "ab" * 32, "INNGEST_EVENT_KEY": "event-key"}
        files = tmp_path / name
        files.mkdir()
        for item in volume["secret"]["items"]:
            (files / item["path"]).write_text(keys[item["key"]] + "\n")
        for var in known_env_vars():
            monkeypatch.delenv(var, raising=False)
        for var, value in config.get("data", {}).items():
            monkeypatch.setenv(var, value)
        for var, entry in env.items():
            if "value" in entry:
                monkeypatch.setenv(var, entry["value"].replace(mount["mountPath"], str(files)))
        settings = load_settings()
        assert (settings.signing_key, settings.inngest_event_key) == (keys["INNGEST_SIGNING_KEY"], "event-key")
