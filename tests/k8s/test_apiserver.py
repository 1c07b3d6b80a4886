"""Every overlay applied for real (`kubectl apply --server-side -k`) to a kube-apiserver beside etcd: the
CRDs first, admission (Pod Security `restricted` included) accepts every object, a second apply changes
nothing, the next deploy's sync Job replaces the old one, and the switch to Cloud leaves nothing behind.

Pods never run here (no kubelet, no controllers); tests/k8s/apiserver.py says what that leaves out. Run
with `make k8s-apiserver-test` (the first run builds kube-apiserver; see deploy/k8s/README.md).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.k8s.apiserver import ApiServer
from tests.k8s.conftest import K8S, OVERLAYS, Doc, kubectl, pod_specs, render
from tests.support import ROOT

# Deselected in `make test` (pyproject's addopts): the cold kube-apiserver build alone outlasts its time budget
# on two cores.
pytestmark = pytest.mark.apiserver

CRDS = Path(__file__).parent / "crds"
JOB_SELECTOR = "app.kubernetes.io/name=app-sync"


@pytest.fixture(scope="module")
def server() -> Iterator[ApiServer]:
    api = ApiServer(kubectl())
    try:
        api.start()
        # Custom resource kinds the overlays use, established before any overlay is applied.
        api.run("apply", "--server-side", "-f", str(CRDS))
        api.run("wait", "--for=condition=established", "--timeout=60s", "crd", "--all")
        yield api
    finally:
        api.stop()


def wrapper(tmp_path: Path, name: str, namespace: str, **extra: object) -> Path:
    """The overlay in another namespace (each test gets its own: without a namespace controller a
    deleted namespace never goes away), plus `extra` kustomization fields."""
    directory = tmp_path / f"{name}-{namespace}"
    directory.mkdir()
    kustomization = {"resources": [os.path.relpath(K8S / "overlays" / name, directory)], "namespace": namespace}
    (directory / "kustomization.yaml").write_text(yaml.safe_dump({**kustomization, **extra}))
    return directory


def resource(doc: Doc) -> str:
    """`kind.group/name`, as kubectl takes it unambiguously."""
    group = doc["apiVersion"].rpartition("/")[0]
    return f"{doc['kind'].lower()}{'.' + group if group else ''}/{doc['metadata']['name']}"


def deploy(api: ApiServer, directory: Path, namespace: str) -> None:
    """What `make k8s-apply` sends (scripts/k8s_apply.sh) without its waits: no pod ever rolls out here."""
    api.run("-n", namespace, "delete", "job", "app-sync", "--ignore-not-found")
    api.run("apply", "--server-side", "-k", str(directory), "-l", "app.kubernetes.io/name!=app-sync")
    api.run("apply", "--server-side", "-k", str(directory), "-l", JOB_SELECTOR)


def stored(api: ApiServer, namespace: str, docs: list[Doc]) -> dict[str, Doc]:
    """The stored version of every rendered object, by kind/name."""
    out: dict[str, Doc] = {}
    for doc in docs:
        kind, name = doc["kind"], doc["metadata"]["name"]
        ns = [] if kind == "Namespace" else ["-n", namespace]
        obj = json.loads(api.run("get", *ns, resource(doc), "--show-managed-fields", "-o", "json").stdout)
        # A PVC's first update re-stores identical content under a new resourceVersion (a server
        # quirk): compare content, managed fields (their apply time) and generation instead.
        obj["metadata"].pop("resourceVersion")
        out[f"{kind}/{name}"] = obj
    return out


@pytest.mark.parametrize("name", OVERLAYS)
def test_overlay_is_admitted_and_a_second_apply_changes_nothing(name: str, server: ApiServer, tmp_path: Path) -> None:
    namespace = f"apply-{name}"
    directory = wrapper(tmp_path, name, namespace)
    docs = render(directory)
    first = server.run("apply", "--server-side", "-k", str(directory))
    # Pod Security `warn: restricted` checks every pod template on apply: any violation is a warning.
    assert "Warning" not in first.stderr, first.stderr
    before = stored(server, namespace, docs)
    labels = before[f"Namespace/{namespace}"]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"

    second = server.run("apply", "--server-side", "-k", str(directory))
    assert "Warning" not in second.stderr, second.stderr
    after = stored(server, namespace, docs)
    changed = [k for k in before if before[k] != after[k]]
    assert not changed, f"a second apply rewrote {changed}"


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_pod_template_passes_enforced_pod_security(name: str, server: ApiServer, tmp_path: Path) -> None:
    """`enforce` applies to Pods, which only a kubelet-less cluster never creates: create each pod
    template as a Pod in a dry run, through every admission plugin (PodSecurity, ServiceAccount, ...)."""
    namespace = f"pods-{name}"
    directory = wrapper(tmp_path, name, namespace)
    server.run("apply", "--server-side", "-k", str(directory))
    for workload, spec in pod_specs(render(directory)):
        # As the StatefulSet controller does: one PVC per claim template, <claim>-<set>-<ordinal>.
        claims = workload["spec"].get("volumeClaimTemplates", [])
        spec = {
            **spec,
            "volumes": spec.get("volumes", [])
            + [
                {
                    "name": c["metadata"]["name"],
                    "persistentVolumeClaim": {"claimName": f"{c['metadata']['name']}-{workload['metadata']['name']}-0"},
                }
                for c in claims
            ],
        }
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"{workload['metadata']['name']}-dry-run", "namespace": namespace},
            "spec": spec,
        }
        result = server.run("create", "--dry-run=server", "-f", "-", stdin=json.dumps(pod), check=False)
        assert result.returncode == 0 and "Warning" not in result.stderr, (workload["metadata"]["name"], result.stderr)


def test_next_deploy_replaces_the_sync_job(server: ApiServer, tmp_path: Path) -> None:
    """The k8s-apply sequence on a new image: the finished Job cannot be updated in place (immutable pod
    template), so the recipe deletes it; the second pass creates the new one."""
    namespace = "redeploy"
    first = wrapper(tmp_path, "self-hosted", namespace)
    server.run("apply", "--server-side", "-k", str(first))
    old = json.loads(server.run("-n", namespace, "get", "job/app-sync", "-o", "json").stdout)

    (tmp_path / "next").mkdir()
    release = wrapper(
        tmp_path / "next", "self-hosted", namespace, images=[{"name": "fastapi-inngest-app", "newTag": "1.0.1"}]
    )
    refused = server.run("apply", "--server-side", "-k", str(release), "-l", JOB_SELECTOR, check=False)
    assert refused.returncode != 0 and "field is immutable" in refused.stderr, refused.stderr

    deploy(server, release, namespace)
    new = json.loads(server.run("-n", namespace, "get", "job/app-sync", "-o", "json").stdout)
    assert new["metadata"]["uid"] != old["metadata"]["uid"]
    images = {c["image"] for c in new["spec"]["template"]["spec"]["containers"]}
    assert images == {"fastapi-inngest-app:1.0.1"}
    app = json.loads(server.run("-n", namespace, "get", "deployment/app", "-o", "json").stdout)
    assert app["spec"]["template"]["spec"]["containers"][0]["image"] == "fastapi-inngest-app:1.0.1"


def test_switch_from_ha_to_cloud_leaves_no_ha_object(server: ApiServer) -> None:
    """The documented procedure on the real namespace: apply ha, `make k8s-prune FROM=ha OVERLAY=cloud`,
    apply cloud; then every object labelled part-of in the namespace is one the cloud overlay renders
    (or a PVC, kept on purpose)."""
    server.run("apply", "--server-side", "-k", str(K8S / "overlays" / "ha"))
    prune = subprocess.run(
        ["make", "-s", "--no-print-directory", "k8s-prune", "FROM=ha", "OVERLAY=cloud", f"KUBECTL={server.kubectl}"],
        cwd=ROOT,
        env=server.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert prune.returncode == 0, prune.stderr
    deploy(server, K8S / "overlays" / "cloud", "fastapi-inngest")
    cloud = {f"{d['kind']}/{d['metadata']['name']}" for d in render(K8S / "overlays" / "cloud")}
    ha = render(K8S / "overlays" / "ha")
    kinds = sorted({resource(d).partition("/")[0] for d in ha if d["kind"] != "Namespace"})
    listed = json.loads(
        server.run(
            "-n",
            "fastapi-inngest",
            "get",
            ",".join(kinds),
            "-l",
            "app.kubernetes.io/part-of=fastapi-inngest",
            "-o",
            "json",
        ).stdout
    )["items"]
    left = {
        f"{o['kind']}/{o['metadata']['name']}"
        for o in listed
        if o["kind"] != "PersistentVolumeClaim" and not o["metadata"]["name"].startswith("app-config-")
    }
    assert left - cloud == set(), "left behind by the switch"
