"""The Session reconciler: one level-triggered path for create, update and resume.

Any event of a Session or of one of its pods, a deadline, or the periodic
resync leads to the same `reconcile`, in three steps:
- read the session and its children from the operator's cache (`cache`);
- plan: compute its status (`kabin.logic.status`) and the writes that make its children
  match its spec (`plan`, pure: creates that may repeat, deletes that may find nothing,
  applies only of what differs);
- apply: write them (`_apply`), then the status, only when it differs, over the
  resourceVersion it was computed from.
An unchanged session costs no request. Reconciles of one session never overlap (the
work queue in `workqueue`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from kabin import k8s
from kabin.api import names
from kabin.api.environment import EnvironmentConfig
from kabin.api.meta import parse_time
from kabin.api.names import RENEW_ANNOTATION, Reason
from kabin.api.session import SessionSpec, SessionStatus
from kabin.handlers import cache, metrics, runtime
from kabin.handlers.cache import Cache
from kabin.k8s import errors, objects
from kabin.k8s.informer import DELETED, Body
from kabin.logic import activity, agent, network, resolve, status
from kabin.logic import drives as logic_drives
from kabin.logic import pod as pod_builder
from kabin.logic.access import Origin
from kabin.logic.admission import check_session_count, running
from kabin.logic.drives import claim_name
from kabin.logic.status import queue
from kabin.settings import OperatorSettings

log = logging.getLogger("kabin.sessions")


def session_changed(state: runtime.Runtime, event: str, body: Body) -> None:
    """A Session was created, changed, deleted or listed: queue its reconcile (or, when it
    is gone, forget it and let its drive pass on)."""
    meta = body["metadata"]
    key = (meta["namespace"], meta["name"])
    if event == DELETED:
        metrics.observe_phase(key, None, "")
        state.sessions.forget(key)
        state.evictions.pop(key, None)
        for drive in cache.session_drives(body):
            state.drives.now((key[0], drive))
        return
    state.sessions.now(key)


BATCH_PERIOD = 1.0
"""How long a pod change that decides nothing waits for the next (the Job controller's
syncJobBatchPeriod): in a burst, a pod's ADDED, bound and started events make one status
write, not one each."""


def _decisive(pod: Body) -> bool:
    """Whether a pod's change moves its session at once: it is Ready, finished or going."""
    status = pod.get("status") or {}
    return (
        bool(pod["metadata"].get("deletionTimestamp"))
        or status.get("phase") in ("Succeeded", "Failed")
        or names.is_true(status, names.POD_READY)
    )


def child_changed(state: runtime.Runtime, event: str, body: Body) -> None:
    """One of a Session's pods changed, its agent renewed its activity Lease, or one of
    its Services or its Ingress changed (someone edited or deleted it): its status (and
    its expiry) may have moved, or a child needs making again."""
    meta = body["metadata"]
    labels = meta.get("labels") or {}
    session = labels.get(names.SESSION_LABEL)
    if session:
        key = (meta["namespace"], session)
        evicted = queue.evicted([body]) if body.get("kind") == "Pod" else None
        if evicted is not None:
            state.evictions[key] = evicted
        if event == DELETED or body.get("kind") != "Pod" or _decisive(body):
            state.sessions.now(key)
        else:
            state.sessions.later(key, BATCH_PERIOD)
    drive = labels.get(names.DRIVE_LABEL)
    if drive:
        # A pod of a deleted session still holds its drive until it is gone.
        state.drives.now((meta["namespace"], drive))


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
    cache: Cache
    raw: dict[str, Any]
    spec: SessionSpec
    owner: resolve.Owner
    resolved: resolve.Resolved
    settings: OperatorSettings
    drive: status.DriveView | None
    place: status.Place | None = None  # its place in its Kueue queue
    evicted: tuple[str, str] | None = None  # (pod UID, why) Kueue preempted, from an event

    @property
    def interactive(self) -> bool:
        return self.spec.type != "headless"

    @property
    def deleting(self) -> bool:
        return bool(self.raw["metadata"].get("deletionTimestamp"))


async def _reconcile(state: runtime.Runtime, namespace: str, name: str) -> str | None:
    api, cache = await k8s.shared(), state.cache
    raw = cache.session(namespace, name)
    if raw is None:
        metrics.observe_phase((namespace, name), None, "")
        state.sessions.forget((namespace, name))
        return None
    spec = SessionSpec.model_validate(raw["spec"])
    previous = SessionStatus.model_validate(raw.get("status") or {})
    env_raw = cache.environment(spec.environment) if spec.environment else None
    env = EnvironmentConfig.model_validate(env_raw) if env_raw else None
    failure, placed = None, False
    if spec.environment and env is None and not previous.phase:
        message = f'EnvironmentConfig "{spec.environment}" does not exist'
        failure = errors.Failure(False, Reason.ENVIRONMENT_NOT_FOUND, message)
    drive, make_drive = _drive(cache, namespace, name, spec)
    if (
        drive is not None
        and drive.granted
        and not spec.suspend
        and previous.phase in ("Suspended", "Expired")
    ):
        # Coming back, it takes its drive as the API server has it now: the cache may
        # still show the hold it gave up, which the drive may have passed on since.
        fresh = await objects.get_custom(api, "drives", namespace, drive.name)
        drive = logic_drives.view(
            drive.name, session=name, drive=fresh, default_for=None if spec.drive else spec.user
        )
        if drive.granted and fresh is not None and not logic_drives.done(raw):
            await _keep_drive(api, fresh, name, raw["metadata"]["resourceVersion"])
    session = _Session(
        api=api,
        cache=cache,
        raw=raw,
        spec=spec,
        owner=resolve.Owner(name, namespace, raw["metadata"]["uid"], spec.user or ""),
        resolved=resolve.resolve(spec, env.spec if env else None, _queues(state.settings)),
        settings=state.settings,
        drive=drive,
        place=state.places.of(namespace, name) if state.places else None,
        evicted=_eviction(state, (namespace, name), raw),
    )
    seen = _look(session, _read(session), previous, failure)
    if not session.deleting and failure is None:
        try:
            if make_drive and seen.outcome.status.phase not in names.STOPPED_PHASES:
                # Only a session about to run makes its user's default drive: a finished
                # or suspended one must not bring back a drive its user deleted.
                session = replace(session, drive=await _make_default_drive(session))
                seen = _look(session, seen.children, previous)
            # Preempted: the own change (suspend, or the requeue's record) comes first;
            # pods made now would only enter the line to be deleted again.
            todo = Plan() if seen.outcome.preempted else plan(session, seen)
            placed = bool(todo.create) and not todo.existing
            done = await _apply(session, todo, seen)
            if done is not None:
                # What we just did is part of the status; what we decided (a terminal
                # phase) stays.
                seen = _look(session, done, seen.outcome.status)
        except Exception as e:
            failure = errors.classify(e)
            if failure is None or failure.retryable:
                raise
            # What could not be done goes to the status, from what was just read.
            seen = _look(session, seen.children, seen.outcome.status, failure)
    outcome = seen.outcome

    if await _change_own(session, outcome):
        return spec.type  # the watch brings the spec that says so
    new = outcome.status.model_dump(by_alias=True, exclude_none=True, mode="json")
    old = raw.get("status") or {}
    waiting = outcome.status.phase == "Pending" and previous.phase in (None, "", "Pending")
    if placed and failure is None and waiting:
        # Its pods were just made: that they wait for a node is no news, and their
        # events, batched, bring the status that says where they went (in a burst, one
        # write instead of two).
        state.sessions.later((namespace, name), BATCH_PERIOD)
        return spec.type
    if new != old:
        # Over the version it was computed from: a status from a stale cache is refused
        # (409), and the reconcile runs again on what the watch brings.
        patch = {"status": {**{k: None for k in old if k not in new}, **new}}
        version = raw["metadata"]["resourceVersion"]
        written = await objects.patch_custom(
            api, "sessions", namespace, name, patch, status=True, resource_version=version
        )
        cache.wrote("Session", namespace, name, version, written)
    for event in status.transitions(previous, outcome.status):
        state.announce(objects.post_event(api, raw, event.type, event.reason, event.message))
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


async def _keep_drive(api: Any, drive: dict[str, Any], session: str, version: str) -> None:
    """A session coming back to the drive it still holds says so on the Drive, over the
    version it read, before its pods are made. The drive's reconcile writes a decision
    over the version it read too: so either that decision (to pass the drive on) was
    written first, and this write fails (409) and the session reads the new holder; or
    this one was, and that decision is refused and taken again, on a fresh read of this
    session, which wants the drive. Never both."""
    meta = drive["metadata"]
    mark = f"{session} {version}"
    if (meta.get("annotations") or {}).get(names.RESUMING_ANNOTATION) == mark:
        return  # this version of the session said so already
    await objects.patch_custom(
        api, "drives", meta["namespace"], meta["name"],
        {"metadata": {"annotations": {names.RESUMING_ANNOTATION: mark}}},
        resource_version=meta["resourceVersion"],
    )  # fmt: skip


def _eviction(
    state: runtime.Runtime, key: tuple[str, str], raw: dict[str, Any]
) -> tuple[str, str] | None:
    """The preemption a pod event saw that the session has not acted on yet (it records
    the pod's UID in kabin.dev/preempted when it does)."""
    seen = state.evictions.get(key)
    acted = (raw["metadata"].get("annotations") or {}).get(names.PREEMPTED_ANNOTATION)
    if seen is not None and seen[0] == acted:
        del state.evictions[key]
        return None
    return seen


def _queues(settings: OperatorSettings) -> resolve.QueueDefaults:
    return resolve.QueueDefaults(
        queue=settings.queue,
        interactive=settings.priority_interactive,
        headless=settings.priority_headless,
    )


async def _resume_refused(session: _Session) -> str | None:
    """Why the operator may not resume a session for its schedule, if it may not: its
    environment no longer lets schedules resume, or its user is at the session cap (the
    operator is an admin to admission, so it checks for the user itself)."""
    env = session.cache.environment(session.spec.environment) if session.spec.environment else None
    allowed = ((env or {}).get("spec") or {}).get("schedules") or "Allowed"
    if allowed != "Allowed":
        return f"not resumed by its schedule: its environment's schedules are {allowed}"
    ours, user = session.settings, session.spec.user or ""
    if ours.max_sessions_per_user <= 0 or session.spec.type == "headless":
        return None
    if ours.is_admin(user, []):
        return None
    active = running(await objects.list_custom_everywhere(session.api, "sessions"), user)
    problem = check_session_count(
        user=user, active=active, most=ours.max_sessions_per_user, field="spec.suspend"
    )
    return f"not resumed by its schedule: {problem.message}" if problem else None


def own_change(
    spec: SessionSpec, annotations: dict[str, str], outcome: status.Outcome
) -> tuple[dict[str, Any] | None, str]:
    """The change the operator makes to a Session itself, and why (None: none). It
    writes spec.suspend where the user and GitOps see it, as Kubeflow's culler sets
    `paused`: for a timeout whose action is Suspend, or a schedule's fire (whose time it
    records in kabin.dev/schedule-fired, so that it acts on each fire once, even one that
    found the session as it asked). The reason goes in kabin.dev/suspend-reason, and goes
    at the resume, so that the next suspend by hand says User. Pure."""
    why, fired = names.SUSPEND_REASON_ANNOTATION, names.SCHEDULE_FIRED_ANNOTATION
    fire = outcome.fire
    if fire is not None:
        notes: dict[str, Any] = {fired: fire.at.astimezone(UTC).isoformat()}
        if fire.action == "suspend" and not spec.suspend:
            notes[why] = Reason.SCHEDULE
            return {"metadata": {"annotations": notes}, "spec": {"suspend": True}}, "suspending"
        if fire.action == "resume" and spec.suspend:
            notes[why] = None
            return {"metadata": {"annotations": notes}, "spec": {"suspend": False}}, "resuming"
        return {"metadata": {"annotations": notes}}, f"its schedule's {fire.action} finds it so"
    preempted = {names.PREEMPTED_ANNOTATION: outcome.preempted} if outcome.preempted else {}
    if outcome.suspend is not None:
        notes = {why: outcome.suspend, **preempted}
        return {"metadata": {"annotations": notes}, "spec": {"suspend": True}}, (
            f"suspending ({outcome.suspend})"
        )
    if preempted and outcome.status.phase != "Failed":
        # Its pods go (Kueue deletes them) and are made again, back in line.
        return {"metadata": {"annotations": preempted}}, REQUEUED
    if why in annotations and not spec.suspend and outcome.status.phase != "Suspended":
        return {"metadata": {"annotations": {why: None}}}, "resumed: the reason goes"
    return None, ""


REQUEUED = "requeued: Kueue preempted it, and its pods are made again in line"


async def _change_own(session: _Session, outcome: status.Outcome) -> bool:
    """Make the operator's own change to the Session (`own_change`), or delete one left
    suspended past its environment's deleteSuspendedAfter; whether it did either."""
    meta, owner = session.raw["metadata"], session.owner
    if outcome.delete:
        log.info("Deleting session %s/%s: suspended too long", owner.namespace, owner.name)
        await objects.delete_custom(
            session.api, "sessions", owner.namespace, owner.name, uid=owner.uid,
            resource_version=meta["resourceVersion"],  # not one resumed since it was read
        )  # fmt: skip
        return True
    patch, why = own_change(session.spec, meta.get("annotations") or {}, outcome)
    if patch is None:
        return False
    if patch.get("spec", {}).get("suspend") is False:
        refused = await _resume_refused(session)
        if refused is not None:
            # The fire is acted on (recorded), but the session stays suspended.
            patch, why = {"metadata": {"annotations": {
                names.SCHEDULE_FIRED_ANNOTATION: patch["metadata"]["annotations"][
                    names.SCHEDULE_FIRED_ANNOTATION
                ]
            }}}, refused  # fmt: skip
            await objects.post_event(
                session.api, session.raw, "Warning", Reason.RESUME_REFUSED, refused
            )
    log.info("Session %s/%s: %s", owner.namespace, owner.name, why)
    await objects.patch_custom(
        session.api, "sessions", owner.namespace, owner.name, patch,
        resource_version=meta["resourceVersion"],
    )  # fmt: skip
    if why == REQUEUED:  # once: after the record that makes it happen once
        text = outcome.status.message or why
        await objects.post_event(session.api, session.raw, "Warning", Reason.REQUEUED, text)
    return True


@dataclass(frozen=True)
class _Children:
    """What one look at a session's children found."""

    lease: dict[str, Any] | None
    pods: list[dict[str, Any]]
    services: list[dict[str, Any]]
    ingresses: list[dict[str, Any]]


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


def _read(session: _Session) -> _Children:
    """The session's pods, and an interactive one's Services, Ingress and activity Lease,
    from the cache."""
    cache, owner = session.cache, session.owner
    where = (owner.namespace, owner.name)
    if not session.interactive:
        return _Children(None, cache.children("Pod", *where), [], [])
    leases = [x for x in cache.children("Lease", *where) if x["metadata"]["name"] == owner.name]
    return _Children(
        leases[0] if leases else None,
        cache.children("Pod", *where),
        cache.children("Service", *where),
        cache.children("Ingress", *where),
    )


def _look(
    session: _Session,
    children: _Children,
    previous: SessionStatus,
    failure: errors.Failure | None = None,
) -> _Seen:
    """The session's status from what was read."""
    meta, settings = session.raw["metadata"], session.settings
    notes = meta.get("annotations") or {}
    observed = status.Observed(
        spec=session.spec,
        owner=session.owner,
        resolved=session.resolved,
        generation=meta.get("generation", 0),
        previous=previous,
        pods=children.pods,
        services={s["metadata"]["name"]: s for s in children.services},
        deleting=session.deleting,
        renew=notes.get(RENEW_ANNOTATION),
        place=session.place,
        evicted=session.evicted,
        preempted=notes.get(names.PREEMPTED_ANNOTATION),
        suspend_reason=_reason(notes.get(names.SUSPEND_REASON_ANNOTATION)),
        created=parse_time(meta["creationTimestamp"]) if meta.get("creationTimestamp") else None,
        schedule_fired=_time(notes.get(names.SCHEDULE_FIRED_ANNOTATION)),
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
            sessions_url=settings.sessions_url,
            preempted_headless=settings.preempted_headless,
        ),
    )
    return _Seen(children, outcome)


SUSPEND_REASONS = (Reason.IDLE_TIMEOUT, Reason.TIMEOUT, Reason.SCHEDULE, Reason.PREEMPTED)


def _reason(value: str | None) -> str | None:
    """The operator's reason for a suspend; anything else (an edit by hand) says User."""
    return value if value in SUSPEND_REASONS else None


def _time(value: str | None) -> datetime | None:
    """An annotation's time; None when it is absent or not a time (someone edited it)."""
    try:
        when = datetime.fromisoformat(value) if value else None
    except ValueError:
        return None
    return when if when is not None and when.tzinfo is not None else None


def _drive(
    cache: Cache, namespace: str, name: str, spec: SessionSpec
) -> tuple[status.DriveView | None, bool]:
    """Where the session stands with its drive, from the cache; and whether that drive is
    its user's default one and does not exist yet (made only for a session about to
    run, by `_make_default_drive`)."""
    drive_name = logic_drives.drive_of(spec)
    if drive_name is None:
        return None, False
    raw = cache.drive(namespace, drive_name)
    default_for = spec.user if not spec.drive else None
    view = logic_drives.view(drive_name, session=name, drive=raw, default_for=default_for)
    return view, raw is None and default_for is not None


async def _make_default_drive(session: _Session) -> status.DriveView:
    """Make the user's default drive (one that exists already, unseen by the cache, is
    left as it is and judged as it is)."""
    spec, owner = session.spec, session.owner
    assert spec.user
    made = logic_drives.default_drive(
        namespace=owner.namespace, user=spec.user, size=session.settings.default_drive_size
    )
    name = made["metadata"]["name"]
    raw = (
        made
        if await objects.create_custom(session.api, "drives", made)
        else await objects.get_custom(session.api, "drives", owner.namespace, name)
    )
    return logic_drives.view(name, session=owner.name, drive=raw, default_for=spec.user)


@dataclass(frozen=True)
class Plan:
    """What a reconcile will write to make a session's children match its spec: decided
    by `plan` from what was read, written by `_apply`."""

    free: list[dict[str, Any]] = field(default_factory=list)  # pods of a session that ended
    access: list[dict[str, Any]] = field(default_factory=list)  # the agents' objects
    token: bool = False  # make the Jupyter token Secret (once; its value is random)
    create: dict[int, dict[str, Any]] = field(default_factory=dict)  # replica -> pod
    remove: dict[int, dict[str, Any]] = field(default_factory=dict)  # replica -> pod
    existing: list[int] = field(default_factory=list)  # replicas there before
    network: list[dict[str, Any]] = field(default_factory=list)  # to apply
    unused: list[tuple[str, str]] = field(default_factory=list)  # (kind, name) to delete


def plan(session: _Session, seen: _Seen) -> Plan:
    """The writes that make the session's children match its spec, given what was read
    and the status computed from it. Pure: it reads nothing and writes nothing."""
    phase, spec, pods = seen.outcome.status.phase, session.spec, seen.pods
    if phase in ("Expired", "Suspended") or (phase == "Failed" and spec.type != "headless"):
        # Its resources are freed; finished headless pods stay for their logs.
        return Plan(free=[p for p in pods if not p["metadata"].get("deletionTimestamp")])
    if phase in names.DONE_PHASES:
        return Plan()
    existing = {resolve.replica_of(p): p for p in pods}
    if session.drive is not None and not session.drive.granted and not existing:
        return Plan()  # its pods start once the drive is granted to it
    missing = [r for r in range(1, spec.replicas + 1) if r not in existing]
    access, token = [], False
    if missing or (session.interactive and seen.children.lease is None):
        # Before the pods: admission refuses a pod whose ServiceAccount does not exist. A
        # Lease deleted by someone, or missing for older pods, is made again.
        access = agent.build_agent_access(session.owner, spec)
        token = spec.type != "headless" and bool(
            agent.jupyter_token_secret(session.owner, session.resolved)
        )
    remove = {
        r: p
        for r, p in sorted(existing.items(), reverse=True)  # scale down from the highest
        if r > spec.replicas and not p["metadata"].get("deletionTimestamp")
    }
    apply, unused = _network_plan(session, seen.children)
    group = pod_builder.pod_group(
        session.owner,
        version=session.raw["metadata"].get("resourceVersion", ""),
        pods=list(existing.values()),
        replicas=spec.replicas,
        queue=session.resolved.queue,
    )
    if group is None and spec.replicas > 1 and session.resolved.queue:
        missing = []  # its live pods are another group: they go first
    return Plan(
        access=access,
        token=token,
        create={r: _pod(session, r, group) for r in missing},
        remove=remove,
        existing=sorted(existing),
        network=apply,
        unused=unused,
    )


def _pod(session: _Session, replica: int, group: str | None = None) -> dict[str, Any]:
    drive, settings = session.drive, session.settings
    return pod_builder.build_pod(
        owner=session.owner,
        spec=session.spec,
        resolved=session.resolved,
        replica=replica,
        replicas=session.spec.replicas,
        drive=(drive.name, claim_name(drive.name)) if drive is not None else None,
        agent=agent.AgentConfig(
            image=settings.agent_image,
            renew_interval=settings.activity_interval,
            uid=settings.agent_uid,
            api_server=settings.agent_api_server,
        ),
        group=group,
    )


def _network_plan(
    session: _Session, children: _Children
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """The Services and Ingress the session's interfaces need where they differ from what
    is there; and those it had but no longer needs (an interface removed from its
    environment)."""
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
        host=(
            Origin.parse(settings.sessions_url).host(owner.namespace, owner.name)
            if settings.sessions_url
            else settings.ingress_host
        ),
        ingress_class=settings.ingress_class,
        annotations=settings.ingress_annotations,
    )
    there = {o["metadata"]["name"]: o for o in children.services}
    ingresses = {o["metadata"]["name"]: o for o in children.ingresses}
    apply = [
        obj
        for obj, existing in [
            *((s, there.get(s["metadata"]["name"])) for s in wanted),
            *([(ingress, ingresses.get(ingress["metadata"]["name"]))] if ingress else []),
        ]
        if existing is None or not network.contains(existing, obj)
    ]
    kept = {s["metadata"]["name"] for s in wanted}
    unused = []
    for name in there:
        if name not in kept:
            unused.append(("Service", name))
            if name == owner.name and ingress is None:  # the http Service's Ingress
                unused.append(("Ingress", name))
    return apply, unused


async def _apply(session: _Session, todo: Plan, seen: _Seen) -> _Children | None:
    """Write the plan; the children as they are now if any pod changed, else None. The
    cache expects the pods created and deleted until its watch shows them."""
    api, owner, cache = session.api, session.owner, session.cache
    if todo.free:
        freed = await _delete_pods(session, todo.free)
        return replace(seen.children, pods=[]) if freed else None
    for obj in todo.access:
        await objects.apply(api, obj)
    if todo.token:
        token = agent.build_jupyter_token(owner, session.spec, secrets.token_urlsafe(32))
        await objects.create_secret(api, token)  # made once; a repeat finds it, keeps it
    replicas = list(todo.create)
    made = await asyncio.gather(*(objects.create_pod(api, todo.create[r]) for r in replicas))
    created = {r: pod for r, pod in zip(replicas, made, strict=True) if pod is not None}
    cache.made("Pod", owner.namespace, owner.name, list(created.values()))
    removed = await _delete_pods(session, list(todo.remove.values()))
    gone = [r for r, p in todo.remove.items() if p["metadata"]["name"] in removed]
    if todo.existing and (created or gone):
        await objects.post_event(
            api,
            session.raw,
            "Normal",
            Reason.SCALED,
            f"scaled to {session.spec.replicas} replicas "
            f"(added {sorted(created) or 'none'}, removed {gone or 'none'})",
        )
    for obj in todo.network:
        await objects.apply(api, obj)
    for kind, name in todo.unused:
        await objects.delete_owned(api, kind, owner.namespace, name)
    if not (created or gone):
        return None
    kept = [p for p in seen.pods if resolve.replica_of(p) not in gone]
    return replace(seen.children, pods=[*kept, *created.values()])


async def _delete_pods(session: _Session, pods: list[dict[str, Any]]) -> set[str]:
    """Delete these pods; the names of those that were there to delete."""
    namespace = session.owner.namespace
    deleted = [
        pod
        for pod in pods
        if await objects.delete_pod(session.api, namespace, pod["metadata"]["name"])
    ]
    session.cache.deleted("Pod", namespace, session.owner.name, deleted)
    return {p["metadata"]["name"] for p in deleted}


def _record(
    raw: dict[str, Any], spec: SessionSpec, previous: SessionStatus, current: SessionStatus
) -> None:
    key = (raw["metadata"]["namespace"], raw["metadata"]["name"])
    created = parse_time(raw["metadata"]["creationTimestamp"])
    # Pending since its creation when it never ran: what a new leader can know too.
    since = created.timestamp() if current.start_time is None else None
    metrics.observe_phase(key, current.phase, spec.type, pending_since=since)
    if current.phase == "Failed" and previous.phase != "Failed":
        metrics.FAILURES.labels(current.reason or "Unknown").inc()
    was_ready = any(c.type == names.READY and c.status == "True" for c in previous.conditions or [])
    is_ready = any(c.type == names.READY and c.status == "True" for c in current.conditions or [])
    if current.phase == "Suspended":
        since = current.suspended_at.timestamp() if current.suspended_at else None
        gpus = current.requested.gpu if current.requested and current.requested.gpu else 0
        metrics.observe_suspended(key, current.reason or Reason.USER, int(gpus), since)
    timed_out = current.reason in (Reason.IDLE_TIMEOUT, Reason.TIMEOUT)
    if current.phase in ("Expired", "Suspended") and previous.phase != current.phase and timed_out:
        expiry = current.expiry_time or previous.expiry_time
        if expiry is not None:
            mode = "idle" if current.reason == Reason.IDLE_TIMEOUT else "absolute"
            metrics.CULL_LATENESS.labels(mode).observe(
                max(0.0, (datetime.now(UTC) - expiry).total_seconds())
            )
    _record_queue(key, spec, previous, current)
    if is_ready and not was_ready:
        metrics.TIME_TO_READY.labels(spec.type).observe(
            (datetime.now(UTC) - created).total_seconds()
        )


def _record_queue(
    key: tuple[str, str], spec: SessionSpec, previous: SessionStatus, current: SessionStatus
) -> None:
    """Queue metrics: waiting or admitted now, and how long it waited when admitted."""
    queued = next((c for c in current.conditions or [] if c.type == names.QUEUED), None)
    state = None
    if queued is not None and current.phase in ("Pending", "Running"):
        if queued.status == "True":
            state = "waiting"
        elif queued.reason == Reason.ADMITTED:
            state = "admitted"
    metrics.observe_queue(key, current.queue, state)
    admitted, since = current.admitted_at, current.queued_at
    if current.queue and admitted and since and previous.admitted_at != admitted:
        metrics.QUEUE_WAIT.labels(current.queue, spec.type).observe(
            max(0.0, (admitted - since).total_seconds())
        )
