"""Activity and idle timeouts with real processes: a real JupyterLab server, a real
sshd with a real ssh client, and the real `kabin agent` with its session's
ServiceAccount token, against the local control plane and the operator.

The simulated pods run no processes; the agent runs on this machine with the
variables the operator gave the pod's agent container, only the interface ports
moved to where the peers listen here. The machine's own processes are not the
session's, so the CPU signal is switched off in these tests (its threshold set
out of reach); it is unit-tested in tests/unit/test_agent.py.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.rest import ApiException

from tests import peers
from tests.integration.test_sessions import condition, create, get, session, until
from tests.support import eventually, manifest, present

pytestmark = pytest.mark.integration

FAST = {
    "KABIN_AGENT_PROBE_INTERVAL": "0.5",
    "KABIN_AGENT_SAMPLE_INTERVAL": "0.5",
    "KABIN_AGENT_RENEW_INTERVAL": "1",
    "KABIN_AGENT_USAGE_INTERVAL": "1",
    "KABIN_AGENT_CPU_THRESHOLD": "100000",
}


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def base_path(kind: str, namespace: str, name: str) -> str:
    return f"/session/{kind}/{namespace}/{name}/"


async def lease(api: client.ApiClient, namespace: str, name: str) -> client.V1Lease:
    return await client.CoordinationV1Api(api).read_namespaced_lease(name, namespace)


async def renewed(api: client.ApiClient, namespace: str, name: str) -> datetime | None:
    spec = (await lease(api, namespace, name)).spec
    return spec.renew_time if spec else None


async def agent_env(
    api: client.ApiClient, namespace: str, pod: str, ports: dict[str, int]
) -> dict[str, str]:
    """The pod's agent variables as the operator wrote them, the interfaces' ports moved
    to where this machine's peers listen."""
    core = client.CoreV1Api(api)
    found = await present(lambda: core.read_namespaced_pod(pod, namespace))
    container = next(c for c in found.spec.containers if c.name == "kabin-agent")
    env = {}
    for e in container.env:
        if e.value_from is not None:  # what the kubelet does: read the Secret
            ref = e.value_from.secret_key_ref
            secret = await present(lambda ref=ref: core.read_namespaced_secret(ref.name, namespace))
            env[e.name] = base64.b64decode(secret.data[ref.key]).decode()
        else:
            env[e.name] = e.value
    interfaces = json.loads(env["KABIN_AGENT_INTERFACES"])
    for interface in interfaces:
        interface["port"] = ports[interface["name"]]
    return {**env, "KABIN_AGENT_INTERFACES": json.dumps(interfaces), **FAST}


async def agent_kubeconfig(
    api: client.ApiClient, kubeconfig: Path, namespace: str, name: str, tmp: Path
) -> Path:
    account = f"{name}-kabin-agent"
    await present(lambda: client.CoreV1Api(api).read_namespaced_service_account(account, namespace))
    return await peers.service_account_kubeconfig(
        api, kubeconfig, namespace, account, tmp / f"{name}.kubeconfig"
    )


@contextlib.asynccontextmanager
async def environment(api: client.ApiClient, namespace: str, **spec: Any) -> AsyncIterator[str]:
    """A notebook EnvironmentConfig of the test's own."""
    name = f"nb-{namespace}"[:63]
    interfaces = [{"name": "jupyterlab", "port": 8888, "path": "/lab"}]
    await create(
        namespace,
        manifest(
            "EnvironmentConfig",
            name,
            {
                "image": "quay.io/jupyter/base-notebook:2025-06-02",
                "interfaces": interfaces,
                "sessionTypes": ["notebook"],
                **spec,
            },
        ),
    )
    try:
        yield name
    finally:
        await client.CustomObjectsApi(api).delete_cluster_custom_object(
            "kabin.dev", "v1alpha1", "environmentconfigs", name
        )


def gate_of(pod: client.V1Pod, interface: str) -> str | None:
    wanted = f"kabin.dev/{interface}-ready"
    return next((c.status for c in pod.status.conditions or [] if c.type == wanted), None)


async def events(api: client.ApiClient, namespace: str, name: str) -> list[tuple[str, str]]:
    found = await client.CoreV1Api(api).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name},involvedObject.kind=Session"
    )
    return [(e.reason, e.message) for e in found.items]


def running(obj: dict[str, Any]) -> None:
    assert obj.get("status", {}).get("phase") == "Running", obj.get("status")


async def test_agent_opens_jupyterlab_and_counts_a_busy_kernel(
    api: client.ApiClient, namespace: str, environments: None, kubeconfig: Path, tmp_path: Path
) -> None:
    name = "lab"
    base = base_path("notebook", namespace, name)
    await create(namespace, session(name, type="notebook", environment="notebook"))
    # kabin made the server's token (the environment sets none); the server reads it
    # from the Secret, as the agent does.
    env = await agent_env(api, namespace, f"{name}-1", {"jupyterlab": 0})
    main = (
        await client.CoreV1Api(api).read_namespaced_pod(f"{name}-1", namespace)
    ).spec.containers[0]
    assert [e.value_from.secret_key_ref.name for e in main.env if e.name == "JUPYTER_TOKEN"] == [
        f"{name}-jupyter-token"
    ]
    with peers.jupyter_server(base, tmp_path, token=env["JUPYTER_TOKEN"]) as lab:
        env = await agent_env(api, namespace, f"{name}-1", {"jupyterlab": lab.port})
        assert json.loads(env["KABIN_AGENT_INTERFACES"]) == [
            {"name": "jupyterlab", "port": lab.port, "base": base, "path": f"{base}lab"}
        ]
        token = await agent_kubeconfig(api, kubeconfig, namespace, name, tmp_path)
        with peers.agent(env, token, tmp_path / "agent.log"):

            def lab_ready(obj: dict[str, Any]) -> None:
                running(obj)
                assert condition(obj, "JupyterlabReady").get("status") == "True", obj["status"]
                assert condition(obj, "Ready").get("status") == "True", obj["status"]
                assert obj["status"]["endpoints"][0]["ready"] is True

            obj = await until(api, namespace, name, lab_ready, within=30)
            assert obj["status"]["connectURL"].endswith(f"{base}lab")
            pod = await client.CoreV1Api(api).read_namespaced_pod(f"{name}-1", namespace)
            assert gate_of(pod, "jupyterlab") == "True"

            # An idle server (started before the agent, nobody asking) is no activity.
            await peers.pause(3)
            assert await renewed(api, namespace, name) is None, "idle, yet the Lease was renewed"

            sent = datetime.now(UTC)
            await lab.execute("import time; time.sleep(6)")

            async def kernel_busy_for_a_while() -> datetime:
                when = await renewed(api, namespace, name)
                assert when is not None, "no renewal for a busy kernel"
                # Still renewed seconds after the request: the busy kernel, not the request.
                assert when > sent + timedelta(seconds=3), (when, sent)
                return when

            when = await eventually(kernel_busy_for_a_while, timeout=15)
            held = await lease(api, namespace, name)
            assert held.metadata.annotations["kabin.dev/activity-source"] == "jupyter"
            assert held.spec.holder_identity == f"{name}-1"

            def activity_recorded(obj: dict[str, Any]) -> None:
                status = obj["status"]
                assert status.get("lastActivitySource") == "jupyter", status
                last = _time(status.get("lastActivityTime"))
                assert last is not None and last >= when - timedelta(seconds=2), status
                assert status["usage"]["memory"].endswith("Mi"), status
                assert _time(status["expiryTime"]) == last + timedelta(seconds=7200)

            await until(api, namespace, name, activity_recorded, within=10)


async def test_ssh_connection_is_activity_and_ssh_readiness_is_the_banner(
    api: client.ApiClient, namespace: str, environments: None, kubeconfig: Path, tmp_path: Path
) -> None:
    name = "shell"
    with peers.sshd(tmp_path) as server:
        await create(namespace, session(name, type="ssh", environment="ssh"))
        env = await agent_env(api, namespace, f"{name}-1", {"ssh": server.port})
        token = await agent_kubeconfig(api, kubeconfig, namespace, name, tmp_path)
        with peers.agent(env, token, tmp_path / "agent.log"):

            def ssh_ready(obj: dict[str, Any]) -> None:
                running(obj)
                assert condition(obj, "SshReady").get("status") == "True", obj["status"]
                assert obj["status"]["endpoints"][0]["ready"] is True

            await until(api, namespace, name, ssh_ready, within=30)
            await peers.pause(2)
            assert await renewed(api, namespace, name) is None, "no client, yet renewed"

            client_proc = server.connect()
            try:

                async def connected() -> datetime:
                    when = await renewed(api, namespace, name)
                    assert when is not None, "a connected client is activity"
                    return when

                await eventually(connected, timeout=20)
                held = await lease(api, namespace, name)
                assert held.metadata.annotations["kabin.dev/activity-source"] == "ssh"

                def recorded(obj: dict[str, Any]) -> None:
                    assert obj["status"].get("lastActivitySource") == "ssh", obj["status"]
                    assert obj["status"]["timeoutMode"] == "absolute"

                await until(api, namespace, name, recorded, within=10)
            finally:
                client_proc.terminate()
                client_proc.wait(10)

            # Disconnected: the renewals stop (one may still land for the last moments).
            await peers.pause(1.5)
            last = await renewed(api, namespace, name)
            await peers.pause(3)
            assert await renewed(api, namespace, name) == last, "renewed with nobody connected"
            running(await get(api, namespace, name))


async def test_idle_notebook_is_culled_on_time(
    api: client.ApiClient, namespace: str, environments: None
) -> None:
    name = "idle"
    # Expire, chosen: the ending of old (test_suspend covers the default, Suspend).
    await create(
        namespace,
        session(name, type="notebook", environment="notebook", timeout=5, timeoutAction="Expire"),
    )
    obj = await until(api, namespace, name, running, within=30)
    start = _time(obj["status"]["startTime"])
    assert start is not None
    assert _time(obj["status"]["expiryTime"]) == start + timedelta(seconds=5)
    assert condition(obj, "ExpiringSoon").get("status") == "True", "5 s is within the warning"

    def expired(obj: dict[str, Any]) -> None:
        assert obj["status"]["phase"] == "Expired", obj["status"]["phase"]

    obj = await until(api, namespace, name, expired, within=15)
    seen = datetime.now(UTC)
    assert obj["status"]["reason"] == "IdleTimeout"
    assert obj["status"]["message"] == "idle for 5 seconds (no activity seen since the start)"
    culled = seen - start
    print(
        f"idle notebook culled {culled.total_seconds():.2f} s after its start", file=sys.__stderr__
    )
    assert timedelta(seconds=5) <= culled <= timedelta(seconds=7), culled

    async def told() -> None:
        reasons = [reason for reason, _ in await events(api, namespace, name)]
        assert "ExpiringSoon" in reasons and "IdleTimeout" in reasons, reasons

    await eventually(told, timeout=10)

    async def pods_gone() -> None:
        found = await client.CoreV1Api(api).list_namespaced_pod(
            namespace, label_selector=f"kabin.dev/session={name}"
        )
        assert not found.items, [p.metadata.name for p in found.items]

    await eventually(pods_gone, timeout=15)
    drive = obj["status"]["drive"]

    async def released() -> None:
        d = await client.CustomObjectsApi(api).get_namespaced_custom_object(
            "kabin.dev", "v1alpha1", namespace, "drives", drive
        )
        assert not d.get("status", {}).get("holder"), d.get("status")

    await eventually(released, timeout=15)


async def test_activity_every_three_seconds_keeps_a_notebook_alive(
    api: client.ApiClient, namespace: str, environments: None, kubeconfig: Path, tmp_path: Path
) -> None:
    name = "busy"
    # An environment that sets the server's token itself, so that the server is up
    # before the session's 5 s start.
    with peers.jupyter_server(base_path("notebook", namespace, name), tmp_path) as lab:
        async with environment(
            api, namespace, env=[{"name": "JUPYTER_TOKEN", "value": lab.token}]
        ) as nb:
            await create(
                namespace,
                session(name, type="notebook", environment=nb, timeout=5, timeoutAction="Expire"),
            )
            env = await agent_env(api, namespace, f"{name}-1", {"jupyterlab": lab.port})
            assert env["JUPYTER_TOKEN"] == lab.token
            token = await agent_kubeconfig(api, kubeconfig, namespace, name, tmp_path)
            with peers.agent(env, token, tmp_path / "agent.log"):

                async def gate_up() -> None:
                    pod = await client.CoreV1Api(api).read_namespaced_pod(f"{name}-1", namespace)
                    assert gate_of(pod, "jupyterlab") == "True"

                await eventually(gate_up, timeout=20)

                # The agent here runs beside the pod, so the gate may open before the pod
                # is placed (its drive is made when its first session is scheduled).
                async def placed() -> None:
                    running(await get(api, namespace, name))

                await eventually(placed, timeout=30)
                began = time.monotonic()
                while time.monotonic() - began < 16:
                    await lab.touch()
                    last_touch = datetime.now(UTC)
                    running(await get(api, namespace, name))
                    await asyncio.sleep(3)
                obj = await get(api, namespace, name)
                running(obj)
                assert obj["status"]["lastActivitySource"] == "jupyter"

                def expired(obj: dict[str, Any]) -> None:
                    assert obj["status"]["phase"] == "Expired", obj["status"]["phase"]

                obj = await until(api, namespace, name, expired, within=15)
                culled = datetime.now(UTC)
                assert obj["status"]["reason"] == "IdleTimeout"
                assert "last activity: jupyter" in obj["status"]["message"]
                # Culled once idle for the timeout after the last touch, not before.
                assert culled - last_touch >= timedelta(seconds=5), culled - last_touch


async def test_never_is_never(api: client.ApiClient, namespace: str, environments: None) -> None:
    name = "forever"
    # An environment that lifts the cap on timeouts (the example caps them at a day, the
    # cluster's default policy at a week).
    async with environment(api, namespace, timeouts={"max": -1}) as unlimited:
        await create(namespace, session(name, type="notebook", environment=unlimited, timeout=-1))
        await until(api, namespace, name, running, within=30)
        await peers.pause(8)
        obj = await get(api, namespace, name)
        running(obj)
        assert obj["status"]["timeoutMode"] == "none"
        assert "expiryTime" not in obj["status"]
        assert not condition(obj, "ExpiringSoon")


async def test_agent_may_renew_only_its_own_lease(
    api: client.ApiClient, namespace: str, environments: None, kubeconfig: Path, tmp_path: Path
) -> None:
    for name in ("mine", "theirs"):  # each on a drive of its own, so both start
        await create(namespace, manifest("Drive", name, {"size": "1Gi"}))
        await create(namespace, session(name, type="ssh", environment="ssh", drive=name))
    await present(lambda: lease(api, namespace, "theirs"))
    await present(lambda: client.CoreV1Api(api).read_namespaced_pod("mine-1", namespace))
    token = await agent_kubeconfig(api, kubeconfig, namespace, "mine", tmp_path)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body = {"spec": {"renewTime": now}}
    async with await config.new_client_from_config(config_file=str(token)) as agent_api:
        coordination = client.CoordinationV1Api(agent_api)
        await coordination.patch_namespaced_lease("mine", namespace, body)
        with pytest.raises(ApiException) as refused:
            await coordination.patch_namespaced_lease("theirs", namespace, body)
        assert refused.value.status == 403
        message = json.loads(refused.value.body)["message"]
        assert (
            f'system:serviceaccount:{namespace}:mine-kabin-agent" cannot patch resource "leases"'
            in message
        )
        core = client.CoreV1Api(agent_api)
        condition_patch = {
            "status": {"conditions": [{"type": "kabin.dev/ssh-ready", "status": "True"}]}
        }
        await core.patch_namespaced_pod_status("mine-1", namespace, condition_patch)
        for call in (
            core.patch_namespaced_pod_status("theirs-1", namespace, condition_patch),
            core.list_namespaced_pod(namespace),
            core.list_namespaced_secret(namespace),
            client.CustomObjectsApi(agent_api).list_namespaced_custom_object(
                "kabin.dev", "v1alpha1", namespace, "sessions"
            ),
        ):
            with pytest.raises(ApiException) as refused:
                await call
            assert refused.value.status == 403, refused.value.body
