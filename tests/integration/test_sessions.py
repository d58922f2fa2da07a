"""Sessions on the real control plane: pods the scheduler places, endpoints, truthful
status, scaling, headless runs, absolute timeouts, garbage collection.

Pods run no processes here, so these tests do what the session's agent will do
(set a readiness gate once an interface answers) and what a container does
(finish with an exit code, through the simulated kubelet's annotation).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client

from tests.conftest import SESSIONS_URL
from tests.support import eventually, exit_pod, gone, kubectl_apply, manifest, present, run

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
GROUP, VERSION = "kabin.dev", "v1alpha1"


def session(name: str, **spec: Any) -> dict[str, Any]:
    return manifest("Session", name, spec)


async def get(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    return await client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, "sessions", name
    )


async def create(namespace: str, manifest: dict[str, Any]) -> None:
    result = await kubectl_apply(manifest, namespace=namespace)
    assert result.code == 0, result.err


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == kind), {})


async def until(
    api: client.ApiClient, namespace: str, name: str, check: Any, within: float = 30
) -> dict[str, Any]:
    async def probe() -> dict[str, Any]:
        obj = await get(api, namespace, name)
        check(obj)
        return obj

    return await eventually(probe, timeout=within)


async def pods(api: client.ApiClient, namespace: str, name: str) -> list[client.V1Pod]:
    found = await client.CoreV1Api(api).list_namespaced_pod(
        namespace, label_selector=f"kabin.dev/session={name}"
    )
    return sorted(found.items, key=lambda p: p.metadata.name)


async def answer(api: client.ApiClient, namespace: str, pod: str, interface: str) -> None:
    """What the agent does once an interface answers: set its readiness gate True."""
    await client.CoreV1Api(api).patch_namespaced_pod_status(
        pod,
        namespace,
        {"status": {"conditions": [{"type": f"kabin.dev/{interface}-ready", "status": "True"}]}},
    )


async def finish(api: client.ApiClient, namespace: str, pod: str, code: int) -> None:
    """What a container does when it exits (the simulated kubelet reads this)."""
    await exit_pod(api, namespace, pod, code)


EXPECTED = {
    "session-jupyterlab.yaml": (
        "my-notebook",
        ["jupyterlab"],
        SESSIONS_URL.replace("//", "//my-notebook.{ns}.")
        + "/session/notebook/{ns}/my-notebook/lab",
    ),
    "session-vscode-gpu.yaml": (
        "my-vscode",
        ["vscode"],
        SESSIONS_URL.replace("//", "//my-vscode.{ns}.") + "/session/vscode/{ns}/my-vscode/",
    ),
    "session-desktop.yaml": (
        "my-desktop",
        ["desktop"],
        SESSIONS_URL.replace("//", "//my-desktop.{ns}.") + "/session/desktop/{ns}/my-desktop/",
    ),
    "session-ssh.yaml": ("my-shell", ["ssh"], "ssh -p {port} kwok-admin@kabin.localtest.me"),
}


@pytest.mark.parametrize("example", list(EXPECTED), ids=[e.split(".")[0] for e in EXPECTED])
async def test_example_session_becomes_ready_with_its_endpoints(
    api: client.ApiClient, environments: None, namespace: str, example: str
) -> None:
    name, interfaces, url = EXPECTED[example]
    await create(namespace, yaml.safe_load((EXAMPLES / example).read_text()))

    obj = await until(api, namespace, name, lambda o: _phase(o, "Running"))
    assert condition(obj, "Ready")["status"] == "False", "no interface answers yet"
    assert [e["ready"] for e in obj["status"]["endpoints"]] == [False] * len(interfaces)

    for interface in interfaces:
        await answer(api, namespace, f"{name}-1", interface)
    obj = await until(api, namespace, name, lambda o: _ready(o, True))

    port = ""
    if "ssh" in interfaces:
        svc = await client.CoreV1Api(api).read_namespaced_service(f"{name}-ssh", namespace)
        assert svc.spec.type == "NodePort"
        port = str(svc.spec.ports[0].node_port)
    expected = url.format(ns=namespace, port=port)
    assert obj["status"]["connectURL"] == expected
    assert [(e["name"], e["ready"]) for e in obj["status"]["endpoints"]] == [
        (i, True) for i in interfaces
    ]
    for interface in interfaces:
        assert condition(obj, f"{interface.capitalize()}Ready")["status"] == "True"
    if "ssh" not in interfaces:
        ingress = await client.NetworkingV1Api(api).read_namespaced_ingress(name, namespace)
        assert (
            ingress.spec.rules[0].http.paths[0].path
            == f"/session/{obj['spec']['type']}/{namespace}/{name}/"
        )


def _phase(obj: dict[str, Any], phase: str) -> None:
    assert obj.get("status", {}).get("phase") == phase, obj.get("status")


def _ready(obj: dict[str, Any], ready: bool) -> None:
    assert condition(obj, "Ready").get("status") == str(ready), obj.get("status")


async def test_gpu_session_lands_on_a_gpu_node_cpu_session_never_does(
    api: client.ApiClient, environments: None, namespace: str
) -> None:
    await create(
        namespace,
        session(
            "gpu",
            type="notebook",
            environment="notebook",
            image="example.org/cuda:1",
            resources={"gpu": 1},  # the default policy's most, where the environment sets none
        ),
    )
    # Another user: each interactive session holds its own user's default drive.
    await create(namespace, session("cpu", type="notebook", environment="notebook", user="u2"))
    await until(api, namespace, "gpu", lambda o: _phase(o, "Running"))
    await until(api, namespace, "cpu", lambda o: _phase(o, "Running"))

    (gpu,) = await pods(api, namespace, "gpu")
    assert gpu.spec.node_name.startswith("gpu-")
    assert gpu.spec.containers[0].resources.limits["nvidia.com/gpu"] == "1"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in [
        t.to_dict() | {} for t in gpu.spec.tolerations or []
    ] or any(t.key == "nvidia.com/gpu" and t.effect == "NoSchedule" for t in gpu.spec.tolerations)
    (cpu,) = await pods(api, namespace, "cpu")
    assert cpu.spec.node_name.startswith("cpu-")
    assert not any(t.key == "nvidia.com/gpu" for t in cpu.spec.tolerations or [])
    # Restricted Pod Security Standard by default.
    assert cpu.spec.security_context.run_as_non_root is True
    assert cpu.spec.security_context.seccomp_profile.type == "RuntimeDefault"
    assert cpu.spec.containers[0].security_context.allow_privilege_escalation is False
    assert cpu.spec.containers[0].security_context.capabilities.drop == ["ALL"]


async def test_gpu_product_is_a_node_selector(
    api: client.ApiClient, environments: None, namespace: str
) -> None:
    await create(namespace, session("pt", type="notebook", environment="pytorch-gpu"))
    await eventually(lambda: _has_pods(api, namespace, "pt", 1))
    (pod,) = await pods(api, namespace, "pt")
    assert pod.spec.node_selector == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert pod.spec.containers[0].resources.limits["nvidia.com/gpu"] == "1"  # the default


async def _has_pods(api: client.ApiClient, namespace: str, name: str, count: int) -> list[Any]:
    found = [p for p in await pods(api, namespace, name) if p.metadata.deletion_timestamp is None]
    assert len(found) == count, [p.metadata.name for p in found]
    return found


def _env(pod: client.V1Pod) -> dict[str, str]:
    return {e.name: e.value for e in pod.spec.containers[0].env}


async def test_replicas_have_ids_and_scale_up_and_down(
    api: client.ApiClient, environments: None, namespace: str
) -> None:
    await create(namespace, session("multi", type="headless", image="busybox", replicas=3))
    found = await eventually(lambda: _has_pods(api, namespace, "multi", 3))
    assert [(_env(p)["REPLICA_ID"], _env(p)["REPLICA_COUNT"]) for p in found] == [
        ("1", "3"),
        ("2", "3"),
        ("3", "3"),
    ]
    assert _env(found[0])["KABIN_SESSION"] == "multi"
    assert _env(found[0])["KABIN_NAMESPACE"] == namespace

    await run("kubectl", "scale", "session/multi", "--replicas=5", "-n", namespace)
    found = await eventually(lambda: _has_pods(api, namespace, "multi", 5))
    assert [p.metadata.name for p in found] == [f"multi-{i}" for i in range(1, 6)]
    assert _env(found[4])["REPLICA_COUNT"] == "5"
    obj = await until(api, namespace, "multi", lambda o: _replicas(o, 5))

    await run("kubectl", "scale", "session/multi", "--replicas=2", "-n", namespace)
    found = await eventually(lambda: _has_pods(api, namespace, "multi", 2))
    assert [p.metadata.name for p in found] == ["multi-1", "multi-2"]
    obj = await until(api, namespace, "multi", lambda o: _replicas(o, 2))
    assert obj["status"]["selector"] == "kabin.dev/session=multi"
    events = await run(
        "kubectl",
        "get",
        "events",
        "-n",
        namespace,
        "--field-selector",
        "involvedObject.name=multi,reason=Scaled",
        "-o",
        "name",
    )
    assert len(events.split()) >= 2


def _replicas(obj: dict[str, Any], count: int) -> None:
    assert obj.get("status", {}).get("replicas") == count, obj.get("status")
    assert obj["status"].get("readyReplicas") == count, obj.get("status")


async def test_unplaceable_session_stays_pending_with_the_schedulers_message(
    api: client.ApiClient, operator: object, namespace: str
) -> None:
    # Within an environment's caps (which lift the default policy's), but more than any
    # node has.
    big = f"big-{namespace}"[:63]
    await create(
        namespace,
        manifest("EnvironmentConfig", big, {"image": "busybox", "resources": {"max": {"gpu": 64}}}),
    )
    try:
        await _unplaceable(api, namespace, big)
    finally:
        await client.CustomObjectsApi(api).delete_cluster_custom_object(
            "kabin.dev", "v1alpha1", "environmentconfigs", big
        )


async def _unplaceable(api: client.ApiClient, namespace: str, environment: str) -> None:
    await create(
        namespace,
        session("huge", type="headless", environment=environment, resources={"gpu": 60}),
    )

    def unschedulable(obj: dict[str, Any]) -> None:
        scheduled = condition(obj, "Scheduled")
        assert scheduled.get("status") == "False", obj.get("status")
        assert scheduled["reason"] == "Unschedulable"
        assert "Insufficient nvidia.com/gpu" in scheduled["message"]

    obj = await until(api, namespace, "huge", unschedulable)
    assert obj["status"]["phase"] == "Pending"
    table = await run("kubectl", "get", "sess", "huge", "-n", namespace)
    assert "Pending" in table.splitlines()[1]
    described = await run("kubectl", "describe", "sess", "huge", "-n", namespace)
    assert "Insufficient nvidia.com/gpu" in described


async def test_headless_run_succeeds_when_every_replica_does(
    api: client.ApiClient, operator: object, namespace: str
) -> None:
    await create(namespace, session("batch", type="headless", image="busybox", replicas=4))
    await until(api, namespace, "batch", lambda o: _phase(o, "Running"))
    for i in range(1, 5):
        await finish(api, namespace, f"batch-{i}", 0)
    obj = await until(api, namespace, "batch", lambda o: _phase(o, "Succeeded"))
    assert obj["status"]["reason"] == "Completed"
    # Finished pods stay, so their logs can be read.
    kept = await pods(api, namespace, "batch")
    assert [p.status.phase for p in kept] == ["Succeeded"] * 4
    logs = await run("kubectl", "logs", "-n", namespace, "batch-3")
    assert "hello from a simulated pod" in logs


async def test_headless_run_fails_with_the_failing_replica_and_its_exit_code(
    api: client.ApiClient, operator: object, namespace: str
) -> None:
    await create(namespace, session("broken", type="headless", image="busybox", replicas=4))
    await until(api, namespace, "broken", lambda o: _phase(o, "Running"))
    await finish(api, namespace, "broken-1", 0)
    await finish(api, namespace, "broken-3", 3)
    obj = await until(api, namespace, "broken", lambda o: _phase(o, "Failed"))
    assert obj["status"]["reason"] == "ReplicaFailed"
    assert "replica 3 of 4" in obj["status"]["message"]
    assert "exit code 3" in obj["status"]["message"]
    events = await run(
        "kubectl",
        "get",
        "events",
        "-n",
        namespace,
        "--field-selector",
        "involvedObject.name=broken,reason=Failed",
        "-o",
        "name",
    )
    assert events.strip()


async def test_image_that_cannot_be_pulled_fails_the_session(
    api: client.ApiClient, operator: object, namespace: str
) -> None:
    await create(namespace, session("typo", type="notebook", image="registry.invalid/nope:1"))
    obj = await until(api, namespace, "typo", lambda o: _phase(o, "Failed"), within=30)
    assert obj["status"]["reason"] == "ErrImagePull"
    assert "registry.invalid/nope:1" in obj["status"]["message"]
    await eventually(lambda: _has_pods(api, namespace, "typo", 0))


async def test_interactive_session_that_keeps_crashing_fails(
    api: client.ApiClient, operator: object, namespace: str
) -> None:
    await create(namespace, session("crashy", type="notebook", image="example.org/nb:1"))
    await until(api, namespace, "crashy", lambda o: _phase(o, "Running"))
    await finish(api, namespace, "crashy-1", 1)  # restartPolicy Always: CrashLoopBackOff
    obj = await until(api, namespace, "crashy", lambda o: _phase(o, "Failed"))
    assert obj["status"]["reason"] == "CrashLoopBackOff"
    assert "last exit code 1" in obj["status"]["message"]


async def test_ssh_session_expires_on_time_and_a_renew_moves_its_expiry(
    api: client.ApiClient, environments: None, namespace: str
) -> None:
    # Two users, so that each holds its own default drive.
    await create(namespace, session("short", type="ssh", environment="ssh", timeout=5, user="u1"))
    await create(
        namespace, session("renewed", type="ssh", environment="ssh", timeout=30, user="u2")
    )
    first = await until(api, namespace, "renewed", lambda o: _has_expiry(o))
    await asyncio.sleep(2)  # let some of its time pass, so the renew visibly moves it
    await run(
        "kubectl",
        "annotate",
        "session/renewed",
        "-n",
        namespace,
        "kabin.dev/renew=1",
        "--overwrite",
    )
    moved = await until(
        api, namespace, "renewed", lambda o: _expiry_after(o, first["status"]["expiryTime"])
    )
    assert moved["status"]["renewal"]["token"] == "1"

    from prometheus_client import REGISTRY  # the in-process operator's metrics

    def culled_within_2_s() -> float:
        labels = {"mode": "absolute", "le": "2.0"}
        return REGISTRY.get_sample_value("kabin_session_cull_lateness_seconds_bucket", labels) or 0

    culled = culled_within_2_s()
    obj = await until(api, namespace, "short", lambda o: _phase(o, "Expired"), within=15)
    expired_at = datetime.now(UTC)
    expiry = datetime.fromisoformat(obj["status"]["expiryTime"].replace("Z", "+00:00"))
    # Never before the deadline, and within 2 s after it (this poll adds up to 0.2 s).
    assert 0 <= (expired_at - expiry).total_seconds() <= 2.0, (expiry, expired_at)
    assert obj["status"]["reason"] == "Timeout"
    # The operator measured its own lateness the same way (kabin_session_cull_lateness).

    async def measured() -> None:
        assert culled_within_2_s() >= culled + 1

    await eventually(measured, timeout=5)
    await eventually(lambda: _has_pods(api, namespace, "short", 0))
    assert (await until(api, namespace, "renewed", lambda o: None))["status"]["phase"] == "Running"


def _has_expiry(obj: dict[str, Any]) -> None:
    assert obj.get("status", {}).get("expiryTime"), obj.get("status")


def _expiry_after(obj: dict[str, Any], before: str) -> None:
    assert obj["status"]["expiryTime"] > before, (obj["status"]["expiryTime"], before)


async def test_deleting_a_session_removes_all_its_children(
    api: client.ApiClient, environments: None, namespace: str
) -> None:
    await create(namespace, session("doomed", type="notebook", environment="notebook", replicas=2))
    await eventually(lambda: _has_pods(api, namespace, "doomed", 2))
    core, net = client.CoreV1Api(api), client.NetworkingV1Api(api)
    await present(lambda: core.read_namespaced_service("doomed", namespace))
    await present(lambda: net.read_namespaced_ingress("doomed", namespace))

    await client.CustomObjectsApi(api).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, "sessions", "doomed"
    )
    await gone(lambda: core.read_namespaced_service("doomed", namespace), within=60)
    await gone(lambda: net.read_namespaced_ingress("doomed", namespace), within=60)
    await eventually(lambda: _has_pods(api, namespace, "doomed", 0), timeout=60)
