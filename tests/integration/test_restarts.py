"""An operator killed at any moment converges when restarted: no duplicates, no orphans.

These tests run the operator as a real process (`kabin operator --namespace`), in
namespaces named k-*, which the in-process test operator leaves alone; that one
still serves the admission webhooks.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client

from tests.support import eventually, free_port, run, scrape

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SESSIONS = 50
REPLICAS = 2


def manifests(count: int) -> str:
    return yaml.safe_dump_all(
        {
            "apiVersion": "kabin.dev/v1alpha1",
            "kind": "Session",
            "metadata": {"name": f"s{i:02d}"},
            # One user each (the test runs as an admin): each holds its own default drive.
            "spec": {
                "type": "notebook",
                "environment": "notebook",
                "replicas": REPLICAS,
                "user": f"user{i:02d}",
            },
        }
        for i in range(count)
    )


async def test_sigkill_while_creating_50_sessions_then_restart_leaves_exactly_the_right_children(
    api: client.ApiClient, k_namespace: str, operator_process: Any, environments: None
) -> None:
    core, net = client.CoreV1Api(api), client.NetworkingV1Api(api)
    first = operator_process()
    await run(
        "kubectl",
        "apply",
        "--server-side",
        "-n",
        k_namespace,
        "-f",
        "-",
        stdin=manifests(SESSIONS),
        within=60,
    )

    async def some_pods() -> int:
        count = len((await core.list_namespaced_pod(k_namespace)).items)
        assert count >= 10, count
        return count

    at_kill = await eventually(some_pods, timeout=60, interval=0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert at_kill < SESSIONS * REPLICAS, "killed too late to prove anything"

    operator_process()

    async def converged() -> None:
        pods = (await core.list_namespaced_pod(k_namespace)).items
        names = sorted(p.metadata.name for p in pods)
        expected = sorted(f"s{i:02d}-{r}" for i in range(SESSIONS) for r in (1, 2))
        assert names == expected, f"{len(names)} pods"
        services = (await core.list_namespaced_service(k_namespace)).items
        assert sorted(s.metadata.name for s in services) == [f"s{i:02d}" for i in range(SESSIONS)]
        ingresses = (await net.list_namespaced_ingress(k_namespace)).items
        assert len(ingresses) == SESSIONS

    await eventually(converged, timeout=120, interval=0.5)
    sessions = await client.CustomObjectsApi(api).list_namespaced_custom_object(
        "kabin.dev", "v1alpha1", k_namespace, "sessions"
    )
    uids = {s["metadata"]["uid"] for s in sessions["items"]}
    pods = (await core.list_namespaced_pod(k_namespace)).items
    # Every pod is owned by a live session of its name: no orphans.
    for pod in pods:
        (owner,) = pod.metadata.owner_references
        assert owner.uid in uids
        assert pod.metadata.name.rsplit("-", 1)[0] == owner.name

    async def all_running() -> None:
        listed = await client.CustomObjectsApi(api).list_namespaced_custom_object(
            "kabin.dev", "v1alpha1", k_namespace, "sessions"
        )
        phases = {s.get("status", {}).get("phase") for s in listed["items"]}
        assert phases == {"Running"}, phases

    await eventually(all_running, timeout=60)


async def test_metrics_count_sessions_by_phase_and_time_reconciles(
    api: client.ApiClient, k_namespace: str, operator_process: Any
) -> None:

    port = free_port()
    operator_process(KABIN_METRICS_PORT=str(port))
    await run(
        "kubectl",
        "apply",
        "--server-side",
        "-n",
        k_namespace,
        "-f",
        "-",
        stdin=yaml.safe_dump(
            {
                "apiVersion": "kabin.dev/v1alpha1",
                "kind": "Session",
                "metadata": {"name": "counted"},
                "spec": {"type": "headless", "image": "busybox"},
            }
        ),
    )

    async def scraped() -> str:
        text = await scrape(port)
        assert 'kabin_sessions{phase="Running",type="headless"} 1.0' in text
        return text

    text = await eventually(scraped, timeout=30)
    assert 'kabin_reconcile_duration_seconds_count{type="headless"}' in text
    assert "kabin_session_ready_duration_seconds_bucket" in text
    # Labels take few values: never a session's name.
    assert "counted" not in text
