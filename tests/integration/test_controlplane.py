"""Smoke tests: the local control plane is a real Kubernetes, not a mock.

Each test exercises one real component the operator will rely on: the
scheduler (GPU capacity, taints), the garbage collector, the PV binder and the
simulated provisioner, RBAC with impersonation, and kwok's simulated kubelet
(pod lifecycle, exit codes, logs, readiness gates left to their owner).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.rest import ApiException

from tests.support import eventually, gone, run

pytestmark = pytest.mark.integration

GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def pod(
    name: str,
    *,
    gpus: int = 0,
    annotations: dict[str, str] | None = None,
    restart: str = "Never",
    image: str = "busybox:1.36",
    readiness_gates: list[str] | None = None,
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": image}
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    spec: dict[str, Any] = {"containers": [container], "restartPolicy": restart}
    if gpus:
        spec["tolerations"] = [GPU_TOLERATION]
    if readiness_gates:
        spec["readinessGates"] = [{"conditionType": t} for t in readiness_gates]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": spec,
    }


def condition(p: client.V1Pod, kind: str) -> client.V1PodCondition | None:
    return next((c for c in p.status.conditions or [] if c.type == kind), None)


async def wait_pod(
    core: client.CoreV1Api,
    namespace: str,
    name: str,
    check: Callable[[client.V1Pod], None],
    within: float = 30,
) -> client.V1Pod:
    async def probe() -> client.V1Pod:
        p = await core.read_namespaced_pod(name, namespace)
        check(p)
        return p

    return await eventually(probe, timeout=within)


def is_ready(p: client.V1Pod) -> None:
    ready = condition(p, "Ready")
    assert p.status.phase == "Running", p.status.phase
    assert ready is not None and ready.status == "True", ready


async def test_gpu_pod_lands_on_a_gpu_node_and_becomes_ready(
    api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespaced_pod(namespace, pod("trainer", gpus=1))
    await core.create_namespaced_pod(namespace, pod("cpu-only"))

    gpu = await wait_pod(core, namespace, "trainer", is_ready)
    node = await core.read_node(gpu.spec.node_name)
    assert node.metadata.labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    assert gpu.status.pod_ip, "a running pod has an IP"

    cpu = await wait_pod(core, namespace, "cpu-only", is_ready)
    assert cpu.spec.node_name.startswith("cpu-"), "the GPU taint keeps CPU pods off GPU nodes"


async def test_pod_asking_for_more_gpus_than_a_node_has_stays_unschedulable(
    api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespaced_pod(namespace, pod("greedy", gpus=9))

    def unschedulable(p: client.V1Pod) -> None:
        scheduled = condition(p, "PodScheduled")
        assert scheduled is not None and scheduled.status == "False", scheduled
        assert scheduled.reason == "Unschedulable"
        assert "Insufficient nvidia.com/gpu" in scheduled.message

    p = await wait_pod(core, namespace, "greedy", unschedulable)
    assert p.status.phase == "Pending"
    assert p.spec.node_name is None


async def test_garbage_collector_deletes_what_an_owner_owned(
    api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    owner = await core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "owner"}, "data": {}}
    )
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    await core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "owned", "ownerReferences": [ref]}, "data": {}}
    )
    await core.delete_namespaced_config_map("owner", namespace, propagation_policy="Background")

    await gone(lambda: core.read_namespaced_config_map("owned", namespace), within=60)


async def test_pvc_binds_expands_and_its_volume_is_reclaimed(
    api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    claim = {
        "metadata": {"name": "data"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
            "storageClassName": "kabin-sim",
        },
    }
    await core.create_namespaced_persistent_volume_claim(namespace, claim)

    async def capacity(size: str) -> client.V1PersistentVolumeClaim:
        pvc = await core.read_namespaced_persistent_volume_claim("data", namespace)
        assert pvc.status.phase == "Bound", pvc.status.phase
        assert (pvc.status.capacity or {}).get("storage") == size, pvc.status.capacity
        return pvc

    pvc = await eventually(lambda: capacity("1Gi"))
    pv = await core.read_persistent_volume(pvc.spec.volume_name)
    assert pv.spec.claim_ref.uid == pvc.metadata.uid

    await core.patch_namespaced_persistent_volume_claim(
        "data", namespace, {"spec": {"resources": {"requests": {"storage": "3Gi"}}}}
    )
    await eventually(lambda: capacity("3Gi"))
    pv = await core.read_persistent_volume(pvc.spec.volume_name)
    assert pv.spec.capacity["storage"] == "3Gi"

    await core.delete_namespaced_persistent_volume_claim("data", namespace)

    await gone(lambda: core.read_persistent_volume(pvc.spec.volume_name), within=60)


async def test_impersonated_user_without_rbac_is_forbidden(
    namespace: str, impersonate: Callable[..., Awaitable[client.ApiClient]]
) -> None:
    alice = client.CoreV1Api(await impersonate("alice"))
    with pytest.raises(ApiException) as refused:
        await alice.list_namespaced_pod(namespace)
    assert refused.value.status == 403
    message = json.loads(refused.value.body)["message"]
    assert 'User "alice" cannot list resource "pods"' in message


@pytest.mark.parametrize(
    ("code", "phase"), [("0", "Succeeded"), ("3", "Failed")], ids=["exit-0", "exit-3"]
)
async def test_annotated_exit_code_finishes_the_pod(
    api: client.ApiClient, namespace: str, code: str, phase: str
) -> None:
    core = client.CoreV1Api(api)
    annotations = {"sim.kabin.dev/exit-code": code, "sim.kabin.dev/run-for": "2s"}
    await core.create_namespaced_pod(namespace, pod("job", annotations=annotations))

    await wait_pod(core, namespace, "job", is_ready)  # it runs first, for run-for

    def finished(p: client.V1Pod) -> None:
        assert p.status.phase == phase, p.status.phase

    p = await wait_pod(core, namespace, "job", finished)
    terminated = p.status.container_statuses[0].state.terminated
    assert terminated.exit_code == int(code)
    assert terminated.reason == ("Completed" if code == "0" else "Error")


async def test_failing_container_that_restarts_is_in_crash_loop(
    api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    annotations = {"sim.kabin.dev/exit-code": "1"}
    await core.create_namespaced_pod(
        namespace, pod("flaky", annotations=annotations, restart="Always")
    )

    def crashing(p: client.V1Pod) -> None:
        assert p.status.container_statuses, "no container status yet"
        waiting = p.status.container_statuses[0].state.waiting
        assert waiting is not None and waiting.reason == "CrashLoopBackOff"

    p = await wait_pod(core, namespace, "flaky", crashing)
    assert p.status.phase == "Running"
    assert condition(p, "Ready").status == "False"
    assert p.status.container_statuses[0].last_state.terminated.exit_code == 1


async def test_image_from_a_registry_that_cannot_exist_fails_to_pull(
    api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespaced_pod(namespace, pod("bad", image="registry.invalid/nope:1"))

    def pull_error(p: client.V1Pod) -> None:
        assert p.status.container_statuses, "no container status yet"
        waiting = p.status.container_statuses[0].state.waiting
        assert waiting is not None and waiting.reason == "ErrImagePull", waiting

    p = await wait_pod(core, namespace, "bad", pull_error)
    assert p.status.phase == "Pending"


async def test_kubectl_logs_returns_the_simulated_lines(
    api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespaced_pod(namespace, pod("talker"))
    await wait_pod(core, namespace, "talker", is_ready)

    out = await run("kubectl", "logs", "-n", namespace, "talker")
    assert "hello from a simulated pod" in out
    assert out.splitlines()[0] == "[kabin-sim] container started"


async def test_readiness_gates_stay_with_their_owner(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    gate = "kabin.dev/jupyterlab-ready"
    await core.create_namespaced_pod(namespace, pod("gated", readiness_gates=[gate]))

    def running_not_ready(p: client.V1Pod) -> None:
        assert p.status.phase == "Running"
        ready = condition(p, "Ready")
        assert ready is not None and ready.status == "False", ready
        assert ready.reason == "ReadinessGatesNotReady"

    p = await wait_pod(core, namespace, "gated", running_not_ready)
    assert condition(p, gate) is None, "nobody but the gate's owner writes its condition"

    # The owner (kabin's agent, later) says the interface answers: Ready follows.
    await core.patch_namespaced_pod_status(
        "gated",
        namespace,
        {"status": {"conditions": [{"type": gate, "status": "True"}]}},
    )
    await wait_pod(core, namespace, "gated", is_ready)

    # ...and when it stops answering, Ready follows back.
    await core.patch_namespaced_pod_status(
        "gated",
        namespace,
        {"status": {"conditions": [{"type": gate, "status": "False"}]}},
    )
    await wait_pod(core, namespace, "gated", running_not_ready)


async def test_deleted_pod_lingers_terminating_for_its_grace(
    api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespaced_pod(
        namespace, pod("slow-stop", annotations={"sim.kabin.dev/terminate-for": "2s"})
    )
    await wait_pod(core, namespace, "slow-stop", is_ready)
    await core.delete_namespaced_pod("slow-stop", namespace)

    p = await core.read_namespaced_pod("slow-stop", namespace)
    assert p.metadata.deletion_timestamp is not None, "still there, Terminating"

    await gone(lambda: core.read_namespaced_pod("slow-stop", namespace))
