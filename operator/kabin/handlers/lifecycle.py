"""Operator start-up and shutdown: reads the settings once, tunes kopf with them,
starts the metrics endpoint and the work queues of sessions and drives, and keeps
them in kopf's memo for every handler (`kabin.handlers.runtime`)."""

import asyncio
import functools
import logging
from typing import Any

import kopf
from prometheus_client import start_http_server

from kabin import k8s
from kabin import settings as settings_module
from kabin.handlers import cache, drives, leader, metrics, queues, runtime, sessions
from kabin.handlers.workqueue import WorkQueue
from kabin.k8s.informer import ApiSource


@kopf.on.startup()
async def configure(
    *, settings: kopf.OperatorSettings, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    """Read kabin's settings, tune kopf with them before any watch starts, and start
    the work queues."""
    ours = settings_module.current()
    # One operator process per cluster for now; peering needs its own CRDs.
    settings.peering.standalone = True
    settings.networking.error_backoffs = ours.error_backoffs
    settings.queueing.error_delays = ours.error_backoffs
    # Events are the user-facing story (`kubectl describe`); kopf's own
    # per-handler chatter would drown it.
    settings.posting.level = logging.WARNING
    logger.info("kabin operator configured: %s", ours.model_dump())
    if ours.metrics_port:
        start_http_server(ours.metrics_port)
        logger.info("Metrics at :%d/metrics", ours.metrics_port)
    state = runtime.Runtime(settings=ours)
    for kind, reconcile in (("session", sessions.reconcile), ("drive", drives.reconcile)):
        queue = WorkQueue(
            functools.partial(reconcile, state),
            resync=ours.resync_interval,
            backoff=(ours.retry_backoff_min, ours.retry_backoff_max),
            what=kind,
            workers=ours.reconcile_workers,
            active=False,  # until the cache has listed every kind (and this replica leads)
        )
        setattr(state, f"{kind}s", queue)
    events = {
        "Session": sessions.session_changed,
        "Drive": drives.drive_changed,
        "PersistentVolumeClaim": drives.pvc_changed,
        **{kind: sessions.child_changed for kind in ("Pod", "Service", "Ingress", "Lease")},
    }
    state.cache = cache.Cache(
        ApiSource(await k8s.shared()),
        ours,
        {kind: functools.partial(handle, state) for kind, handle in events.items()},
        lapsed=lambda namespace, name: state.sessions.now((namespace, name)),
    )
    # Every kind listed before any reconcile runs: a reconcile reads the cache.
    await state.cache.start()
    state.sessions.start()
    state.drives.start()
    state.places = queues.Places(state)
    state.places.start()
    if not ours.leader_election:
        state.drives.activate()
        state.sessions.activate()
    metrics.LEADING.set(0 if ours.leader_election else 1)
    if ours.leader_election:

        def lead() -> None:
            state.drives.activate()
            state.sessions.activate()
            metrics.LEADING.set(1)

        async def follow() -> None:
            metrics.LEADING.set(0)
            await asyncio.gather(state.sessions.deactivate(), state.drives.deactivate())

        state.leader = leader.Leader(
            ours.leader_namespace, "kabin-operator", lead=lead, follow=follow
        )
        state.leader.start()
    runtime.keep(memo, state)


@kopf.on.cleanup()
async def stop(*, memo: kopf.Memo, **_: Any) -> None:
    """Stop the work queues."""
    state = runtime.of(memo)
    if state is not None:
        await state.sessions.stop()
        await state.drives.stop()
        if state.places is not None:
            await state.places.stop()
        if hasattr(state, "cache"):
            await state.cache.stop()
        if state.leader is not None:
            await state.leader.stop()  # gives the Lease up: a standby takes over at once
