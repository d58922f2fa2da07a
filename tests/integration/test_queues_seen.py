"""What people see of queues, on every surface, against the real control plane and Kueue:
the dashboard in Chromium shows the place in line and moves it live, Skaha's REST API
(through the real skaha client) says Pending with the place, `view=stats` reports the
ClusterQueues, `kabin ls` has a QUEUE column, and the gateway gives each user a
LocalQueue of their own."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes_asyncio import client
from playwright.async_api import Browser, expect

from tests.conftest import Gateway, start_gateway
from tests.integration.test_dashboard import WAIT, browser, session_card, signed_in
from tests.integration.test_queues import KUEUE, KV, QUEUE, Queues, headless, queues
from tests.support import command, eventually, exit_pod, kubectl_apply

pytestmark = pytest.mark.integration
__all__ = ["browser", "queues"]  # fixtures, shared with the dashboard's and queues' tests

KABIN = str(Path(sys.executable).parent / "kabin")


async def test_a_person_sees_their_place_in_line_everywhere_and_it_moves_live(
    browser: Browser, gateway: Gateway, api: client.ApiClient, queues: Queues
) -> None:
    from skaha.session import AsyncSession as Skaha

    me = gateway.person()
    page = await signed_in(browser, gateway, me)  # their namespace is made now
    cluster_queue = await queues.cluster([me.namespace], cpu=1)
    for name in ("first", "second", "third"):
        made = await kubectl_apply(
            headless(name, user=me.user), namespace=me.namespace
        )  # an admin's, for them: the REST create names no queue
        assert made.code == 0, made.err
        if name == "first":  # it holds the queue's one CPU
            await eventually(lambda: _running(api, me.namespace, "first"), timeout=60)
        await asyncio.sleep(1.1)  # Kueue orders by creation time, in whole seconds

    second, third = session_card(page, "second"), session_card(page, "third")
    await expect(second.get_by_test_id("reason")).to_contain_text(
        f"1st in line for 1 CPU in queue {QUEUE}", timeout=WAIT
    )
    await expect(third.get_by_test_id("reason")).to_contain_text("2nd in line", timeout=WAIT)
    await expect(second.get_by_test_id("status")).to_contain_text("Pending")

    skaha = Skaha(server=gateway.skaha, token=me.token)
    [record] = await skaha.info(["second"])
    assert record["status"] == "Pending"
    assert record["message"].startswith("1st in line for 1 CPU in queue"), record
    stats = await skaha.stats()
    assert stats["queues"][cluster_queue]["cpu"]["quota"] == 1, stats["queues"]
    assert stats["queues"][cluster_queue]["waiting"] == 2
    assert stats["cores"]["cpuCoresAvailable"] >= 1

    listed = await command(KABIN, "ls", "-n", me.namespace, env={**os.environ, "COLUMNS": "100"})
    assert listed.code == 0, listed.err
    rows = {line.split()[0]: line.split() for line in listed.out.splitlines() if line.strip()}
    assert rows["second"][2:5] == ["Pending", QUEUE, "#1"], listed.out
    assert rows["first"][2:4] == ["Running", QUEUE], listed.out

    # The first run ends: without a reload, the second runs and the third moves up.
    await exit_pod(api, me.namespace, "first-1", 0)
    await expect(second.get_by_test_id("status")).to_contain_text("Running", timeout=WAIT)
    await expect(third.get_by_test_id("reason")).to_contain_text("1st in line", timeout=WAIT)


async def _running(api: client.ApiClient, namespace: str, name: str) -> None:
    obj = await client.CustomObjectsApi(api).get_namespaced_custom_object(
        "kabin.dev", "v1alpha1", namespace, "sessions", name
    )
    assert (obj.get("status") or {}).get("phase") == "Running", obj.get("status")


async def test_the_gateway_gives_each_person_a_local_queue_of_their_own(
    api: client.ApiClient, operator: object, queues: Queues, tmp_path: Path, kubeconfig: Path
) -> None:
    cluster_queue = await queues.cluster([], cpu=1)
    run = uuid.uuid4().hex[:5]
    people = [("ann", f"tok-{uuid.uuid4().hex}"), ("bob", f"tok-{uuid.uuid4().hex}")]
    tokens = tmp_path / "tokens.csv"
    tokens.write_text("".join(f'{t},{u},{u},"researchers"\n' for u, t in people))
    proc, url = start_gateway(
        tmp_path,
        kubeconfig=kubeconfig,
        env={
            "KABIN_GATEWAY_PROVISION_NAMESPACES": "true",
            "KABIN_GATEWAY_PROVISION_GROUPS": '["researchers"]',
            "KABIN_GATEWAY_NAMESPACE_TEMPLATE": f"q{run}-{{user}}",
            "KABIN_GATEWAY_CLUSTER_QUEUE": cluster_queue,
        },
        args=("--token-file", str(tokens)),
    )
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            for _, token in people:
                answer = await http.get(
                    f"{url}/skaha/v0/session", headers={"Authorization": f"Bearer {token}"}
                )
                assert answer.status_code == 200, answer.text
        for user, _ in people:
            local: Any = await custom.get_namespaced_custom_object(
                KUEUE, KV, f"q{run}-{user}", "localqueues", "kabin"
            )
            assert local["spec"]["clusterQueue"] == cluster_queue

        async def both_listed() -> None:
            found = await custom.list_cluster_custom_object(KUEUE, KV, "localqueues")
            mine = [q for q in found["items"] if q["metadata"]["namespace"].startswith(f"q{run}-")]
            assert len(mine) == 2, mine

        await eventually(both_listed)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        for user, _ in people:
            await core.delete_namespace(f"q{run}-{user}", propagation_policy="Background")
