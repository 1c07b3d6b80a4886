"""NetworkPolicies allow exactly the listed flows, in both directions, between pods that exist."""

from __future__ import annotations

from typing import Any

import pytest

from tests.k8s.conftest import Doc, find, pod_specs

Flow = tuple[str, str, str, str]  # (direction, pod, peer, port/protocol)

PRIVATE = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10"]
# NodeLocal DNSCache's link-local listen address (served by a hostNetwork pod: no selector matches it).
NODE_LOCAL_DNS = "169.254.20.10/32"

COMMON: set[Flow] = {
    # DNS for every pod: CoreDNS pods, or NodeLocal DNSCache in front of them.
    ("egress", "*", "kube-system/kube-dns", "53/UDP"),
    ("egress", "*", "kube-system/kube-dns", "53/TCP"),
    ("egress", "*", NODE_LOCAL_DNS, "53/UDP"),
    ("egress", "*", NODE_LOCAL_DNS, "53/TCP"),
    # Ingress controller -> the app's API port; Prometheus -> its metrics port, and nothing else each.
    ("ingress", "app", "ingress-nginx/*", "8000/TCP"),
    ("ingress", "app", "monitoring/prometheus", "9000/TCP"),
    # Sync Job -> app (its /readyz wait and the sync PUT).
    ("egress", "app-sync", "same/app", "8000/TCP"),
    ("ingress", "app", "same/app-sync", "8000/TCP"),
}
SERVER: set[Flow] = {
    # Server -> app serve path.
    ("egress", "inngest", "same/app", "8000/TCP"),
    ("ingress", "app", "same/inngest", "8000/TCP"),
    # App -> server API.
    ("egress", "app", "same/inngest", "8288/TCP"),
    ("ingress", "inngest", "same/app", "8288/TCP"),
    # Sync Job waits for the server's /health.
    ("egress", "app-sync", "same/inngest", "8288/TCP"),
    ("ingress", "inngest", "same/app-sync", "8288/TCP"),
    # Prometheus -> server /metrics.
    ("ingress", "inngest", "monitoring/prometheus", "8288/TCP"),
}
DATASTORES: set[Flow] = {
    ("egress", "inngest", "same/postgres", "5432/TCP"),
    ("ingress", "postgres", "same/inngest", "5432/TCP"),
    ("egress", "inngest", "same/redis", "6379/TCP"),
    ("ingress", "redis", "same/inngest", "6379/TCP"),
}
# The app's database (its migrate init container runs in the app pod): the only new flow it brings.
APP_DB: set[Flow] = {
    ("egress", "app", "same/postgres", "5432/TCP"),
    ("ingress", "postgres", "same/app", "5432/TCP"),
}
CLOUD: set[Flow] = {
    # App -> Inngest Cloud; sync Job -> the public serve origin.
    ("egress", "app", "public", "443/TCP"),
    ("egress", "app-sync", "public", "443/TCP"),
    # ... where the cluster routes the load balancer's IP straight to the ingress controller pod.
    ("egress", "app-sync", "ingress-nginx/*", "443/TCP"),
}
EXPECTED = {
    "self-hosted": COMMON | SERVER | APP_DB,
    "ha": COMMON | SERVER | APP_DB | DATASTORES,
    "cloud": COMMON | CLOUD,
}


def _pods(selector: dict[str, Any]) -> list[str]:
    if not selector:
        return ["*"]
    assert set(selector) <= {"matchLabels", "matchExpressions"}, selector
    if "matchLabels" in selector:
        assert list(selector["matchLabels"]) in (["app.kubernetes.io/name"], ["k8s-app"]), selector
        return list(selector["matchLabels"].values())
    (expr,) = selector["matchExpressions"]
    assert expr["key"] == "app.kubernetes.io/name" and expr["operator"] == "In", expr
    return list(expr["values"])


def _peers(peer: dict[str, Any]) -> list[str]:
    if "ipBlock" in peer:
        if peer["ipBlock"] == {"cidr": NODE_LOCAL_DNS}:
            return [NODE_LOCAL_DNS]
        assert peer["ipBlock"] == {"cidr": "0.0.0.0/0", "except": PRIVATE}, peer
        return ["public"]
    assert set(peer) <= {"namespaceSelector", "podSelector"}, peer
    if "namespaceSelector" in peer:
        assert list(peer["namespaceSelector"]["matchLabels"]) == ["kubernetes.io/metadata.name"], peer
        namespace = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
    else:
        namespace = "same"
    return [f"{namespace}/{pod}" for pod in _pods(peer.get("podSelector", {}))]


def flows(docs: list[Doc]) -> set[Flow]:
    found: set[Flow] = set()
    for policy in find(docs, "NetworkPolicy"):
        spec = policy["spec"]
        for direction, key in (("ingress", "from"), ("egress", "to")):
            for rule in spec.get(direction, []):
                assert direction.capitalize() in spec["policyTypes"], policy["metadata"]["name"]
                assert rule.get(key) and rule.get("ports"), f"{policy['metadata']['name']}: allow-all rule"
                for pod in _pods(spec["podSelector"]):
                    for peer in rule[key]:
                        for peer_name in _peers(peer):
                            for port in rule["ports"]:
                                found.add((direction, pod, peer_name, f"{port['port']}/{port['protocol']}"))
    return found


def test_policies_allow_exactly_the_listed_flows(overlay: tuple[str, list[Doc]]) -> None:
    name, docs = overlay
    found = flows(docs)
    assert found - EXPECTED[name] == set(), "unexpected flows"
    assert EXPECTED[name] - found == set(), "missing flows"


def test_default_deny_covers_every_pod(overlay: tuple[str, list[Doc]]) -> None:
    _, docs = overlay
    deny = [
        p
        for p in find(docs, "NetworkPolicy")
        if p["spec"]["podSelector"] == {}
        and sorted(p["spec"]["policyTypes"]) == ["Egress", "Ingress"]
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert len(deny) == 1


def test_in_namespace_flows_are_allowed_on_both_ends(overlay: tuple[str, list[Doc]]) -> None:
    """With default deny, a flow needs egress on the client and ingress on the server."""
    _, docs = overlay
    found = flows(docs)
    for direction, pod, peer, port in found:
        namespace, _, other = peer.partition("/")
        if namespace != "same":
            continue
        mirror = ("ingress" if direction == "egress" else "egress", other, f"same/{pod}", port)
        assert mirror in found, f"{(direction, pod, peer, port)} has no {mirror}"


def test_policy_selectors_match_real_pods(overlay: tuple[str, list[Doc]]) -> None:
    _, docs = overlay
    pod_names = {w["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] for w, _ in pod_specs(docs)}
    for direction, pod, peer, _ in flows(docs):
        if pod != "*":
            assert pod in pod_names, f"{direction} policy selects no pod: {pod}"
        if peer.startswith("same/"):
            assert peer.removeprefix("same/") in pod_names, f"peer selects no pod: {peer}"


def test_allowed_ports_are_container_ports(overlay: tuple[str, list[Doc]]) -> None:
    _, docs = overlay
    ports: dict[str, set[int]] = {}
    for workload, spec in pod_specs(docs):
        name = workload["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
        ports[name] = {p["containerPort"] for c in spec["containers"] for p in c.get("ports", [])}
    for direction, pod, peer, port in flows(docs):
        number = int(port.split("/")[0])
        target = pod if direction == "ingress" else peer.removeprefix("same/")
        if target in ports:
            assert number in ports[target], f"{direction} {pod} {peer}: {target} does not listen on {number}"


@pytest.mark.parametrize("name", ["self-hosted", "ha"])
def test_server_can_reach_the_app_port(name: str, rendered: dict[str, list[Doc]]) -> None:
    """The official chart's policy lets the server out only to 5432/6379/80/443/53; ours reaches 8000."""
    assert ("egress", "inngest", "same/app", "8000/TCP") in flows(rendered[name])


def test_dns_works_with_node_local_dns_cache(overlay: tuple[str, list[Doc]]) -> None:
    """Every pod may ask 169.254.20.10 on UDP and TCP 53, not only the kube-dns pods."""
    _, docs = overlay
    found = flows(docs)
    assert {("egress", "*", NODE_LOCAL_DNS, "53/UDP"), ("egress", "*", NODE_LOCAL_DNS, "53/TCP")} <= found


def test_cloud_sync_job_reaches_the_ingress_controller_directly(rendered: dict[str, list[Doc]]) -> None:
    """The public origin may resolve to a load balancer IP that kube-proxy/Cilium short-circuit to the
    ingress-nginx pod (a private address the public rule excludes)."""
    assert ("egress", "app-sync", "ingress-nginx/*", "443/TCP") in flows(rendered["cloud"])


@pytest.mark.parametrize("name", ["self-hosted", "ha"])
def test_app_reaches_its_database_and_only_the_app_and_server_reach_postgres(
    name: str, rendered: dict[str, list[Doc]]
) -> None:
    found = flows(rendered[name])
    assert found >= APP_DB
    clients = {pod for direction, pod, peer, port in found if direction == "egress" and peer == "same/postgres"}
    assert clients == ({"app"} if name == "self-hosted" else {"app", "inngest"})
    # Postgres itself reaches nothing but DNS.
    assert {peer for direction, pod, peer, _ in found if direction == "egress" and pod == "postgres"} == set()


def test_cloud_has_no_in_cluster_database_flow(rendered: dict[str, list[Doc]]) -> None:
    """A managed database: its address is the operator's, allowed by a rule they add (deploy/k8s/README.md)."""
    assert not [f for f in flows(rendered["cloud"]) if f[3] == "5432/TCP"]


def test_only_prometheus_reaches_the_app_metrics_port(overlay: tuple[str, list[Doc]]) -> None:
    _, docs = overlay
    to_app = {(peer, port) for direction, pod, peer, port in flows(docs) if direction == "ingress" and pod == "app"}
    assert {peer for peer, port in to_app if port == "9000/TCP"} == {"monitoring/prometheus"}
    assert {port for peer, port in to_app if peer == "monitoring/prometheus"} == {"9000/TCP"}
    assert {port for peer, port in to_app if peer.startswith("ingress-nginx/")} == {"8000/TCP"}
