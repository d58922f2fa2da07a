"""Leader election on a Lease, with a fake clock and a fake Lease store: the holder
renews, steps down when it cannot renew in time (a hung request included), a standby
takes over only after the Lease's duration without renewal, and a clean stop gives the
Lease up. And what kubernetes_asyncio's own `leaderelection` gets wrong, which is why
kabin keeps its own."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from kabin.handlers import leader as leader_module
from kabin.handlers.leader import DEADLINE, DURATION, Leader


class Leases:
    """One namespace's Leases, with resourceVersion preconditions as the API server has."""

    def __init__(self) -> None:
        self.stored: dict[str, dict[str, Any]] = {}
        self.version = 0
        self.hang = False
        self.fail = False

    async def _io(self) -> None:
        if self.hang:
            await asyncio.Event().wait()
        if self.fail:
            raise ConnectionError("the API server is unreachable")

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        await self._io()
        found = self.stored.get(name)
        return copy.deepcopy(found) if found else None

    async def create(self, lease: dict[str, Any]) -> dict[str, Any] | None:
        await self._io()
        if lease["metadata"]["name"] in self.stored:
            return None
        return self._write(lease)

    async def replace(self, lease: dict[str, Any]) -> dict[str, Any] | None:
        await self._io()
        there = self.stored.get(lease["metadata"]["name"])
        if there is None or there["metadata"]["resourceVersion"] != lease["metadata"].get(
            "resourceVersion"
        ):
            return None  # 409 Conflict
        return self._write(lease)

    def _write(self, lease: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        written = copy.deepcopy(lease)
        written["metadata"]["resourceVersion"] = str(self.version)
        self.stored[written["metadata"]["name"]] = written
        return copy.deepcopy(written)

    def holder(self) -> str | None:
        holder: str | None = self.stored["kabin-operator"]["spec"]["holderIdentity"]
        return holder


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Replica:
    """A replica's Leader and what it was told."""

    def __init__(self, me: str, leases: Leases, clock: Clock) -> None:
        self.calls: list[str] = []

        async def follow() -> None:
            self.calls.append("follow")

        self.leader = Leader(
            "kabin-system",
            "kabin-operator",
            lead=lambda: self.calls.append("lead"),
            follow=follow,
            me=me,
            leases=leases,
            clock=clock,
        )


@pytest.fixture
def world() -> tuple[Leases, Clock]:
    return Leases(), Clock()


async def leading(world: tuple[Leases, Clock]) -> Replica:
    """Replica a after its first step: it holds the Lease."""
    a = Replica("a", *world)
    await a.leader.step()
    return a


async def two(world: tuple[Leases, Clock]) -> tuple[Replica, Replica]:
    """Replicas a and b, each after its first step: a holds the Lease, b has seen it."""
    a, b = await leading(world), Replica("b", *world)
    await b.leader.step()
    return a, b


async def test_the_first_replica_takes_the_lease_and_keeps_renewing_it(
    world: tuple[Leases, Clock],
) -> None:
    leases, clock = world
    a = await leading(world)
    assert a.calls == ["lead"] and leases.holder() == "a"
    before = leases.version
    for _ in range(5):
        clock.now += 2
        await a.leader.step()
    assert leases.version == before + 5 and a.leader.leading
    assert a.calls == ["lead"]


async def test_a_standby_waits_out_the_lease_duration_before_taking_over(
    world: tuple[Leases, Clock],
) -> None:
    leases, clock = world
    _, b = await two(world)
    assert b.calls == []
    clock.now += DURATION - 1  # a stopped renewing (it crashed), but not for long enough
    await b.leader.step()
    assert b.calls == [] and leases.holder() == "a"
    clock.now += 1
    await b.leader.step()
    assert b.calls == ["lead"] and leases.holder() == "b"
    assert leases.stored["kabin-operator"]["spec"]["leaseTransitions"] == 1


async def test_a_standby_does_not_take_a_lease_that_is_being_renewed(
    world: tuple[Leases, Clock],
) -> None:
    leases, clock = world
    a, b = await two(world)
    for _ in range(10):
        clock.now += 2
        await a.leader.step()
        await b.leader.step()
    assert b.calls == [] and leases.holder() == "a"


async def test_the_holder_steps_down_when_another_replica_took_the_lease(
    world: tuple[Leases, Clock],
) -> None:
    leases, clock = world
    a, b = await two(world)
    clock.now += DURATION  # a was paused (a long GC, a frozen VM) past its Lease
    await b.leader.step()
    assert leases.holder() == "b"
    await a.leader.step()  # its renewal meets a conflict
    assert a.calls == ["lead", "follow"] and not a.leader.leading


async def test_the_holder_steps_down_before_its_lease_can_pass_when_renewals_fail(
    world: tuple[Leases, Clock],
) -> None:
    leases, clock = world
    a = await leading(world)
    leases.fail = True
    clock.now += DEADLINE - 1
    await a.leader.step()
    assert a.leader.leading
    clock.now += 1
    await a.leader.step()
    assert a.calls == ["lead", "follow"]
    assert DEADLINE < DURATION, "it stops before a standby may start"


async def test_a_renewal_that_hangs_is_abandoned_at_the_deadline(
    world: tuple[Leases, Clock], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(leader_module, "DEADLINE", 0.2)
    leases, _ = world
    a = Replica("a", leases, Clock())
    a.leader._clock = asyncio.get_running_loop().time
    await a.leader.step()
    leases.hang = True
    await asyncio.wait_for(a.leader.step(), 2)
    assert a.calls == ["lead", "follow"] and not a.leader.leading


async def test_a_clean_stop_gives_the_lease_up_for_an_immediate_takeover(
    world: tuple[Leases, Clock],
) -> None:
    leases, _ = world
    a, b = await two(world)
    await a.leader.stop()
    assert leases.holder() is None and a.calls == ["lead", "follow"]
    await b.leader.step()  # at once, not DURATION later
    assert b.calls == ["lead"]


async def test_kubernetes_asyncio_leaderelection_leads_on_while_its_renewal_hangs() -> None:
    """Why kabin keeps its own: with a renewal that never answers, kubernetes_asyncio's
    LeaderElection is still leading (its onstopped_leading not called) after its Lease
    expired, when a standby may hold it."""
    from kubernetes_asyncio.leaderelection import electionconfig, leaderelection
    from kubernetes_asyncio.leaderelection.leaderelectionrecord import LeaderElectionRecord

    class HangingLock:
        name, namespace, identity = "lock", "ns", "a"

        def __init__(self) -> None:
            self.record: LeaderElectionRecord | None = None
            self.hang = False

        async def get(self, name: str, namespace: str) -> tuple[bool, Any]:
            if self.hang:
                await asyncio.Event().wait()
            return True, self.record

        async def create(self, **_: Any) -> bool:
            return True

        async def update(self, name: str, namespace: str, record: Any) -> bool:
            self.record = record
            return True

    lock = HangingLock()
    stopped = asyncio.Event()

    async def lead() -> None:
        lock.hang = True  # the API server stops answering once it leads
        await asyncio.Event().wait()

    async def stop() -> None:
        stopped.set()

    config = electionconfig.Config(lock, 2, 1.5, 1, lead, stop)  # type: ignore[arg-type]
    election = asyncio.create_task(leaderelection.LeaderElection(config).run())
    try:
        await asyncio.sleep(3.0)  # past the 2 s Lease
        assert not stopped.is_set(), "it stepped down: kabin could use it"
    finally:
        election.cancel()
        await asyncio.gather(election, return_exceptions=True)
