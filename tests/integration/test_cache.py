"""The operator reads from its cache: a reconcile of an unchanged session asks the API
server nothing, a cache that missed a watch event converges on the next one, and one
whose watch was down while objects were deleted learns of it when it lists again.

Requests are counted where the operator sends them (`kabin_api_requests_total`, its
client's counting transport); reconciles by the operator's own histogram. The in-process
operator of the test session shares this process's Prometheus registry.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client
from prometheus_client import REGISTRY

from tests.integration.test_activity import running
from tests.integration.test_drives import apply, drive
from tests.integration.test_drives import get as get_custom
from tests.integration.test_drives import session as headless
from tests.integration.test_sessions import create, get, pods, session, until
from tests.relay import Outage, filtering_proxy, kubeconfig_without_credentials
from tests.support import eventually

pytestmark = pytest.mark.integration


def _total(metric: str, **labels: str) -> float:
    return sum(
        sample.value
        for family in REGISTRY.collect()
        for sample in family.samples
        if sample.name == metric and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def _requests() -> dict[tuple[str, str], float]:
    """Requests sent so far by (verb, resource), whatever their answer."""
    counts: dict[tuple[str, str], float] = {}
    for family in REGISTRY.collect():
        for s in family.samples:
            if s.name == "kabin_api_requests_total":
                key = (s.labels["verb"], s.labels["resource"])
                counts[key] = counts.get(key, 0) + s.value
    return counts


async def _quiet(api: client.ApiClient, namespace: str) -> dict[tuple[str, str], float]:
    """Wait until other tests' namespaces are gone (their sessions retry their last
    writes with backoff until then) and the operator has sent nothing for 2 s; the counts
    then."""

    async def still() -> dict[tuple[str, str], float]:
        others = [
            n.metadata.name
            for n in (await client.CoreV1Api(api).list_namespace()).items
            if n.metadata.name.startswith("t-") and n.metadata.name != namespace
        ]
        assert not others, f"other tests' namespaces still there: {others}"
        before = _requests()
        await asyncio.sleep(2)
        after = _requests()
        assert after == before, {k: v - before.get(k, 0) for k, v in after.items()}
        return after

    return await eventually(still, timeout=120)


async def test_reconciles_of_unchanged_sessions_make_no_api_request(
    api: client.ApiClient, operator: object, namespace: str, environments: None
) -> None:
    await create(namespace, session("batch", type="headless", image="busybox", replicas=2))
    await create(namespace, session("nb", type="notebook", environment="notebook"))
    for name in ("batch", "nb"):
        await until(api, namespace, name, running)
    nb = await get(api, namespace, "nb")
    assert nb["status"]["endpoints"], nb["status"]  # its Services and Ingress exist
    before = await _quiet(api, namespace)
    reconciled = _total("kabin_reconcile_duration_seconds_count")

    # Touch each child: every touch is a watch event that reconciles its session.
    core = client.CoreV1Api(api)
    children = [
        p.metadata.name for name in ("batch", "nb") for p in await pods(api, namespace, name)
    ]
    for round_ in range(3):
        for pod in children:
            patch = {"metadata": {"annotations": {"test.kabin.dev/touch": str(round_)}}}
            await core.patch_namespaced_pod(pod, namespace, patch)
        await asyncio.sleep(0.5)

    async def reconciled_all() -> None:
        done = _total("kabin_reconcile_duration_seconds_count") - reconciled
        assert done >= 3 * 2, f"{done} reconciles after touching the pods 3 times"

    await eventually(reconciled_all, timeout=10)
    await asyncio.sleep(1)
    after = _requests()
    sent = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
    assert sent == {}, f"requests by (verb, resource) during unchanged reconciles: {sent}"

    # The cache is not stale for what does change: one more replica is made at once.
    custom = client.CustomObjectsApi(api)
    await custom.patch_namespaced_custom_object(
        "kabin.dev",
        "v1alpha1",
        namespace,
        "sessions",
        "batch",
        {"spec": {"replicas": 3}},
        _content_type="application/merge-patch+json",
    )

    async def three() -> None:
        assert len(await pods(api, namespace, "batch")) == 3

    await eventually(three, timeout=15)

    async def one_create() -> dict[tuple[str, str], float]:
        # The pod can be listed before the operator has read the answer to its create,
        # and counted it.
        sent = {k: v - after.get(k, 0) for k, v in _requests().items() if v != after.get(k, 0)}
        assert sent.get(("create", "pods")) == 1, sent
        return sent

    sent = await eventually(one_create, timeout=5)
    assert not any(verb in ("get", "list") for verb, _ in sent), sent


async def test_a_cache_that_missed_a_watch_event_converges_on_the_next_one(
    api: client.ApiClient, k_namespace: str, operator_process: Any, kubeconfig: Path
) -> None:
    dropping: set[str] = set()
    dropped: list[str] = []

    def drop(event: dict[str, Any]) -> bool:
        """Lose the next change of a Session named in `dropping`."""
        obj = event.get("object") or {}
        name = (obj.get("metadata") or {}).get("name")
        if event.get("type") == "MODIFIED" and obj.get("kind") == "Session" and name in dropping:
            dropping.discard(name)
            dropped.append(name)
            return True
        return False

    url, stop = await filtering_proxy(str(kubeconfig), drop)
    try:
        behind = operator_process(kubeconfig=kubeconfig_without_credentials(url))
        await create(k_namespace, session("s", type="headless", image="busybox"))
        await until(api, k_namespace, "s", running, within=60)

        dropping.add("s")
        custom = client.CustomObjectsApi(api)
        await custom.patch_namespaced_custom_object(
            "kabin.dev", "v1alpha1", k_namespace, "sessions", "s",
            {"spec": {"replicas": 2}}, _content_type="application/merge-patch+json",
        )  # fmt: skip
        await eventually(lambda: _was(dropped, "s"), timeout=10)
        await asyncio.sleep(3)
        assert len(await pods(api, k_namespace, "s")) == 1, "the operator saw the lost event"

        # Any later change of the session brings its whole object, and with it replicas 2.
        await custom.patch_namespaced_custom_object(
            "kabin.dev", "v1alpha1", k_namespace, "sessions", "s",
            {"metadata": {"annotations": {"test.kabin.dev/touch": "1"}}},
            _content_type="application/merge-patch+json",
        )  # fmt: skip

        async def two() -> None:
            assert len(await pods(api, k_namespace, "s")) == 2

        await eventually(two, timeout=15)
        behind.kill()  # before the proxy stops, which would wait for its watches
    finally:
        await stop()


async def _was(dropped: list[str], name: str) -> None:
    assert name in dropped, "the proxy has not dropped the event yet"


async def test_deleted_sessions_leave_nothing_behind_in_queues_caches_or_metrics(
    api: client.ApiClient, operator: object, namespace: str, environments: None
) -> None:
    await _quiet(api, namespace)
    tracked = _total("kabin_workqueue_objects", queue="session")
    counted = _total("kabin_sessions")
    names = [f"m{i:02d}" for i in range(20)]
    for i, name in enumerate(names):
        if i % 4:
            await create(namespace, session(name, type="headless", image="busybox"))
        else:  # interactive, each user with their own default drive
            await create(
                namespace, session(name, type="notebook", environment="notebook", user=f"u{i:02d}")
            )
    for name in names:
        await until(api, namespace, name, running, within=60)
    assert _total("kabin_workqueue_objects", queue="session") == tracked + len(names)
    assert _total("kabin_sessions") == counted + len(names)

    custom = client.CustomObjectsApi(api)
    for name in names:
        await custom.delete_namespaced_custom_object(
            "kabin.dev", "v1alpha1", namespace, "sessions", name
        )

    async def nothing_left() -> None:
        assert _total("kabin_workqueue_objects", queue="session") == tracked
        assert _total("kabin_sessions") == counted
        assert _total("kabin_cache_unconfirmed") == 0
        assert _total("kabin_workqueue_depth") == 0

    await eventually(nothing_left, timeout=60)


async def test_objects_deleted_while_the_watch_was_down_leave_the_cache(
    api: client.ApiClient, k_namespace: str, operator_process: Any, kubeconfig: Path
) -> None:
    """The API server goes away. Meanwhile the session that holds a shared drive is
    deleted with its pod, and another session's pod is deleted. It comes back with its
    watch history gone (410 Expired), as after a restart with compaction: the operator
    lists again and learns of the deletions, so the drive passes to the session that
    waited for it, and the lost pod is made again."""
    outage = Outage()
    url, stop = await filtering_proxy(str(kubeconfig), lambda event: False, outage)
    core = client.CoreV1Api(api)
    try:
        # kopf's own watches (namespaces, CRDs) give up after their backoffs: as long as
        # in production, so that they outlast the outage.
        behind = operator_process(
            kubeconfig=kubeconfig_without_credentials(url),
            KABIN_ERROR_BACKOFFS="[0.5, 1, 2, 5, 10]",
        )
        await apply(k_namespace, drive("shared", access="shared"))
        await create(k_namespace, headless("first", drive="shared"))
        await until(api, k_namespace, "first", running, within=60)
        await create(k_namespace, headless("second", drive="shared"))
        await create(k_namespace, headless("other"))
        await until(api, k_namespace, "other", running, within=60)

        async def second_waits() -> None:
            obj = await get_custom(api, "drives", k_namespace, "shared")
            assert obj["status"]["holder"]["session"] == "first", obj["status"]
            assert "second" in str(obj["status"].get("waiting")), obj["status"]

        await eventually(second_waits, timeout=30)
        (lost,) = await pods(api, k_namespace, "other")

        outage.cut()
        custom = client.CustomObjectsApi(api)
        await custom.delete_namespaced_custom_object(
            "kabin.dev", "v1alpha1", k_namespace, "sessions", "first",
            propagation_policy="Foreground",
        )  # fmt: skip
        await core.delete_namespaced_pod(lost.metadata.name, k_namespace, grace_period_seconds=0)

        async def deleted() -> None:
            assert not await pods(api, k_namespace, "first")
            assert not await pods(api, k_namespace, "other")
            found = await client.CustomObjectsApi(api).list_namespaced_custom_object(
                "kabin.dev", "v1alpha1", k_namespace, "sessions"
            )
            assert "first" not in [s["metadata"]["name"] for s in found["items"]]

        await eventually(deleted, timeout=60)
        await asyncio.sleep(2)  # the operator's watches meet 503s meanwhile
        outage.restore()

        await until(api, k_namespace, "second", running, within=60)

        async def made_again() -> None:
            (again,) = await pods(api, k_namespace, "other")
            assert again.metadata.uid != lost.metadata.uid

        await eventually(made_again, timeout=30)
        assert len(outage.expired) >= 3, "the operator's watches did not resume"
        behind.kill()
    finally:
        await stop()
