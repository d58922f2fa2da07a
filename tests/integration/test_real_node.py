"""The real node: `realnode-1`, a kubelet with containerd and runc on this machine,
joined to the local control plane beside the simulated nodes (hack/node/up.sh).

What a simulated node cannot show: a process runs (it prints this machine's kernel),
`kubectl logs` and `exec` reach it through the API server, it answers HTTP on its pod
address and through a ClusterIP Service (kube-proxy), its memory limit is enforced, and
a kabin Session runs there to completion with its real output.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import uuid
from typing import Any

import httpx
import pytest

from tests.support import command, eventually, kubectl_apply, manifest, run

pytestmark = pytest.mark.integration

NODE = "realnode-1"
BUSYBOX = "localhost/kabin-busybox:1"
ON_THE_REAL_NODE: dict[str, Any] = {
    "nodeSelector": {"kabin.dev/node": "real"},
    "tolerations": [{"key": "kabin.dev/real-node", "operator": "Exists", "effect": "NoSchedule"}],
}
RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "runAsUser": 65534,
    "seccompProfile": {"type": "RuntimeDefault"},
}


@pytest.fixture(scope="module")
def real_node(kubeconfig: Any) -> str:
    """The real node, Ready. Where hack/node/up.sh found that this machine cannot run
    one (not root, for one), the tests are skipped with its reason; on a machine that
    can, a missing node fails them."""
    if os.geteuid() != 0:
        pytest.skip("a real node needs root (hack/node/up.sh runs simulated nodes only)")
    answer = subprocess.run(
        [
            "kubectl",
            "get",
            "node",
            NODE,
            "-o",
            'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert answer.stdout == "True", f"{NODE} is not Ready: {answer.stderr or answer.stdout}"
    return NODE


def pod(name: str, script: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            **ON_THE_REAL_NODE,
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "main",
                    "image": BUSYBOX,
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", script],
                    "securityContext": RESTRICTED,
                    **spec,
                }
            ],
        },
    }


async def get_pod(namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(
        await run("kubectl", "get", "pod", name, "-n", namespace, "-o", "json")
    )
    return found


async def until_phase(
    namespace: str, name: str, *phases: str, within: float = 90
) -> dict[str, Any]:
    async def probe() -> dict[str, Any]:
        obj = await get_pod(namespace, name)
        assert obj.get("status", {}).get("phase") in phases, obj.get("status")
        return obj

    return await eventually(probe, timeout=within)


async def test_a_real_process_runs_and_answers(real_node: str, namespace: str) -> None:
    script = (
        "echo kernel $(uname -r); mkdir -p /tmp/www; echo served by $(hostname) > /tmp/www/index.html; "
        "exec httpd -f -p 8080 -h /tmp/www"
    )
    made = await kubectl_apply(
        pod("web", script, ports=[{"containerPort": 8080}]), namespace=namespace
    )
    assert made.code == 0, made.err
    obj = await until_phase(namespace, "web", "Running")
    assert obj["spec"]["nodeName"] == real_node
    address = obj["status"]["podIP"]
    assert address.startswith("10.246.1."), address

    # Its output is this machine's kernel: a process ran, here.
    async def logged() -> str:
        out = await run("kubectl", "logs", "web", "-n", namespace)
        assert out.startswith("kernel "), out
        return out

    assert (await eventually(logged)).split()[1] == platform.release()
    # exec reaches it through the API server and the kubelet, as the pod's user.
    assert (
        await run("kubectl", "exec", "web", "-n", namespace, "--", "id", "-u")
    ).strip() == "65534"

    async def answers(url: str) -> None:
        async with httpx.AsyncClient(timeout=5, trust_env=False) as http:
            try:
                answer = await http.get(url)
            except httpx.TransportError as e:
                raise AssertionError(f"{url}: {e!r}") from e
        assert answer.status_code == 200 and answer.text.strip() == "served by web", answer.text

    await eventually(lambda: answers(f"http://{address}:8080/"), timeout=30)
    # And through a ClusterIP Service: kube-proxy routes it to the pod, on this machine.
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    assert (await kubectl_apply(service, namespace=namespace)).code == 0
    cluster_ip = await run(
        "kubectl", "get", "service", "web", "-n", namespace, "-o", "jsonpath={.spec.clusterIP}"
    )
    await eventually(lambda: answers(f"http://{cluster_ip}/"), timeout=30)


async def test_the_memory_limit_is_enforced(real_node: str, namespace: str) -> None:
    # tail holds its whole input (400 MB) in memory: over the 64 Mi limit, the kernel
    # kills it inside the pod's cgroup.
    script = "head -c 400000000 /dev/zero | tail > /dev/null && echo survived"
    hog = pod(
        "hog", script, resources={"limits": {"memory": "64Mi"}, "requests": {"memory": "64Mi"}}
    )
    assert (await kubectl_apply(hog, namespace=namespace)).code == 0
    obj = await until_phase(namespace, "hog", "Failed", "Succeeded")
    terminated = obj["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["reason"] == "OOMKilled", terminated
    assert terminated["exitCode"] == 137, terminated
    assert obj["status"]["phase"] == "Failed"
    assert "survived" not in await run("kubectl", "logs", "hog", "-n", namespace)


async def test_a_kabin_session_runs_there(
    real_node: str, namespace: str, operator: object, api: Any
) -> None:
    """A headless Session whose EnvironmentConfig places it on the real node: its pod
    runs the command, the Session succeeds, and its log is the command's output."""
    environment = f"real-{uuid.uuid4().hex[:6]}"
    env = manifest(
        "EnvironmentConfig",
        environment,
        {"image": BUSYBOX, "podOverrides": {**ON_THE_REAL_NODE}, "sessionTypes": ["headless"]},
    )
    assert (await kubectl_apply(env)).code == 0
    try:
        session = manifest(
            "Session",
            "count",
            {
                "type": "headless",
                "environment": environment,
                "command": ["sh", "-c", "for i in 1 2 3; do echo line $i; done; uname -r"],
                "resources": {"cpu": "100m", "memory": "64Mi"},
            },
        )
        made = await kubectl_apply(session, namespace=namespace)
        assert made.code == 0, made.err

        async def succeeded() -> None:
            phase = await run(
                "kubectl",
                "get",
                "session",
                "count",
                "-n",
                namespace,
                "-o",
                "jsonpath={.status.phase}",
            )
            assert phase == "Succeeded", phase

        await eventually(succeeded, timeout=120)
        obj = await get_pod(namespace, "count-1")
        assert obj["spec"]["nodeName"] == real_node
        logs = await run("kubectl", "logs", "count-1", "-n", namespace)
        assert logs.split() == ["line", "1", "line", "2", "line", "3", platform.release()]
    finally:
        await command("kubectl", "delete", "environmentconfig", environment, "--wait=false")
