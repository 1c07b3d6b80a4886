"""Policy checks on the rendered manifests: hardening, resources, probes, pinned images, secrets,
shutdown budget, and the server/compose agreements."""

from __future__ import annotations

import re

import pytest

from benchmarks.config import STACK_TICK_MS
from tests.k8s.conftest import (
    APP_IMAGE,
    SECRET_NAME,
    Doc,
    app_config,
    containers,
    find,
    load_compose,
    one,
    pod_specs,
)

# Names that must never carry a literal value (in a ConfigMap or an env `value:`).
SECRET_NAME_RE = re.compile(r"KEY|SECRET|PASSWORD|TOKEN|_URI$|AUTH", re.I)
# Values that look like credentials wherever they appear.
SECRET_VALUE_RE = re.compile(r"^(signkey-\w+-)?[0-9a-f]{32,}$|://[^/@\s]*:[^/@\s]+@", re.I)


def test_every_container_is_hardened(overlay: tuple[str, list[Doc]]) -> None:
    _, docs = overlay
    for workload, spec in pod_specs(docs):
        where = f"{workload['kind']}/{workload['metadata']['name']}"
        pod = spec.get("securityContext", {})
        assert pod.get("runAsNonRoot") is True, where
        assert pod.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
        assert spec.get("automountServiceAccountToken") is False, where
        assert spec.get("hostNetwork") is not True and spec.get("hostPID") is not True, where
        for c in spec["containers"] + spec.get("initContainers", []):
            sc = c.get("securityContext", {})
            name = f"{where} container {c['name']}"
            assert sc.get("runAsNonRoot") is True, name
            assert isinstance(sc.get("runAsUser"), int) and sc["runAsUser"] > 0, name
            assert sc.get("readOnlyRootFilesystem") is True, name
            assert sc.get("allowPrivilegeEscalation") is False, name
            assert sc.get("privileged") is False, name
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], name
            assert not sc.get("capabilities", {}).get("add"), name


def test_own_images_run_as_uid_10001(overlay: tuple[str, list[Doc]]) -> None:
    """The app image's user (Dockerfile: uid 10001), also used for the Inngest server."""
    _, docs = overlay
    for _, c in containers(docs):
        if c["image"].split(":")[0] in (APP_IMAGE, "inngest/inngest"):
            assert c["securityContext"]["runAsUser"] == 10001, c["name"]


def test_every_container_has_requests_and_limits(overlay: tuple[str, list[Doc]]) -> None:
    _, docs = overlay
    for workload, c in containers(docs):
        res = c.get("resources", {})
        for kind in ("requests", "limits"):
            assert set(res.get(kind, {})) >= {"cpu", "memory"}, f"{workload['metadata']['name']}/{c['name']} {kind}"


def test_long_running_containers_have_all_three_probes(overlay: tuple[str, list[Doc]]) -> None:
    """Deployments and StatefulSets; Job containers and init containers run to completion."""
    _, docs = overlay
    for workload, spec in pod_specs(docs):
        if workload["kind"] == "Job":
            continue
        for c in spec["containers"]:
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert probe in c, f"{workload['metadata']['name']}/{c['name']} has no {probe}"


def test_app_probes_use_the_right_endpoints(overlay: tuple[str, list[Doc]]) -> None:
    _, docs = overlay
    (app,) = one(docs, "Deployment", "app")["spec"]["template"]["spec"]["containers"]
    assert app["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert app["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # Liveness is the process only: an Inngest outage must not restart the app.
    assert app["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert app[probe]["httpGet"]["port"] == "http"
    assert app["ports"] == [
        {"name": "http", "containerPort": 8000, "protocol": "TCP"},
        {"name": "metrics", "containerPort": 9000, "protocol": "TCP"},
    ]


def test_images_are_pinned(overlay: tuple[str, list[Doc]]) -> None:
    _, docs = overlay
    for workload, c in containers(docs):
        image = c["image"]
        name, _, tag = image.rpartition(":")
        assert name and tag and "/" not in tag, f"{workload['metadata']['name']}/{c['name']}: {image} has no tag"
        assert tag != "latest", image


def test_no_secret_values_in_configmaps_or_env_literals(overlay: tuple[str, list[Doc]]) -> None:
    _, docs = overlay
    assert not find(docs, "Secret"), "Secrets are created out of band (see deploy/k8s/README.md), never rendered"
    for cm in find(docs, "ConfigMap"):
        if cm["metadata"].get("labels", {}).get("grafana_dashboard") == "1":
            continue
        for key, value in cm["data"].items():
            assert not SECRET_NAME_RE.search(key), f"{cm['metadata']['name']}: {key} belongs in the Secret"
            assert not SECRET_VALUE_RE.search(value), f"{cm['metadata']['name']}: {key} looks like a credential"
    for workload, c in containers(docs):
        for env in c.get("env", []):
            where = f"{workload['metadata']['name']}/{c['name']} {env['name']}"
            if "value" in env:
                assert not SECRET_NAME_RE.search(env["name"]), f"{where} must come from the Secret"
                assert not SECRET_VALUE_RE.search(env["value"]), f"{where} looks like a credential"
            elif "secretKeyRef" in env.get("valueFrom", {}):
                assert env["valueFrom"]["secretKeyRef"]["name"] == SECRET_NAME, where
        for arg in c.get("command", []) + c.get("args", []):
            assert not SECRET_VALUE_RE.search(arg.split("=", 1)[-1]), f"{workload['metadata']['name']}: {arg}"


def test_shutdown_budget_fits_the_grace_period(overlay: tuple[str, list[Doc]]) -> None:
    """preStop sleep + drain (readyz 503) + graceful shutdown < terminationGracePeriodSeconds."""
    _, docs = overlay
    spec = one(docs, "Deployment", "app")["spec"]["template"]["spec"]
    config = app_config(docs)
    (app,) = spec["containers"]
    pre_stop = app["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = float(config["SHUTDOWN_DRAIN_SECONDS"])
    graceful = float(config["GRACEFUL_SHUTDOWN_TIMEOUT"])
    assert pre_stop > 0 and drain > 0
    assert pre_stop + drain + graceful < spec["terminationGracePeriodSeconds"]
    # Readiness must be able to see the drain: one failed probe within the drain window.
    probe = app["readinessProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] <= drain + pre_stop


def test_app_env_names_are_known_to_the_settings_model(overlay: tuple[str, list[Doc]]) -> None:
    from app.settings import known_env_vars

    _, docs = overlay
    known = known_env_vars()
    for workload, c in containers(docs, init=False):
        if c["image"].split(":")[0] != APP_IMAGE:
            continue
        names = {e["name"] for e in c.get("env", [])}
        for source in c.get("envFrom", []):
            assert "configMapRef" in source, "envFrom a Secret would inject unknown names"
            assert source["configMapRef"]["name"].startswith("app-config-"), source
            names |= set(app_config(docs))
        unknown = names - known
        assert not unknown, f"{workload['metadata']['name']}/{c['name']}: unknown to app.settings: {unknown}"


def test_app_config_is_valid_for_the_settings_model(overlay: tuple[str, list[Doc]]) -> None:
    """The ConfigMap plus placeholder keys of the right shape passes the app's own validation."""
    from app.settings import load_settings

    name, docs = overlay
    config = app_config(docs)
    key = "signkey-prod-" + "ab" * 32 if config["INNGEST_MODE"] == "cloud" else "ab" * 32
    overrides = {k.lower(): v for k, v in config.items()}
    settings = load_settings(**overrides, inngest_signing_key=key, inngest_event_key="event-key")
    assert settings.port == 8000
    expected_mode = "cloud" if name == "cloud" else "self-hosted"
    assert settings.inngest_mode == expected_mode
    if name != "cloud":
        assert settings.inngest_base_url == "http://inngest:8288"


def _service_url(docs: list[Doc], service: str, port_name: str) -> str:
    svc = one(docs, "Service", service)
    (port,) = [p for p in svc["spec"]["ports"] if p["name"] == port_name]
    return f"http://{service}:{port['port']}"


@pytest.mark.parametrize("name", ["self-hosted", "ha"])
def test_server_sdk_url_is_the_app_service_serve_url(name: str, rendered: dict[str, list[Doc]]) -> None:
    """--sdk-url == http://<app Service>:<port><serve path> == the origin the app registers itself with.

    The short Service name (same namespace) is used on purpose: it stays right whatever namespace an
    overlay sets, and the server and the app's own sync then register one identical URL.
    """
    docs = rendered[name]
    config = app_config(docs)
    (server,) = one(docs, "Deployment", "inngest")["spec"]["template"]["spec"]["containers"]
    sdk_urls = [a.split("=", 1)[1] for a in server["args"] if a.startswith("--sdk-url=")]
    expected = _service_url(docs, "app", "http") + config["INNGEST_SERVE_PATH"]
    assert sdk_urls == [expected]
    assert config["INNGEST_SERVE_ORIGIN"] + config["INNGEST_SERVE_PATH"] == expected
    assert config["INNGEST_BASE_URL"] == _service_url(docs, "inngest", "http")
    # Keys reach the server from the Secret only.
    env = {e["name"]: e for e in server["env"]}
    for key in ("INNGEST_SIGNING_KEY", "INNGEST_EVENT_KEY"):
        assert env[key]["valueFrom"]["secretKeyRef"] == {"name": SECRET_NAME, "key": key}


def test_server_storage_per_overlay(rendered: dict[str, list[Doc]]) -> None:
    self_hosted = one(rendered["self-hosted"], "Deployment", "inngest")["spec"]
    assert self_hosted["replicas"] == 1 and self_hosted["strategy"]["type"] == "Recreate"
    (data,) = [v for v in self_hosted["template"]["spec"]["volumes"] if v["name"] == "data"]
    assert data == {"name": "data", "persistentVolumeClaim": {"claimName": "inngest-data"}}
    one(rendered["self-hosted"], "PersistentVolumeClaim", "inngest-data")

    ha = one(rendered["ha"], "Deployment", "inngest")["spec"]
    assert ha["replicas"] >= 2
    env = {e["name"] for e in ha["template"]["spec"]["containers"][0]["env"]}
    assert {"INNGEST_POSTGRES_URI", "INNGEST_REDIS_URI"} <= env
    for kind, name in (("StatefulSet", "postgres"), ("StatefulSet", "redis"), ("PodDisruptionBudget", "inngest")):
        one(rendered["ha"], kind, name)

    assert not find(rendered["cloud"], "Deployment", "inngest")
    assert not find(rendered["cloud"], "StatefulSet")


def test_ha_server_replica_leaves_the_service_before_sigterm(rendered: dict[str, list[Doc]]) -> None:
    """A replica schedules the events it accepted in-process and drops the unscheduled ones when it stops
    (docs/ha.md): it sleeps out of the Service's endpoints first, with time left to shut down after."""
    spec = one(rendered["ha"], "Deployment", "inngest")["spec"]["template"]["spec"]
    (server,) = spec["containers"]
    sleep = server["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert 5 <= sleep <= spec["terminationGracePeriodSeconds"] - 15


def test_server_waits_for_app_readiness(rendered: dict[str, list[Doc]]) -> None:
    for name in ("self-hosted", "ha"):
        spec = one(rendered[name], "Deployment", "inngest")["spec"]["template"]["spec"]
        (init,) = spec["initContainers"]
        assert init["image"].startswith(APP_IMAGE + ":")
        assert "--url http://app:8000/readyz" in init["command"][-1]


def test_sync_job_waits_and_runs_a_verified_sync(overlay: tuple[str, list[Doc]]) -> None:
    name, docs = overlay
    job = one(docs, "Job", "app-sync")
    spec = job["spec"]["template"]["spec"]
    (sync,) = spec["containers"]
    assert sync["command"] == ["python", "-m", "app", "sync"]
    assert sync["image"].startswith(APP_IMAGE + ":")
    assert spec["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] >= 1 and job["spec"]["ttlSecondsAfterFinished"] > 0
    waits = {c["name"]: c["command"][-1] for c in spec["initContainers"]}
    expected = {"wait-for-app": "http://app:8000/readyz"}
    if name != "cloud":
        expected["wait-for-inngest"] = "http://inngest:8288/health"
    assert set(waits) == set(expected)
    for container, url in expected.items():
        assert f"--url {url};" in waits[container]


def test_app_availability_objects(overlay: tuple[str, list[Doc]]) -> None:
    _, docs = overlay
    deployment = one(docs, "Deployment", "app")
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    hpa = one(docs, "HorizontalPodAutoscaler", "app")
    assert hpa["spec"]["minReplicas"] == 2 and hpa["spec"]["scaleTargetRef"]["name"] == "app"
    pdb = one(docs, "PodDisruptionBudget", "app")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]
    spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    assert one(docs, "ServiceAccount", "app")["automountServiceAccountToken"] is False


def test_everything_lands_in_one_namespace(overlay: tuple[str, list[Doc]]) -> None:
    _, docs = overlay
    (ns,) = find(docs, "Namespace")
    for d in docs:
        if d["kind"] != "Namespace":
            assert d["metadata"].get("namespace") == ns["metadata"]["name"], d["metadata"]["name"]
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_image_tags_match_compose(rendered: dict[str, list[Doc]]) -> None:
    compose = load_compose("docker-compose.yml")
    ha = load_compose("deploy/compose/ha.yml")
    expected = {
        "inngest/inngest": compose["services"]["inngest"]["image"],
        # One pin for every PostgreSQL: the app's `db` (the ha override's server extends it).
        "postgres": compose["services"]["db"]["image"],
        "redis": ha["services"]["redis"]["image"],
    }
    seen: dict[str, set[str]] = {}
    for docs in rendered.values():
        for _, c in containers(docs):
            seen.setdefault(c["image"].rsplit(":", 1)[0], set()).add(c["image"])
    for repo, image in expected.items():
        assert seen[repo] == {image}, f"k8s {seen[repo]} != compose {image}"
    assert len(seen[APP_IMAGE]) == 1


def _quantity(value: str | int) -> float:
    """Kubernetes CPU (cores) or memory (bytes) quantity as a number."""
    text = str(value)
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def test_no_pod_gets_service_link_variables(overlay: tuple[str, list[Doc]]) -> None:
    """The Service `inngest` would inject INNGEST_PORT=tcp://..., which `inngest start` reads as its port."""
    _, docs = overlay
    for workload, spec in pod_specs(docs):
        assert spec.get("enableServiceLinks") is False, f"{workload['kind']}/{workload['metadata']['name']}"


@pytest.mark.parametrize("name", ["self-hosted", "ha"])
def test_server_resources_and_grace_as_the_official_chart(name: str, rendered: dict[str, list[Doc]]) -> None:
    """Queue and state live in the server process: not first in line for eviction, time to shut down."""
    spec = one(rendered[name], "Deployment", "inngest")["spec"]["template"]["spec"]
    (server,) = spec["containers"]
    requests, limits = server["resources"]["requests"], server["resources"]["limits"]
    assert _quantity(requests["cpu"]) >= 0.5
    assert _quantity(requests["memory"]) >= 2**30
    # Usage never exceeds the request: the kubelet evicts pods above their requests first.
    assert _quantity(requests["memory"]) == _quantity(limits["memory"])
    assert spec["terminationGracePeriodSeconds"] >= 60


def test_server_publishes_only_its_http_port(overlay: tuple[str, list[Doc]]) -> None:
    """The connect gateway (8289) serves SDKs in `connect` mode, which the app does not use."""
    _, docs = overlay
    for deployment in find(docs, "Deployment", "inngest"):
        (server,) = deployment["spec"]["template"]["spec"]["containers"]
        assert server["ports"] == [{"name": "http", "containerPort": 8288, "protocol": "TCP"}]
        assert [p["port"] for p in one(docs, "Service", "inngest")["spec"]["ports"]] == [8288]


def test_redis_caps_memory_below_its_limit_and_never_evicts(rendered: dict[str, list[Doc]]) -> None:
    (redis,) = one(rendered["ha"], "StatefulSet", "redis")["spec"]["template"]["spec"]["containers"]
    command = redis["command"]
    flags = dict(zip(command[1::2], command[2::2], strict=False))
    assert flags["--maxmemory-policy"] == "noeviction", "an eviction policy would drop queued work"
    value = flags["--maxmemory"].lower()
    assert value.endswith("mb"), value
    maxmemory = int(value[:-2]) * 2**20
    limit = _quantity(redis["resources"]["limits"]["memory"])
    # Headroom for the AOF-rewrite fork's copy-on-write pages and client buffers.
    assert maxmemory <= 0.7 * limit, (maxmemory, limit)


def test_hpa_scales_on_real_load_not_on_a_tiny_request(overlay: tuple[str, list[Doc]]) -> None:
    """The HPA's target is a share of the request: 70 % of 100m would scale out an idle-ish app."""
    _, docs = overlay
    hpa = one(docs, "HorizontalPodAutoscaler", "app")
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    (app,) = one(docs, "Deployment", "app")["spec"]["template"]["spec"]["containers"]
    request = _quantity(app["resources"]["requests"]["cpu"])
    limit = _quantity(app["resources"]["limits"]["cpu"])
    threshold = request * metric["resource"]["target"]["averageUtilization"] / 100
    assert threshold >= 0.15, f"scales out at {threshold * 1000:.0f}m of CPU"
    assert limit / request <= 4


def test_ha_server_has_no_sqlite_leftovers(rendered: dict[str, list[Doc]]) -> None:
    """With Postgres set, --sqlite-dir and a data volume are ignored: ha renders neither."""
    spec = one(rendered["ha"], "Deployment", "inngest")["spec"]["template"]["spec"]
    (server,) = spec["containers"]
    assert not [a for a in server["command"] + server["args"] if "sqlite" in a]
    assert "INNGEST_SQLITE_DIR" not in {e["name"] for e in server["env"]}
    assert [v["name"] for v in spec["volumes"]] == ["tmp"]
    # self-hosted keeps SQLite, on the PVC.
    spec = one(rendered["self-hosted"], "Deployment", "inngest")["spec"]["template"]["spec"]
    (server,) = spec["containers"]
    assert {"name": "INNGEST_SQLITE_DIR", "value": "/data"} in server["env"]
    assert {"name": "data", "mountPath": "/data"} in server["volumeMounts"]


def test_volume_claim_templates_are_left_as_written(rendered: dict[str, list[Doc]]) -> None:
    """volumeClaimTemplates cannot change after creation: no transformer may write labels there."""
    for statefulset in find(rendered["ha"], "StatefulSet"):
        for claim in statefulset["spec"]["volumeClaimTemplates"]:
            assert claim["metadata"] == {"name": "data"}, statefulset["metadata"]["name"]
        # The pod template still carries the common label.
        assert statefulset["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/part-of"] == "fastapi-inngest"


def test_every_object_carries_the_part_of_label(overlay: tuple[str, list[Doc]]) -> None:
    _, docs = overlay
    for d in docs:
        assert d["metadata"]["labels"]["app.kubernetes.io/part-of"] == "fastapi-inngest", d["metadata"]["name"]
    for workload, _ in pod_specs(docs):
        assert workload["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/part-of"] == "fastapi-inngest"


def test_datastores_run_as_their_image_users(rendered: dict[str, list[Doc]]) -> None:
    """The Alpine images' own users (postgres 70:70, redis 999:1000): the data directories they create
    belong to them, and Pod Security `restricted` needs a non-root uid."""
    for name, uid, gid in (("postgres", 70, 70), ("redis", 999, 1000)):
        spec = one(rendered["ha"], "StatefulSet", name)["spec"]["template"]["spec"]
        assert (spec["securityContext"]["runAsUser"], spec["securityContext"]["runAsGroup"]) == (uid, gid)
        assert spec["securityContext"]["fsGroup"] == gid


def test_ha_server_drains_one_replica_at_a_time(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["ha"]
    pdb = one(docs, "PodDisruptionBudget", "inngest")["spec"]
    server = one(docs, "Deployment", "inngest")["spec"]
    assert pdb["selector"]["matchLabels"].items() <= server["template"]["metadata"]["labels"].items()
    assert 0 < pdb["minAvailable"] < server["replicas"]


@pytest.mark.parametrize("name", ["self-hosted", "ha"])
def test_server_polls_its_queue_at_the_stacks_tick(name: str, rendered: dict[str, list[Doc]]) -> None:
    """One poll interval for the stack: compose and every overlay with a server, and the end-to-end benchmark
    measures that value (benchmarks.config.STACK_TICK_MS)."""
    compose = load_compose("docker-compose.yml")["services"]["inngest"]["environment"]
    (server,) = one(rendered[name], "Deployment", "inngest")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in server["env"]}
    assert env["INNGEST_TICK"] == compose["INNGEST_TICK"] == str(STACK_TICK_MS)
