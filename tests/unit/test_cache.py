"""The operator's cache over its informers: what kabin wrote shows at once, expected
children are cleared when the watch shows them, and an expectation that the watch never
confirms lapses with a wake-up of its session."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kabin.handlers import cache as cache_module
from kabin.handlers.cache import Cache, pod
from kabin.settings import OperatorSettings
from tests.unit.test_informer import Script, ev

LABELS = {"app.kubernetes.io/managed-by": "kabin", "kabin.dev/session": "lab"}


def a_pod(name: str, version: int, **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "resourceVersion": str(version),
            "labels": {**LABELS, "kabin.dev/drive": "home"},
            "managedFields": [{"manager": "kubectl"}],
            **meta,
        },
        "spec": {"nodeName": "n1", "containers": [{"name": "main", "image": "x" * 500}]},
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.1",
            "containerStatuses": [{"name": "main", "ready": True, "imageID": "sha256:abc"}],
        },
    }


@pytest.fixture
def cache() -> Cache:
    return Cache(Script(), OperatorSettings())


def names(bodies: list[dict[str, Any]]) -> list[str]:
    return sorted(b["metadata"]["name"] for b in bodies)


def test_a_pod_is_kept_without_what_kabin_never_reads() -> None:
    kept = pod(a_pod("p", 1))
    assert kept["spec"] == {"nodeName": "n1"}
    assert "managedFields" not in kept["metadata"]
    assert kept["status"]["containerStatuses"] == [{"name": "main", "ready": True}]
    assert "podIP" not in kept["status"]
    assert kept["kind"] == "Pod" and kept["apiVersion"] == "v1"


async def test_a_created_pod_is_seen_before_the_watch_brings_it_and_cleared_when_it_does(
    cache: Cache,
) -> None:
    pods = cache.informers["Pod"]
    pods.replace([], "1")
    cache.made("Pod", "ns", "lab", [a_pod("lab-1", 2)])
    assert names(cache.children("Pod", "ns", "lab")) == ["lab-1"]
    assert cache._expected
    pods.apply(ev("ADDED", a_pod("lab-1", 2)))
    assert not cache._expected, "the watch confirmed it"
    assert names(cache.children("Pod", "ns", "lab")) == ["lab-1"]
    assert names(cache.drive_pods("ns", "home")) == ["lab-1"]


async def test_a_pod_made_and_deleted_before_any_read_is_forgotten(cache: Cache) -> None:
    pods = cache.informers["Pod"]
    pods.replace([], "1")
    cache.made("Pod", "ns", "lab", [a_pod("lab-1", 2)])
    pods.apply(ev("ADDED", a_pod("lab-1", 2)))
    pods.apply(ev("DELETED", a_pod("lab-1", 3)))
    assert cache.children("Pod", "ns", "lab") == []
    assert not cache._expected


async def test_a_deleted_pod_shows_as_deleting_until_the_watch_says_so(cache: Cache) -> None:
    pods = cache.informers["Pod"]
    pods.replace([a_pod("lab-1", 2)], "2")
    cache.deleted("Pod", "ns", "lab", cache.children("Pod", "ns", "lab"))
    (seen,) = cache.children("Pod", "ns", "lab")
    assert seen["metadata"]["deletionTimestamp"]
    stamped = a_pod("lab-1", 3, deletionTimestamp="2026-12-05T00:00:00Z")
    pods.apply(ev("MODIFIED", stamped))
    assert not cache._expected
    pods.apply(ev("DELETED", stamped))
    assert cache.children("Pod", "ns", "lab") == []


async def test_an_expectation_the_watch_never_confirms_lapses_and_wakes_its_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cache_module, "EXPECT_FOR", 0.05)
    woken: list[tuple[str, str]] = []
    cache = Cache(Script(), OperatorSettings(), lapsed=lambda ns, name: woken.append((ns, name)))
    cache.informers["Pod"].replace([], "1")
    cache.made("Pod", "ns", "lab", [a_pod("lab-1", 2)])
    await asyncio.sleep(0.2)
    assert woken == [("ns", "lab")]
    assert cache.children("Pod", "ns", "lab") == []
    assert not cache._expected


async def test_a_status_written_shows_until_the_watch_brings_it_or_something_newer(
    cache: Cache,
) -> None:
    sessions = cache.informers["Session"]
    base = {"metadata": {"name": "lab", "namespace": "ns", "resourceVersion": "5"}, "spec": {}}
    sessions.replace([base], "5")
    written = {
        **base,
        "metadata": {**base["metadata"], "resourceVersion": "6"},
        "status": {"phase": "Running"},
    }
    cache.wrote("Session", "ns", "lab", "5", written)
    assert cache.session("ns", "lab")["status"] == {"phase": "Running"}  # type: ignore[index]
    sessions.apply(ev("MODIFIED", {**written, "status": {"phase": "Running"}}))
    assert cache.session("ns", "lab")["metadata"]["resourceVersion"] == "6"  # type: ignore[index]
    assert not cache._written


async def test_sessions_are_found_by_the_drive_they_use(cache: Cache) -> None:
    def session(name: str, namespace: str, drive: str) -> dict[str, Any]:
        meta = {"name": name, "namespace": namespace, "resourceVersion": "1"}
        spec = {"type": "headless", "image": "busybox", "user": "alice", "drive": drive}
        return {"metadata": meta, "spec": spec}

    cache.informers["Session"].replace(
        [session("a", "ns", "data"), session("b", "ns", "data"), session("c", "other", "data")],
        "1",
    )
    assert names(cache.claimants("ns", "data")) == ["a", "b"]
    assert names(cache.claimants("other", "data")) == ["c"]
