"""The work queue: requests for one object are folded into one reconcile (one more if one
arrives while it runs), reconciles of one object never overlap, failures back off
exponentially per object and a success resets them, deadlines wake on time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from kubernetes_asyncio.client.rest import ApiException

from kabin.handlers.workqueue import WorkQueue

KEY = ("ns", "lab")


class Recorder:
    def __init__(self, fail: int = 0, hold: float = 0.0) -> None:
        self.calls: list[tuple[str, str]] = []
        self.times: list[float] = []
        self.fail, self.hold = fail, hold
        self.running = 0
        self.overlapped = False

    async def __call__(self, namespace: str, name: str) -> None:
        self.running += 1
        self.overlapped |= self.running > 1
        self.calls.append((namespace, name))
        self.times.append(asyncio.get_running_loop().time())
        try:
            await asyncio.sleep(self.hold)
            if len(self.calls) <= self.fail:
                raise ApiException(status=500, reason="boom")
        finally:
            self.running -= 1


async def settle(seconds: float = 0.05) -> None:
    await asyncio.sleep(seconds)


async def test_requests_before_a_reconcile_starts_are_folded_into_it() -> None:
    rec = Recorder()
    queue = WorkQueue(rec, resync=3600, what="test")
    for _ in range(10):
        queue.now(KEY)
    await settle()
    assert rec.calls == [KEY]


async def test_a_request_while_it_runs_brings_exactly_one_more_run_and_never_an_overlap() -> None:
    rec = Recorder(hold=0.05)
    queue = WorkQueue(rec, resync=3600, what="test")
    queue.now(KEY)
    await asyncio.sleep(0.01)  # it runs now
    for _ in range(5):
        queue.now(KEY)
    await settle(0.3)
    assert rec.calls == [KEY, KEY]
    assert not rec.overlapped


async def test_at_most_workers_reconciles_run_at_once() -> None:
    running, most = 0, 0

    async def reconcile(namespace: str, name: str) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.02)
        running -= 1

    queue = WorkQueue(reconcile, resync=3600, what="test", workers=3)
    for i in range(12):
        queue.now(("ns", f"s{i}"))
    await settle(0.3)
    assert most == 3


async def test_failures_back_off_exponentially_and_a_success_resets_them() -> None:
    rec = Recorder(fail=4)
    queue = WorkQueue(rec, resync=3600, what="test", backoff=(0.02, 10.0))
    queue.start()
    try:
        queue.now(KEY)
        await settle(1.0)
        assert len(rec.calls) == 5  # four failures, then the success
        gaps = [b - a for a, b in zip(rec.times, rec.times[1:], strict=False)]
        for gap, base in zip(gaps, (0.02, 0.04, 0.08, 0.16), strict=True):
            assert base * 0.9 <= gap <= base * 1.2 + 0.05, gaps
        assert KEY not in queue._failures, "the success reset the streak"
    finally:
        await queue.stop()


def test_the_backoff_is_capped_and_jittered() -> None:
    queue = WorkQueue(Recorder(), resync=3600, what="test", backoff=(1.0, 8.0))
    delays = [queue._failed(KEY, ApiException(status=500)) for _ in range(8)]
    assert all(d is not None for d in delays)
    for delay, base in zip(delays[:3], (1.0, 2.0, 4.0), strict=True):
        assert base <= (delay or 0) <= base * 1.2, delays
    assert all(8.0 <= (d or 0) <= 9.6 for d in delays[3:]), delays


def test_a_namespace_being_deleted_is_not_retried() -> None:
    error = ApiException(status=403, reason="Forbidden")
    error.body = (
        '{"kind":"Status","message":"unable to create new content in namespace ns because '
        'it is being terminated","reason":"Forbidden","details":{"causes":'
        '[{"reason":"NamespaceTerminating"}]},"code":403}'
    )
    queue = WorkQueue(Recorder(), resync=3600, what="test")
    assert queue._failed(KEY, error) is None


async def test_a_deadline_wakes_its_object_on_time_and_a_later_one_supersedes_it() -> None:
    rec = Recorder()
    queue = WorkQueue(rec, resync=3600, what="test")
    queue.start()
    try:
        start = asyncio.get_running_loop().time()
        queue.at(KEY, datetime.now(UTC) + timedelta(seconds=0.1))
        queue.at(("ns", "other"), datetime.now(UTC) + timedelta(seconds=10))
        queue.at(("ns", "other"), datetime.now(UTC) + timedelta(seconds=0.2))  # moved earlier
        await settle(0.4)
        assert rec.calls == [KEY, ("ns", "other")]
        assert 0.09 <= rec.times[0] - start <= 0.2
    finally:
        await queue.stop()


async def test_an_inactive_queue_only_keeps_track_until_it_leads() -> None:
    rec = Recorder()
    queue = WorkQueue(rec, resync=3600, what="test", active=False)
    queue.now(KEY)
    queue.now(("ns", "b"))
    await settle()
    assert rec.calls == []
    queue.activate()
    await settle()
    assert sorted(rec.calls) == [("ns", "b"), KEY]
    queue.forget(KEY)
    assert queue._known == {("ns", "b")}


async def test_batched_requests_fold_into_one_run_at_the_end_of_the_period() -> None:
    rec = Recorder()
    queue = WorkQueue(rec, resync=3600, what="test")
    queue.start()
    loop = asyncio.get_running_loop()
    asked = loop.time()
    for _ in range(5):
        queue.later(KEY, 0.2)
        await asyncio.sleep(0.02)
    await settle(0.4)
    queue.later(KEY, 0.2)  # a new period after the run
    await settle(0.4)
    await queue.stop()
    assert rec.calls == [KEY, KEY]
    assert 0.18 <= rec.times[0] - asked < 0.3


async def test_a_run_now_serves_the_batched_request_and_keeps_the_deadline() -> None:
    rec = Recorder()
    queue = WorkQueue(rec, resync=3600, what="test")
    queue.start()
    queue.at(KEY, datetime.now(UTC) + timedelta(seconds=0.3))  # the session's expiry
    queue.later(KEY, 0.1)
    queue.now(KEY)  # the pod became Ready: decisive, at once
    await settle(0.2)
    assert len(rec.calls) == 1  # the batched request was folded into that run
    await settle(0.25)
    await queue.stop()
    assert len(rec.calls) == 2  # the expiry still wakes it
