"""The informer, driven by synthetic LIST answers and watch streams: a relist replaces the
store and reports what was deleted meanwhile, older events cannot undo newer ones, a
410 brings a relist and a broken stream a rewatch from the last version seen."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from kabin.k8s.informer import Informer, Kind, Store, intern

POD = Kind("Pod", "/api/v1/pods", "app.kubernetes.io/managed-by=kabin")


def obj(name: str, version: int, namespace: str = "ns", **labels: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "resourceVersion": str(version),
            "labels": labels,
        }
    }


def ev(type: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"type": type, "object": body}


def gone410() -> dict[str, Any]:
    return {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}}


class Script:
    """A Source that answers LISTs and WATCHes from queues a test fills."""

    def __init__(self) -> None:
        self.lists: asyncio.Queue[tuple[list[dict[str, Any]], str]] = asyncio.Queue()
        self.streams: asyncio.Queue[list[dict[str, Any]] | Exception] = asyncio.Queue()
        self.watched_from: list[str] = []
        self.listed = 0

    async def list(self, kind: Kind, each: Any) -> tuple[list[dict[str, Any]], str]:
        self.listed += 1
        items, version = await self.lists.get()
        return [kept for item in items if (kept := each(item))], version

    async def watch(self, kind: Kind, version: str) -> AsyncIterator[dict[str, Any]]:
        self.watched_from.append(version)
        stream = await self.streams.get()
        if isinstance(stream, Exception):
            raise stream
        for event in stream:
            yield event


def recorder() -> tuple[list[tuple[str, str]], Any]:
    seen: list[tuple[str, str]] = []
    return seen, lambda kind, body: seen.append((kind, body["metadata"]["name"]))


def test_a_relist_replaces_the_store_and_reports_the_deletions_it_finds() -> None:
    seen, handler = recorder()
    informer = Informer(POD, Script(), handler=handler)
    informer.replace([obj("a", 1), obj("b", 2), obj("c", 3)], "3")
    assert sorted(seen) == [("ADDED", "a"), ("ADDED", "b"), ("ADDED", "c")]
    seen.clear()

    # b was deleted and c changed while the watch was down; d is new.
    informer.replace([obj("a", 1), obj("c", 7), obj("d", 8)], "9")
    assert sorted(seen) == [("ADDED", "d"), ("DELETED", "b"), ("MODIFIED", "c")]
    assert sorted(n for _, n in informer.store.objects) == ["a", "c", "d"]
    assert informer.version == "9"
    assert informer.relists == 1


def test_older_events_do_not_undo_newer_ones() -> None:
    seen, handler = recorder()
    informer = Informer(POD, Script(), handler=handler)
    informer.replace([], "1")
    informer.apply(ev("ADDED", obj("a", 5)))
    informer.apply(ev("MODIFIED", obj("a", 4)))  # delivered late
    informer.apply(ev("DELETED", obj("a", 3)))  # older still
    assert informer.store.get(("ns", "a")) is not None
    assert informer.store.get(("ns", "a"))["metadata"]["resourceVersion"] == "5"  # type: ignore[index]
    informer.apply(ev("DELETED", obj("a", 6)))
    assert informer.store.get(("ns", "a")) is None
    assert seen == [("ADDED", "a"), ("DELETED", "a")]
    assert informer.version == "6"


def test_bookmarks_move_the_version_and_report_nothing() -> None:
    seen, handler = recorder()
    informer = Informer(POD, Script(), handler=handler)
    informer.replace([], "1")
    informer.apply({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "40"}}})
    assert informer.version == "40"
    assert seen == []


def test_an_object_that_stops_matching_is_reported_deleted() -> None:
    seen, handler = recorder()
    informer = Informer(POD, Script(), handler=handler, keep=lambda b: b["metadata"]["labels"])
    informer.replace([obj("a", 1, x="1")], "1")
    informer.apply(ev("MODIFIED", obj("a", 2)))  # its labels were removed
    assert seen == [("ADDED", "a"), ("DELETED", "a")]
    assert len(informer.store) == 0


def test_indexes_follow_changes_and_deletions() -> None:
    store = Store({"session": lambda b: [b["metadata"]["labels"]["s"]]})
    store.put(obj("p1", 1, s="lab"))
    store.put(obj("p2", 1, s="lab"))
    assert sorted(b["metadata"]["name"] for b in store.by("session", "lab")) == ["p1", "p2"]
    store.put(obj("p1", 2, s="other"))  # relabelled
    assert [b["metadata"]["name"] for b in store.by("session", "lab")] == ["p2"]
    store.remove(("ns", "p2"))
    assert store.by("session", "lab") == []
    assert store._indexes["session"].keys() == {"other"}  # no empty groups kept


def test_short_strings_are_interned_and_long_ones_kept() -> None:
    a = intern({"metadata": {"labels": {"k" + "ey": "va" + "lue"}}, "m": "x" * 100})
    b = intern({"metadata": {"labels": {"ke" + "y": "val" + "ue"}}, "m": "x" * 100})
    assert next(iter(a["metadata"]["labels"])) is next(iter(b["metadata"]["labels"]))
    assert a["metadata"]["labels"]["key"] is b["metadata"]["labels"]["key"]
    assert a["m"] == b["m"]


async def test_a_410_relists_and_reports_what_was_deleted_while_the_watch_was_down() -> None:
    seen, handler = recorder()
    script = Script()
    informer = Informer(POD, script, handler=handler)
    await script.lists.put(([obj("a", 1), obj("b", 2)], "2"))
    await script.streams.put([ev("ADDED", obj("c", 3)), gone410()])
    await script.lists.put(([obj("a", 1), obj("c", 3)], "10"))  # b went during the gap
    informer.start()
    try:
        await asyncio.wait_for(informer.synced.wait(), 1)
        for _ in range(100):
            if ("DELETED", "b") in seen:
                break
            await asyncio.sleep(0.01)
        assert sorted(seen) == [("ADDED", "a"), ("ADDED", "b"), ("ADDED", "c"), ("DELETED", "b")]
        assert script.listed == 2
        assert script.watched_from[:2] == ["2", "10"]  # from the first list, then the second
    finally:
        await informer.stop()


async def test_a_broken_stream_watches_again_from_the_last_version_seen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("kabin.k8s.informer.BACKOFF", (0.001, 0.01))
    _, handler = recorder()
    script = Script()
    informer = Informer(POD, script, handler=handler)
    await script.lists.put(([obj("a", 1)], "1"))
    await script.streams.put([ev("MODIFIED", obj("a", 5))])  # then the stream ends
    await script.streams.put(ConnectionResetError("broken"))
    await script.streams.put(
        [{"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}}]
    )
    informer.start()
    try:
        for _ in range(200):
            if len(script.watched_from) >= 4:
                break
            await asyncio.sleep(0.01)
        assert script.watched_from[:4] == ["1", "5", "5", "9"]
        assert script.listed == 1, "a broken stream is watched again, not listed again"
    finally:
        await informer.stop()


async def test_a_failing_handler_does_not_stop_the_watch() -> None:
    def handler(kind: str, body: dict[str, Any]) -> None:
        raise RuntimeError("a bug")

    informer = Informer(POD, Script(), handler=handler)
    informer.replace([obj("a", 1)], "1")
    informer.apply(ev("ADDED", obj("b", 2)))
    assert len(informer.store) == 2
