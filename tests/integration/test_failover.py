"""Two operator replicas with leader election: one reconciles, and when it is killed the
other takes over within 15 s, handling nothing twice and losing nothing.

Both run as real processes (`kabin operator`) for one k-* namespace, with their Lease in
that namespace; the in-process test operator serves admission.
"""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.rest import ApiException

from tests.chaos.invariants import check, look
from tests.integration.test_sessions import create, session
from tests.support import eventually, free_port, metric

pytestmark = pytest.mark.integration


async def _reconciles(port: int) -> float:
    """Reconciles a replica has run, from its metrics."""
    return await metric(port, "kabin_reconcile_duration_seconds_count")


async def _holder(api: client.ApiClient, namespace: str) -> str:
    """Who holds the operators' Lease ("" while there is none)."""
    try:
        lease = await client.CoordinationV1Api(api).read_namespaced_lease(
            "kabin-operator", namespace
        )
    except ApiException as e:
        if e.status == 404:
            return ""
        raise
    return lease.spec.holder_identity or ""


async def test_the_standby_takes_over_within_15_s_of_the_leader_being_killed(
    api: client.ApiClient, k_namespace: str, operator_process: Any
) -> None:
    ports = {"a": free_port(), "b": free_port()}
    started = {}
    for name in ("a", "b"):
        started[name] = operator_process(
            KABIN_LEADER_ELECTION="true",
            KABIN_LEADER_NAMESPACE=k_namespace,
            KABIN_METRICS_PORT=str(ports[name]),
            POD_NAME=f"op-{name}",
        )
        if name == "a":  # a leads first: the Lease is its own before b starts

            async def a_leads() -> None:
                assert (await _holder(api, k_namespace)).startswith("op-a-")

            await eventually(a_leads, timeout=30)

    names = [f"s{i}" for i in range(8)]
    for name in names:
        await create(k_namespace, session(name, type="headless", image="busybox", replicas=2))

    async def running(expected: list[str]) -> None:
        world = await look(api, k_namespace)
        phases = {
            s["metadata"]["name"]: (s.get("status") or {}).get("phase") for s in world.sessions
        }
        assert all(phases.get(n) == "Running" for n in expected), phases
        check(world)  # no duplicate or orphaned pod

    await eventually(lambda: running(names), timeout=60)
    await asyncio.sleep(2)
    assert await _reconciles(ports["a"]) > 0
    assert await _reconciles(ports["b"]) == 0, "the standby reconciled while a led"

    started["a"].send_signal(signal.SIGKILL)
    killed = time.monotonic()
    await create(k_namespace, session("after", type="headless", image="busybox", replicas=2))

    async def b_leads() -> None:
        assert (await _holder(api, k_namespace)).startswith("op-b-")

    await eventually(b_leads, timeout=30, interval=0.2)
    took_over = time.monotonic() - killed
    await eventually(lambda: running([*names, "after"]), timeout=30, interval=0.2)
    served = time.monotonic() - killed
    print(
        f"\nthe standby led {took_over:.1f} s after the kill; served a new session {served:.1f} s after",
        flush=True,
    )
    assert served <= 15, f"a session created at the kill was Running only after {served:.1f} s"
    world = await look(api, k_namespace)
    counted = check(world)
    assert len(world.pods) == 2 * (len(names) + 1), counted
