"""The Session reconciler: one level-triggered path for create, update and resume.

Any event of a Session or of one of its pods, a deadline, or the periodic
resync leads to the same `reconcile`: read everything fresh, compute the
desired children and the status in `kabin.logic`, make the cluster match
(creates that may repeat, deletes that may find nothing), and write the status
only when it differs. Reconciles of one session never overlap (the work queue in `wakeups`).
"""

from __future__ import annotations

import contextlib
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import kopf
from prometheus_client import start_http_server

from kabin import k8s
from kabin import settings as settings_module
from kabin.api import names
from kabin.api.drive import DriveStatus
from kabin.api.meta import API_VERSION, GROUP
from kabin.api.names import DISPLAY_NAME_ANNOTATION, RENEW_ANNOTATION
from kabin.api.session import SessionSpec, SessionStatus
from kabin.handlers import drives, metrics
from kabin.handlers.wakeups import Key, Wakeups
from kabin.k8s import objects
from kabin.logic import activity, agent, network, resolve, status
from kabin.logic import drives as logic_drives
from kabin.logic import pod as pod_builder
from kabin.logic.drives import claim_name
from kabin.settings import OperatorSettings, reconciles

_wakeups: Wakeups | None = None


@kopf.on.startup()
async def start(*, logger: kopf.Logger, **_: Any) -> None:
    """Start the work queue and, if asked, the metrics endpoint."""
    global _wakeups
    settings = settings_module.load()
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
        logger.info("Metrics at :%d/metrics", settings.metrics_port)
    _wakeups = Wakeups(
        reconcile,
        resync=settings.resync_interval,
        retry=settings.error_backoffs[0],
        what="session",
        workers=settings.reconcile_workers,
    )
    _wakeups.start()
    drives.sessions_queue = _wakeups


@kopf.on.cleanup()
async def stop(**_: Any) -> None:
    """Stop the work queue."""
    if _wakeups is not None:
        await _wakeups.stop()


@kopf.on.event(GROUP, "sessions", when=lambda namespace, **_: reconciles(namespace))
async def session_changed(
    *, type: str, name: str, namespace: str | None, spec: kopf.Spec, **_: Any
) -> None:
    """A Session was created, changed or seen at start-up: queue a reconcile.

    Async (though it awaits nothing) so that kopf runs it in the event loop, not a thread.
    """
    if namespace is None or _wakeups is None:
        return
    if type == "DELETED":
        _forget((namespace, name))
        with contextlib.suppress(ValueError):
            drive = logic_drives.drive_of(SessionSpec.model_validate(dict(spec)))
            if drive and drives.queue is not None:
                drives.queue.now((namespace, drive))
        return
    _wakeups.now((namespace, name))


@kopf.on.event(
    "pods",
    labels={"app.kubernetes.io/managed-by": names.MANAGED_BY},
    when=lambda namespace, **_: reconciles(namespace),
)
@kopf.on.event(
    "coordination.k8s.io",
    "leases",
    labels={"app.kubernetes.io/managed-by": names.MANAGED_BY},
    when=lambda namespace, **_: reconciles(namespace),
)
async def child_changed(*, labels: kopf.Labels, namespace: str | None, **_: Any) -> None:
    """One of a Session's pods changed, or its agent renewed its activity Lease: its
    status (and its expiry) may have moved."""
    session = labels.get(names.SESSION_LABEL)
    if session and namespace and _wakeups is not None:
        _wakeups.now((namespace, session))
    drive = labels.get(names.DRIVE_LABEL)
    if drive and namespace and drives.queue is not None:
        # A pod of a deleted session still holds its drive until it is gone.
        drives.queue.now((namespace, drive))


def _forget(key: Key) -> None:
    metrics.observe_phase(key, None, "")
    if _wakeups is not None:
        _wakeups.forget(key)


def _replica(pod: dict[str, Any]) -> int:
    return int(pod["metadata"]["labels"].get(names.REPLICA_LABEL, "0"))


async def reconcile(namespace: str, name: str) -> None:
    """Make one Session's children and status match its spec. Safe to repeat; the work
    queue never runs two for one session at once."""
    started = time.monotonic()
    session_type = await _reconcile(namespace, name)
    if session_type is not None:
        metrics.RECONCILE.labels(session_type).observe(time.monotonic() - started)


async def _reconcile(namespace: str, name: str) -> str | None:
    settings = settings_module.current()
    api = await k8s.shared()
    raw = await objects.get_session(api, namespace, name)
    if raw is None:
        _forget((namespace, name))
        return None
    meta = raw["metadata"]
    spec = SessionSpec.model_validate(raw["spec"])
    previous = SessionStatus.model_validate(raw.get("status") or {})
    env = await k8s.get_environment(api, spec.environment) if spec.environment else None
    if spec.environment and env is None and not previous.phase:
        await objects.post_event(
            api,
            raw,
            "Warning",
            "EnvironmentNotFound",
            f'EnvironmentConfig "{spec.environment}" does not exist',
        )
        return spec.type
    owner = resolve.Owner(name, namespace, meta["uid"], spec.user or "")
    resolved = resolve.resolve(spec, env.spec if env else None)
    selector = resolve.selector(owner)
    deleting = bool(meta.get("deletionTimestamp"))
    drive = await _drive(api, namespace, name, spec, settings)
    interactive = spec.type != "headless"

    async def observe(
        previous: SessionStatus,
    ) -> tuple[status.Outcome, list[dict[str, Any]], bool]:
        lease = await objects.get_lease(api, namespace, name) if interactive else None
        pods = await objects.list_owned(api, "Pod", namespace, selector)
        services = (
            await objects.list_owned(api, "Service", namespace, selector) if interactive else []
        )
        observed = status.Observed(
            spec=spec,
            owner=owner,
            resolved=resolved,
            generation=meta.get("generation", 0),
            previous=previous,
            pods=pods,
            services={s["metadata"]["name"]: s for s in services},
            deleting=deleting,
            renew=(meta.get("annotations") or {}).get(RENEW_ANNOTATION),
            drive=drive,
            activity=activity.from_lease(lease),
        )
        outcome = status.compute(
            observed,
            now=datetime.now(UTC),
            settings=status.Settings(
                host=settings.ingress_host,
                ssh_host=settings.ssh_host or settings.ingress_host,
                image_pull_grace=settings.image_pull_grace,
                expiring_soon=settings.expiring_soon,
            ),
        )
        return outcome, pods, interactive and lease is None

    outcome, pods, no_lease = await observe(previous)
    if not deleting and await _converge(
        api, raw, spec, owner, resolved, outcome, settings, drive, pods, no_lease
    ):
        # What we just did is part of the status; what we decided (a terminal phase) stays.
        outcome, _, _ = await observe(outcome.status)

    new = outcome.status.model_dump(by_alias=True, exclude_none=True, mode="json")
    old = raw.get("status") or {}
    if new != old:
        await objects.patch_session_status(
            api, namespace, name, {**{k: None for k in old if k not in new}, **new}
        )
    for event in status.transitions(previous, outcome.status):
        await objects.post_event(api, raw, event.type, event.reason, event.message)
    _record(raw, spec, previous, outcome.status)
    if _wakeups is not None:
        _wakeups.at((namespace, name), outcome.wake_at)
    if drive is not None and new != old and drives.queue is not None:
        # The session moved (waiting, running, finished): the drive decides who holds it
        # next. Pod events of a deleted session reach the drive directly.
        drives.queue.now((namespace, drive.name))
    return spec.type


async def _drive(
    api: Any, namespace: str, name: str, spec: SessionSpec, settings: OperatorSettings
) -> status.DriveView | None:
    """Where the session stands with its drive; makes the user's default drive on demand."""
    drive_name = logic_drives.drive_of(spec)
    if drive_name is None:
        return None
    raw = await objects.get_custom(api, "drives", namespace, drive_name)
    if raw is None and not spec.drive and spec.user:
        await objects.create_custom(
            api,
            "drives",
            {
                "apiVersion": API_VERSION,
                "kind": "Drive",
                "metadata": {
                    "name": drive_name,
                    "namespace": namespace,
                    "annotations": {DISPLAY_NAME_ANNOTATION: f"{spec.user}'s default drive"},
                },
                "spec": {
                    "size": settings.default_drive_size,
                    "access": "private",
                    "owner": spec.user,
                },
            },
        )
        raw = await objects.get_custom(api, "drives", namespace, drive_name)
    if raw is None:
        return status.DriveView(
            drive_name, False, "DriveNotFound", f'Drive "{drive_name}" does not exist'
        )
    held = DriveStatus.model_validate(raw.get("status") or {})
    if held.holder is not None and held.holder.session == name:
        return status.DriveView(drive_name, True)
    if held.holder is not None:
        return status.DriveView(
            drive_name,
            False,
            "DriveInUse",
            f'Drive "{drive_name}" is held by session "{held.holder.session}"',
        )
    return status.DriveView(
        drive_name, False, "Waiting", f'waiting to be granted Drive "{drive_name}"'
    )


async def _converge(
    api: Any,
    raw: dict[str, Any],
    spec: SessionSpec,
    owner: resolve.Owner,
    resolved: resolve.Resolved,
    outcome: status.Outcome,
    settings: OperatorSettings,
    drive: status.DriveView | None,
    pods: list[dict[str, Any]],
    no_lease: bool = False,
) -> bool:
    """Create and delete children (given the pods just observed) so they match the spec;
    True if anything changed."""
    phase = outcome.status.phase
    existing = {_replica(p): p for p in pods}
    changed = False
    if phase == "Expired" or (phase == "Failed" and spec.type != "headless"):
        # Free the resources; finished headless pods stay for their logs.
        for pod in pods:
            if not pod["metadata"].get("deletionTimestamp"):
                changed |= await objects.delete_pod(api, owner.namespace, pod["metadata"]["name"])
        return changed
    if phase in status.TERMINAL:
        return False
    if drive is not None and not drive.granted and not existing:
        return False  # its pods start once the drive is granted to it
    mount = (drive.name, claim_name(drive.name)) if drive is not None else None
    sidecar = agent.AgentConfig(
        image=settings.agent_image, renew_interval=settings.activity_interval
    )

    created = []
    missing = [r for r in range(1, spec.replicas + 1) if r not in existing]
    if missing or no_lease:
        # The agents' ServiceAccount, Role (naming every pod) and Lease come first:
        # admission refuses a pod whose ServiceAccount does not exist. A Lease deleted
        # by someone, or missing for pods made before kabin had agents, is made again.
        for obj in agent.build_agent_access(owner, spec):
            await objects.apply(api, obj)
        if spec.type != "headless" and agent.jupyter_token_secret(owner, resolved):
            # Made once, with a random token; a repeat finds it and keeps it.
            token = agent.build_jupyter_token(owner, spec, secrets.token_urlsafe(32))
            await objects.create_secret(api, token)
    for replica in missing:
        pod = pod_builder.build_pod(
            owner=owner,
            spec=spec,
            resolved=resolved,
            replica=replica,
            replicas=spec.replicas,
            drive=mount,
            agent=sidecar,
        )
        if await objects.create_pod(api, pod):
            created.append(replica)
    removed = []
    for replica in sorted(existing, reverse=True):  # scale down from the highest
        pod = existing[replica]
        if (
            replica > spec.replicas
            and not pod["metadata"].get("deletionTimestamp")
            and await objects.delete_pod(api, owner.namespace, pod["metadata"]["name"])
        ):
            removed.append(replica)
    if existing and (created or removed):
        await objects.post_event(
            api,
            raw,
            "Normal",
            "Scaled",
            f"scaled to {spec.replicas} replicas "
            f"(added {created or 'none'}, removed {removed or 'none'})",
        )

    wanted = network.build_services(
        owner=owner, spec=spec, resolved=resolved, ssh_service_type=settings.ssh_service_type
    )
    ingress = network.build_ingress(
        owner=owner,
        spec=spec,
        resolved=resolved,
        host=settings.ingress_host,
        ingress_class=settings.ingress_class,
    )
    for obj in [*wanted, *([ingress] if ingress else [])]:
        await objects.apply(api, obj)
    return bool(created or removed)


def _record(
    raw: dict[str, Any], spec: SessionSpec, previous: SessionStatus, current: SessionStatus
) -> None:
    key = (raw["metadata"]["namespace"], raw["metadata"]["name"])
    metrics.observe_phase(key, current.phase, spec.type)
    if current.phase == "Failed" and previous.phase != "Failed":
        metrics.FAILURES.labels(current.reason or "Unknown").inc()
    was_ready = any(c.type == "Ready" and c.status == "True" for c in previous.conditions or [])
    is_ready = any(c.type == "Ready" and c.status == "True" for c in current.conditions or [])
    if is_ready and not was_ready:
        created = datetime.fromisoformat(
            raw["metadata"]["creationTimestamp"].replace("Z", "+00:00")
        )
        metrics.TIME_TO_READY.labels(spec.type).observe(
            (datetime.now(UTC) - created).total_seconds()
        )
