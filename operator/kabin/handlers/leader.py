"""One operator replica reconciles at a time: leader election on a coordination.k8s.io
Lease, as client-go's leaderelection does.

Every replica watches, keeps its cache current and serves the admission webhooks; only
the one holding the Lease runs reconciles (its work queues are active). The holder
renews the Lease every `RENEW` seconds with a resourceVersion precondition, so two
replicas can never both hold it. A replica that cannot renew for `DEADLINE` seconds
steps down (stops its reconciles) before the Lease, `DURATION` seconds long, can pass to
another. A standby takes the Lease once it has seen the same holder and version for
`DURATION` seconds by its own clock (no clocks are compared), then reconciles everything
from its cache. A holder that stops cleanly gives the Lease up at once.

A renewal that does not answer is abandoned at the deadline: a holder cut off from the
API server steps down on time even when its request hangs.

kopf's own peering is not used: with equal priorities it pauses every replica, and a
paused replica stops watching, so its indexes would go stale (docs/operations.md).
Nor is kubernetes_asyncio's `leaderelection`: it awaits each renewal without a deadline,
so a holder whose renewal hangs leads on after its Lease expired and a standby took it
(two leaders), it uses the wall clock, and it never gives the Lease up on a clean stop
(`tests/unit/test_leader.py` shows each).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from kabin import k8s
from kabin.k8s import objects

log = logging.getLogger("kabin.leader")

DURATION = 8.0  # seconds a Lease lasts without renewal
RENEW = 2.0  # seconds between renewals (and a standby's looks)
DEADLINE = 6.0  # seconds without a renewal before a holder steps down


def identity() -> str:
    """This replica's name in the Lease: the pod's name in a cluster, and a random part
    so that a restarted replica is a new holder."""
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}-{secrets.token_hex(3)}"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


Lease = dict[str, Any]


class Leases(Protocol):
    """Where the Lease is read and written: the API server, or a test's."""

    async def get(self, namespace: str, name: str) -> Lease | None: ...

    async def create(self, lease: Lease) -> Lease | None:
        """The Lease as created, or None when it exists."""
        ...

    async def replace(self, lease: Lease) -> Lease | None:
        """The Lease as written over its resourceVersion, or None on a conflict."""
        ...


class ApiLeases:
    """Leases in the API server."""

    async def get(self, namespace: str, name: str) -> Lease | None:
        return await objects.get_lease(await k8s.shared(), namespace, name)

    async def create(self, lease: Lease) -> Lease | None:
        return await objects.create_lease(await k8s.shared(), lease)

    async def replace(self, lease: Lease) -> Lease | None:
        return await objects.replace_lease(await k8s.shared(), lease)


class Leader:
    """Holds (or waits for) the Lease `name` in `namespace`; calls `lead` when it gets it
    and `follow` when it loses it."""

    def __init__(
        self,
        namespace: str,
        name: str,
        *,
        lead: Callable[[], None],
        follow: Callable[[], Any],
        me: str | None = None,
        leases: Leases | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.namespace, self.name, self.me = namespace, name, me or identity()
        self._lead, self._follow = lead, follow
        self._leases: Leases = leases or ApiLeases()
        self._clock = clock
        self._lease: dict[str, Any] | None = None  # the Lease as last written by us
        self._renewed = 0.0  # monotonic time of our last good renewal
        self._seen: tuple[str | None, str | None, float] = (None, None, 0.0)
        self._task: asyncio.Task[None] | None = None

    @property
    def leading(self) -> bool:
        return self._lease is not None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run(), name="leader election")

    async def stop(self) -> None:
        """Stop; a holder gives the Lease up so that a standby takes it at once."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._lease is not None:
            lease = self._released()
            await self._step_down("stopping")
            try:
                await self._leases.replace(lease)
            except Exception as e:  # the Lease then expires on its own
                log.info("Could not give the Lease up: %s", e)

    async def run(self) -> None:
        while True:
            await self.step()
            await asyncio.sleep(RENEW)

    async def step(self) -> None:
        """One look (a standby) or one renewal (the holder), and a step down if the
        holder has not renewed for DEADLINE seconds."""
        try:
            if self._lease is None:
                await self._try()
            else:
                left = DEADLINE - (self._clock() - self._renewed)
                await asyncio.wait_for(self._renew(), max(left, 0.0))
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            log.info("Leader election: the renewal did not answer in time")
        except Exception as e:
            log.info("Leader election: %s", e)
        if self._lease is not None and self._clock() - self._renewed >= DEADLINE:
            await self._step_down(f"no renewal for {DEADLINE:g} s")

    def _spec(self, transitions: int, acquired: str) -> dict[str, Any]:
        return {
            "holderIdentity": self.me,
            "leaseDurationSeconds": int(DURATION),
            "acquireTime": acquired,
            "renewTime": _now(),
            "leaseTransitions": transitions,
        }

    def _released(self) -> dict[str, Any]:
        assert self._lease is not None
        spec = {**self._lease["spec"], "holderIdentity": None, "renewTime": _now()}
        return {**self._lease, "spec": spec}

    async def _try(self) -> None:
        """A standby's look: take the Lease if nobody holds it, or its holder has not
        renewed it for DURATION seconds."""
        lease = await self._leases.get(self.namespace, self.name)
        now = self._clock()
        if lease is None:
            made = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": self._spec(0, _now()),
            }
            self._took(await self._leases.create(made), now)
            return
        spec, version = lease.get("spec") or {}, lease["metadata"]["resourceVersion"]
        holder = spec.get("holderIdentity")
        if (holder, version) != self._seen[:2]:
            self._seen = (holder, version, now)
        if holder and now - self._seen[2] < DURATION:
            return  # held, and renewed within the last DURATION seconds as we saw it
        taken = {**lease, "spec": self._spec(int(spec.get("leaseTransitions") or 0) + 1, _now())}
        self._took(await self._leases.replace(taken), now)

    def _took(self, lease: dict[str, Any] | None, at: float) -> None:
        if lease is None:
            return  # another replica was faster
        self._lease, self._renewed = lease, at
        log.info("This replica (%s) now leads: it reconciles", self.me)
        self._lead()

    async def _renew(self) -> None:
        assert self._lease is not None
        started = self._clock()
        lease = {**self._lease, "spec": {**self._lease["spec"], "renewTime": _now()}}
        written = await self._leases.replace(lease)
        if written is None:
            await self._step_down("another replica took the Lease")
            return
        self._lease, self._renewed = written, started

    async def _step_down(self, why: str) -> None:
        if self._lease is None:
            return
        self._lease = None
        log.warning("This replica (%s) stops reconciling: %s", self.me, why)
        await self._follow()
