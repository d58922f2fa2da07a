"""The Session reconciler: one level-triggered path for create, update and resume.

Any event of a Session or of one of its pods, a deadline, or the periodic
resync leads to the same `reconcile`: read everything fresh, compute the
desired children and the status in `kabin.logic`, make the cluster match
(creates that may repeat, deletes that may find nothing), and write the status
only when it differs. Reconciles of one session never overlap (the work queue in `workqueue`).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kopf

from kabin import k8s
from kabin.api import names
from kabin.api.meta import GROUP, parse_time
from kabin.api.names import RENEW_ANNOTATION, Reason
from kabin.api.session import SessionSpec, SessionStatus
from kabin.handlers import metrics, runtime
from kabin.k8s import errors, objects
from kabin.logic import activity, agent, network, resolve, status
from kabin.logic import drives as logic_drives
from kabin.logic import pod as pod_builder
from kabin.logic.drives import claim_name
from kabin.settings import OperatorSettings, reconciles

log = logging.getLogger("kabin.sessions")


@kopf.on.event(GROUP, "sessions", when=lambda namespace, **_: reconciles(namespace))
async def session_changed(
    *, type: str, name: str, namespace: str | None, spec: kopf.Spec, memo: kopf.Memo, **_: Any
) -> None:
    """A Session was created, changed or seen at start-up: queue a reconcile.

    Async (though it awaits nothing) so that kopf runs it in the event loop, not a thread.
    """
    state = runtime.of(memo)
    if namespace is None or state is None:
        return
    if type == "DELETED":
        metrics.observe_phase((namespace, name), None, "")
        state.sessions.forget((namespace, name))
        with contextlib.suppress(ValueError):
            drive = logic_drives.drive_of(SessionSpec.model_validate(dict(spec)))
            if drive:
                state.drives.now((namespace, drive))
        return
    state.sessions.now((namespace, name))


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
async def child_changed(
    *, labels: kopf.Labels, namespace: str | None, memo: kopf.Memo, **_: Any
) -> None:
    """One of a Session's pods changed, or its agent renewed its activity Lease: its
    status (and its expiry) may have moved."""
    state = runtime.of(memo)
    if namespace is None or state is None:
        return
    session = labels.get(names.SESSION_LABEL)
    if session:
        state.sessions.now((namespace, session))
    drive = labels.get(names.DRIVE_LABEL)
    if drive:
        # A pod of a deleted session still holds its drive until it is gone.
        state.drives.now((namespace, drive))


async def reconcile(state: runtime.Runtime, namespace: str, name: str) -> None:
    """Make one Session's children and status match its spec. Safe to repeat; the work
    queue never runs two for one session at once."""
    started = time.monotonic()
    session_type = await _reconcile(state, namespace, name)
    if session_type is not None:
        metrics.RECONCILE.labels(session_type).observe(time.monotonic() - started)


@dataclass(frozen=True)
class _Session:
    """One Session being reconciled: what was read of it, and where it lives."""

    api: Any
    raw: dict[str, Any]
    spec: SessionSpec
    owner: resolve.Owner
    resolved: resolve.Resolved
    settings: OperatorSettings
    drive: status.DriveView | None

    @property
    def interactive(self) -> bool:
        return self.spec.type != "headless"

    @property
    def deleting(self) -> bool:
        return bool(self.raw["metadata"].get("deletionTimestamp"))


async def _reconcile(state: runtime.Runtime, namespace: str, name: str) -> str | None:
    api = await k8s.shared()
    raw = await objects.get_session(api, namespace, name)
    if raw is None:
        metrics.observe_phase((namespace, name), None, "")
        state.sessions.forget((namespace, name))
        return None
    spec = SessionSpec.model_validate(raw["spec"])
    previous = SessionStatus.model_validate(raw.get("status") or {})
    env = await k8s.get_environment(api, spec.environment) if spec.environment else None
    failure = None
    if spec.environment and env is None and not previous.phase:
        message = f'EnvironmentConfig "{spec.environment}" does not exist'
        failure = errors.Failure(False, Reason.ENVIRONMENT_NOT_FOUND, message)
    session = _Session(
        api=api,
        raw=raw,
        spec=spec,
        owner=resolve.Owner(name, namespace, raw["metadata"]["uid"], spec.user or ""),
        resolved=resolve.resolve(spec, env.spec if env else None),
        settings=state.settings,
        drive=await _drive(api, namespace, name, spec, state.settings),
    )
    seen = _look(session, await _read(session), previous, failure)
    if not session.deleting and failure is None:
        try:
            if await _converge(session, seen):
                # What we just did is part of the status; what we decided (a terminal
                # phase) stays.
                seen = _look(session, await _read(session), seen.outcome.status)
        except Exception as e:
            failure = errors.classify(e)
            if failure is None or failure.retryable:
                raise
            # What could not be done goes to the status, from what was just read.
            seen = _look(session, seen.children, seen.outcome.status, failure)
    outcome = seen.outcome

    new = outcome.status.model_dump(by_alias=True, exclude_none=True, mode="json")
    old = raw.get("status") or {}
    if new != old:
        patch = {"status": {**{k: None for k in old if k not in new}, **new}}
        await objects.patch_custom(api, "sessions", namespace, name, patch, status=True)
    for event in status.transitions(previous, outcome.status):
        await objects.post_event(api, raw, event.type, event.reason, event.message)
    _record(raw, spec, previous, outcome.status)
    state.sessions.at((namespace, name), outcome.wake_at)
    if session.drive is not None and new != old:
        # The session moved (waiting, running, finished): the drive decides who holds it
        # next. Pod events of a deleted session reach the drive directly.
        state.drives.now((namespace, session.drive.name))
    if failure is not None:
        before = next((c for c in previous.conditions or [] if c.type == names.FAILED), None)
        if before is None or before.status != "True" or before.reason != failure.reason:
            # One warning when the failure appears, not one per retry; then the status
            # and its Event say it.
            log.warning("Session %s/%s: %s: %s", namespace, name, failure.reason, failure.message)
        raise errors.Reported(failure)
    return spec.type


@dataclass(frozen=True)
class _Children:
    """What one look at a session's children found."""

    lease: dict[str, Any] | None
    pods: list[dict[str, Any]]
    services: list[dict[str, Any]]


@dataclass(frozen=True)
class _Seen:
    """The session's children, and the status computed from them."""

    children: _Children
    outcome: status.Outcome

    @property
    def pods(self) -> list[dict[str, Any]]:
        return self.children.pods

    @property
    def services(self) -> list[dict[str, Any]]:
        return self.children.services


async def _read(session: _Session) -> _Children:
    """The session's pods, and an interactive one's Services and activity Lease."""
    api, owner = session.api, session.owner
    selector = resolve.selector(owner)
    interactive = session.interactive
    lease = await objects.get_lease(api, owner.namespace, owner.name) if interactive else None
    pods = await objects.list_owned(api, "Pod", owner.namespace, selector)
    services = (
        await objects.list_owned(api, "Service", owner.namespace, selector) if interactive else []
    )
    return _Children(lease, pods, services)


def _look(
    session: _Session,
    children: _Children,
    previous: SessionStatus,
    failure: errors.Failure | None = None,
) -> _Seen:
    """The session's status from what was read."""
    meta, settings = session.raw["metadata"], session.settings
    observed = status.Observed(
        spec=session.spec,
        owner=session.owner,
        resolved=session.resolved,
        generation=meta.get("generation", 0),
        previous=previous,
        pods=children.pods,
        services={s["metadata"]["name"]: s for s in children.services},
        deleting=session.deleting,
        renew=(meta.get("annotations") or {}).get(RENEW_ANNOTATION),
        drive=session.drive,
        activity=activity.from_lease(children.lease),
        failure=(failure.reason, failure.message) if failure else None,
    )
    outcome = status.compute(
        observed,
        now=datetime.now(UTC),
        settings=status.StatusSettings(
            host=settings.ingress_host,
            ssh_host=settings.ssh_host or settings.ingress_host,
            image_pull_grace=settings.image_pull_grace,
            expiring_soon=settings.expiring_soon,
        ),
    )
    return _Seen(children, outcome)


async def _drive(
    api: Any, namespace: str, name: str, spec: SessionSpec, settings: OperatorSettings
) -> status.DriveView | None:
    """Where the session stands with its drive; makes the user's default drive on demand."""
    drive_name = logic_drives.drive_of(spec)
    if drive_name is None:
        return None
    raw = await objects.get_custom(api, "drives", namespace, drive_name)
    if raw is None and not spec.drive and spec.user:
        made = logic_drives.default_drive(
            namespace=namespace, user=spec.user, size=settings.default_drive_size
        )
        await objects.create_custom(api, "drives", made)
        raw = await objects.get_custom(api, "drives", namespace, drive_name)
    return logic_drives.view(drive_name, session=name, drive=raw)


async def _converge(session: _Session, seen: _Seen) -> bool:
    """Create and delete children (given the pods just observed) so they match the spec;
    True if anything changed."""
    phase, spec, pods = seen.outcome.status.phase, session.spec, seen.pods
    if phase == "Expired" or (phase == "Failed" and spec.type != "headless"):
        return await _free(session, pods)  # finished headless pods stay for their logs
    if phase in status.TERMINAL:
        return False
    existing = {resolve.replica_of(p): p for p in pods}
    if session.drive is not None and not session.drive.granted and not existing:
        return False  # its pods start once the drive is granted to it
    missing = [r for r in range(1, spec.replicas + 1) if r not in existing]
    if missing or (session.interactive and seen.children.lease is None):
        await _agent_access(session)
    created = await _create_pods(session, missing)
    removed = await _remove_extra_pods(session, existing)
    if existing and (created or removed):
        await objects.post_event(
            session.api,
            session.raw,
            "Normal",
            Reason.SCALED,
            f"scaled to {spec.replicas} replicas "
            f"(added {created or 'none'}, removed {removed or 'none'})",
        )
    await _network(session, seen.services)
    return bool(created or removed)


async def _free(session: _Session, pods: list[dict[str, Any]]) -> bool:
    """Delete the pods of a session that ended, freeing their resources."""
    changed = False
    for pod in pods:
        if not pod["metadata"].get("deletionTimestamp"):
            name = pod["metadata"]["name"]
            changed |= await objects.delete_pod(session.api, session.owner.namespace, name)
    return changed


async def _agent_access(session: _Session) -> None:
    """The agents' ServiceAccount, Role (naming every pod) and Lease, before the pods:
    admission refuses a pod whose ServiceAccount does not exist. A Lease deleted by
    someone, or missing for pods made before kabin had agents, is made again."""
    owner, spec, resolved = session.owner, session.spec, session.resolved
    for obj in agent.build_agent_access(owner, spec):
        await objects.apply(session.api, obj)
    if spec.type != "headless" and agent.jupyter_token_secret(owner, resolved):
        # Made once, with a random token; a repeat finds it and keeps it.
        token = agent.build_jupyter_token(owner, spec, secrets.token_urlsafe(32))
        await objects.create_secret(session.api, token)


async def _create_pods(session: _Session, replicas: list[int]) -> list[int]:
    """Create the missing replicas' pods; the replicas created."""
    drive, settings = session.drive, session.settings
    mount = (drive.name, claim_name(drive.name)) if drive is not None else None
    sidecar = agent.AgentConfig(
        image=settings.agent_image, renew_interval=settings.activity_interval
    )
    created = []
    for replica in replicas:
        pod = pod_builder.build_pod(
            owner=session.owner,
            spec=session.spec,
            resolved=session.resolved,
            replica=replica,
            replicas=session.spec.replicas,
            drive=mount,
            agent=sidecar,
        )
        if await objects.create_pod(session.api, pod):
            created.append(replica)
    return created


async def _remove_extra_pods(session: _Session, existing: dict[int, dict[str, Any]]) -> list[int]:
    """Scale down from the highest replica; the replicas removed."""
    removed = []
    for replica in sorted(existing, reverse=True):
        pod = existing[replica]
        if (
            replica > session.spec.replicas
            and not pod["metadata"].get("deletionTimestamp")
            and await objects.delete_pod(
                session.api, session.owner.namespace, pod["metadata"]["name"]
            )
        ):
            removed.append(replica)
    return removed


async def _network(session: _Session, services: list[dict[str, Any]]) -> None:
    """Apply the Services and Ingress the session's interfaces need, and delete the ones
    it had but no longer needs (an interface removed from its environment)."""
    owner, settings = session.owner, session.settings
    wanted = network.build_services(
        owner=owner,
        spec=session.spec,
        resolved=session.resolved,
        ssh_service_type=settings.ssh_service_type,
    )
    ingress = network.build_ingress(
        owner=owner,
        spec=session.spec,
        resolved=session.resolved,
        host=settings.ingress_host,
        ingress_class=settings.ingress_class,
    )
    for obj in [*wanted, *([ingress] if ingress else [])]:
        await objects.apply(session.api, obj)
    kept = {s["metadata"]["name"] for s in wanted}
    for service in services:
        name = service["metadata"]["name"]
        if name not in kept:
            await objects.delete_owned(session.api, "Service", owner.namespace, name)
            if name == owner.name and ingress is None:  # the http Service's Ingress
                await objects.delete_owned(session.api, "Ingress", owner.namespace, name)


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
        created = parse_time(raw["metadata"]["creationTimestamp"])
        metrics.TIME_TO_READY.labels(spec.type).observe(
            (datetime.now(UTC) - created).total_seconds()
        )
