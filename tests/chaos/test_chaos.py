"""Faults during bursts of Sessions, each scenario ending with the invariants checked
(`tests/chaos/invariants.py`): every admitted Session converges, no duplicate or
orphaned pod, no drive with two holders or a leaked lock, drive waiters served first
come first served.

`make chaos` runs them at full size (KABIN_CHAOS=full: 500 sessions, 10 kills, 50
sessions x 20 rounds on one drive); `make test` (and so CI) at small sizes.
docs/reliability.md tabulates the scenarios and what they showed.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from kubernetes_asyncio import client

from tests.chaos.invariants import FULL, GROUP, VERSION, check, look, scale
from tests.relay import kubeconfig_through, relay
from tests.support import apply_now, eventually, exit_pod, run

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def room() -> Iterator[None]:
    """At full size, simulated nodes with room for the bursts: the local control plane's
    four CPU nodes take 110 pods each, 440 in all, fewer than a burst of 500."""
    if not FULL:
        yield
        return
    nodes = [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": f"chaos-{i}",
                "labels": {"type": "kwok", "kubernetes.io/hostname": f"chaos-{i}"},
            },
            "status": {
                "capacity": {"cpu": "1000", "memory": "4Ti", "pods": "500"},
                "allocatable": {"cpu": "1000", "memory": "4Ti", "pods": "500"},
            },
        }
        for i in range(2)
    ]
    apply_now(*nodes)
    yield
    subprocess.run(
        ["kubectl", "delete", "node", "chaos-0", "chaos-1", "--ignore-not-found"],
        capture_output=True,
        check=False,
    )


def headless(name: str, *, replicas: int = 1, drive: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": "headless", "image": "busybox", "replicas": replicas}
    if drive:
        spec["drive"] = drive
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Session",
        "metadata": {"name": name},
        "spec": spec,
    }


async def apply(namespace: str, docs: list[dict[str, Any]], *, batch: int = 25) -> None:
    """kubectl apply in batches, retrying a batch the API server could not take (a
    control plane stopping or restarting refuses writes for a while)."""
    for start in range(0, len(docs), batch):
        chunk = yaml.safe_dump_all(docs[start : start + batch])
        deadline = time.monotonic() + 120
        while True:
            done = await asyncio.create_subprocess_exec(
                "kubectl", "apply", "--server-side", "-n", namespace, "-f", "-",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            _, err = await done.communicate(chunk.encode())
            if done.returncode == 0:
                break
            assert time.monotonic() < deadline, err.decode()
            await asyncio.sleep(1)


async def converged(
    api: client.ApiClient, namespace: str, count: int, within: float
) -> dict[str, int]:
    async def probe() -> dict[str, int]:
        world = await look(api, namespace)
        assert len(world.sessions) == count, len(world.sessions)
        return check(world)

    return await eventually(probe, timeout=within, interval=1)


async def test_sigkill_the_operator_during_a_burst(
    api: client.ApiClient, k_namespace: str, operator_process: Any, environments: None
) -> None:
    count, kills = scale(60, 500), scale(3, 10)
    replicas = scale(2, 1)
    proc = operator_process()
    burst = asyncio.create_task(
        apply(k_namespace, [headless(f"s{i:03d}", replicas=replicas) for i in range(count)])
    )
    for _ in range(kills):
        await asyncio.sleep(random.uniform(0.5, 2.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc = operator_process()
    await burst
    seen = await converged(api, k_namespace, count, within=scale(120, 900))
    assert seen["pods"] == replicas * count


async def test_200_ms_between_the_operator_and_the_api_server(
    api: client.ApiClient, k_namespace: str, operator_process: Any, environments: None
) -> None:
    count = scale(20, 200)
    url, listener = await relay(api.configuration.host, 200)
    try:
        operator_process(kubeconfig=kubeconfig_through(url))
        await apply(k_namespace, [headless(f"slow{i:03d}") for i in range(count)])
        await converged(api, k_namespace, count, within=scale(120, 900))
    finally:
        listener.close()


async def test_a_race_for_one_drive_round_after_round(
    api: client.ApiClient, operator: object, namespace: str
) -> None:
    sessions, rounds = scale(6, 50), scale(2, 20)
    await apply(namespace, [{"apiVersion": f"{GROUP}/{VERSION}", "kind": "Drive",
                             "metadata": {"name": "race"}, "spec": {"size": "1Gi"}}])  # fmt: skip
    core = client.CoreV1Api(api)
    custom = client.CustomObjectsApi(api)
    for round_ in range(rounds):
        names = [f"r{round_:02d}-{i:02d}" for i in range(sessions)]
        for name in names:  # one by one: the creation order is the queue's order
            await apply(namespace, [headless(name, drive="race")])
        granted: list[str] = []
        deadline = time.monotonic() + 30 + 10 * sessions
        while len(granted) < sessions:
            assert time.monotonic() < deadline, f"granted so far: {granted}"
            pods = (
                await core.list_namespaced_pod(namespace, label_selector="kabin.dev/drive=race")
            ).items
            live = {p.metadata.labels["kabin.dev/session"] for p in pods
                    if p.status.phase not in ("Succeeded", "Failed") and p.metadata.deletion_timestamp is None}  # fmt: skip
            assert len(live) <= 1, f"two sessions hold the drive: {live}"
            check(await look(api, namespace), converged=False)
            for pod in pods:
                holder = pod.metadata.labels["kabin.dev/session"]
                if holder not in granted:
                    granted.append(holder)
                if pod.status.phase == "Running":  # its work is done: let the next one in
                    await exit_pod(api, namespace, pod.metadata.name, 0)
            await asyncio.sleep(0.2)
        assert granted == names, "first come, first served"
        for name in names:
            await custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, "sessions", name
            )

        async def emptied() -> None:
            left = await custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "sessions")
            assert not left["items"], len(left["items"])

        await eventually(emptied, timeout=60)
    drive = await custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "drives", "race")
    assert not (drive.get("status") or {}).get("holder"), "the lock is released at the end"


def _etcd_pid() -> int:
    """The local control plane's etcd (run by kwokctl from this checkout's .cluster)."""
    state = str(ROOT / ".cluster")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"/etcd") and any(state.encode() in a for a in argv):
            return int(entry.name)
    raise AssertionError("no etcd of the local control plane is running")


local_only = pytest.mark.skipif(
    bool(os.environ.get("KABIN_TEST_KUBECONFIG")), reason="stops the local control plane's parts"
)


@local_only
async def test_etcd_stopped_for_10_s_during_a_burst(
    api: client.ApiClient, operator: object, namespace: str
) -> None:
    count = scale(30, 200)
    docs = [headless(f"e{i:03d}") for i in range(count)]
    await apply(namespace, docs[: count // 2])
    pid = _etcd_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        rest = asyncio.create_task(apply(namespace, docs[count // 2 :]))
        await asyncio.sleep(10)
    finally:
        os.kill(pid, signal.SIGCONT)
    await rest
    await converged(api, namespace, count, within=scale(120, 900))


def _free(port: int) -> bool:
    """Whether a listener could bind `port` now."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def _holders(port: int) -> str:
    """What holds `port` (for the failure message)."""
    import subprocess

    found = subprocess.run(["ss", "-tanp"], capture_output=True, text=True, check=False)
    return "; ".join(line for line in found.stdout.splitlines() if f":{port} " in line)


def _running(pid: int) -> bool:
    """Whether process `pid` still runs (a zombie waiting to be reaped does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@local_only
async def test_the_control_plane_restarts_during_a_burst(
    api: client.ApiClient, operator: object, namespace: str, kubeconfig: Path
) -> None:
    count = scale(30, 200)
    docs = [headless(f"c{i:03d}") for i in range(count)]
    await apply(namespace, docs[: count // 2])
    env = {**os.environ, "KWOK_WORKDIR": str(ROOT / ".cluster" / "kwok")}
    pids = [int(p.read_text()) for p in (ROOT / ".cluster/kwok/clusters/kabin/pids").glob("*.pid")]
    await run("kwokctl", "stop", "cluster", "--name", "kabin", env=env, within=120)

    port = urlsplit(api.configuration.host).port or 443

    async def stopped() -> None:
        # `kwokctl stop` signals and returns; a busy API server takes seconds to let go of
        # its port, and one started before then fails to bind it and hangs the start.
        alive = [pid for pid in pids if _running(pid)]
        assert not alive, f"control-plane processes still stopping: {alive}"
        assert _free(port), f"port {port} of the API server still taken: {_holders(port)}"

    await eventually(stopped, timeout=60)
    await run("kwokctl", "start", "cluster", "--name", "kabin", env=env, within=120)

    async def serving() -> None:
        ready = await asyncio.create_subprocess_exec(
            "kubectl", "get", "--raw", "/readyz",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        assert await ready.wait() == 0, "API server not ready"

    await eventually(serving, timeout=60)
    await run(
        "kubectl", "wait", "--for=condition=Ready", "node", "--all", "--timeout=60s", within=70
    )
    await apply(namespace, docs[count // 2 :])
    await converged(api, namespace, count, within=scale(180, 900))
