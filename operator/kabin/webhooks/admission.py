"""The admission handlers: thin, they read what they need and call `kabin.logic`."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import kopf
from prometheus_client import Histogram
from pydantic import ValidationError

from kabin import k8s
from kabin import settings as settings_module
from kabin.api.meta import GROUP
from kabin.api.names import (
    PREEMPTED_ANNOTATION,
    RENEW_ANNOTATION,
    SCHEDULE_FIRED_ANNOTATION,
    SUSPEND_REASON_ANNOTATION,
)
from kabin.api.session import SessionSpec
from kabin.k8s import kueue, objects
from kabin.logic.admission import (
    Operation,
    Policy,
    check_access_change,
    check_agent_uid,
    check_default_drive,
    check_drive_access,
    check_group_change,
    check_queue,
    check_session,
    check_session_count,
    explain,
    running,
    stamp_owner,
)
from kabin.logic.drives import drive_of
from kabin.logic.resolve import QueueDefaults, queueing
from kabin.logic.schedule import restarted
from kabin.webhooks import server

DURATION = Histogram(
    "kabin_webhook_duration_seconds",
    "Time the operator took to answer an admission review, by webhook.",
    ["webhook"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
F = TypeVar("F", bound=Callable[..., Any])


def timed(webhook: str) -> Callable[[F], F]:
    """Observe each answer's duration, refusals included, under the webhook's id."""

    def wrap(fn: F) -> F:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(**kwargs: Any) -> Any:
                with DURATION.labels(webhook).time():
                    return await fn(**kwargs)

            return run_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def run(**kwargs: Any) -> Any:
            with DURATION.labels(webhook).time():
                return fn(**kwargs)

        return run  # type: ignore[return-value]

    return wrap


@kopf.on.startup()
async def serve(*, settings: kopf.OperatorSettings, **_: Any) -> None:
    """Serve the webhooks (and register them, locally) before any watch starts."""
    server.configure(settings, settings_module.current())


@kopf.on.cleanup()
async def disconnect(**_: Any) -> None:
    """Close the API client at shutdown."""
    await k8s.close_shared()


def _admin(userinfo: Any) -> bool:
    info = userinfo or {}
    return settings_module.current().is_admin(info.get("username", ""), info.get("groups", []))


def _stamp(
    field: str, *, spec: kopf.Spec, userinfo: kopf.UserInfo, patch: kopf.Patch, kwargs: Any
) -> None:
    # kopf passes `old` and `operation` outside its typed protocol, in **kwargs.
    operation: Operation = kwargs["operation"]
    key = field.rsplit(".", 1)[-1]
    previous = (kwargs.get("old") or {}).get("spec", {}).get(key)
    value, problem = stamp_owner(
        field=field,
        operation=operation,
        given=spec.get(key),
        previous=previous,
        username=userinfo.get("username", ""),
        admin=_admin(userinfo),
    )
    if problem is not None:
        raise kopf.AdmissionError(str(problem), code=403 if operation == "CREATE" else 422)
    if value is not None:
        patch.spec[key] = value


@kopf.on.mutate(GROUP, "sessions", id="session-user", operations=["CREATE", "UPDATE"])
@timed("session-user")
async def session_user(
    *, spec: kopf.Spec, userinfo: kopf.UserInfo, patch: kopf.Patch, **kwargs: Any
) -> None:
    """Record the creating user in spec.user; refuse forgeries and changes. A schedule set
    or changed starts from now (`_rescheduled`). Async, though it awaits nothing: kopf
    runs a plain function in a thread, a hop every create paid."""
    _stamp("spec.user", spec=spec, userinfo=userinfo, patch=patch, kwargs=kwargs)
    since = _rescheduled(kwargs.get("old"), spec)
    if since is not None:
        patch.metadata.annotations[SCHEDULE_FIRED_ANNOTATION] = since


def _rescheduled(old: Any, spec: Any) -> str | None:
    """The kabin.dev/schedule-fired time an update that sets or changes spec.schedule
    records (now), so that a fire already past is not acted on; None otherwise."""
    if not old:
        return None  # a new session acts on fires after its creation only
    return restarted(
        (old.get("spec") or {}).get("schedule"), spec.get("schedule"), datetime.now(UTC)
    )


@kopf.on.mutate(GROUP, "drives", id="drive-owner", operations=["CREATE", "UPDATE"])
@timed("drive-owner")
async def drive_owner(
    *, spec: kopf.Spec, userinfo: kopf.UserInfo, patch: kopf.Patch, **kwargs: Any
) -> None:
    """Record the creating user in spec.owner; refuse forgeries and changes."""
    _stamp("spec.owner", spec=spec, userinfo=userinfo, patch=patch, kwargs=kwargs)


@kopf.on.validate(GROUP, "drives", id="drive-access", operations=["UPDATE"])
@timed("drive-access")
async def drive_access(
    *, spec: kopf.Spec, name: str | None, userinfo: kopf.UserInfo, **kwargs: Any
) -> None:
    """Only a drive's owner, or an admin, changes spec.access."""
    old = (kwargs.get("old") or {}).get("spec") or {}
    problem = check_access_change(
        drive=name or "",
        old=str(old.get("access", "shared")),
        new=str(spec.get("access", "shared")),
        owner=old.get("owner"),
        username=(userinfo or {}).get("username", ""),
        admin=_admin(userinfo),
    )
    if problem is not None:
        raise kopf.AdmissionError(str(problem), code=403)


async def _active_sessions(api: Any, user: str, but: str | None = None) -> int:
    """The user's sessions that count toward the cap (`runs`), in every namespace (but the
    uid `but`, the one being resumed)."""
    return running(await objects.list_custom_everywhere(api, "sessions"), user, but)


PROTECTED = (SUSPEND_REASON_ANNOTATION, SCHEDULE_FIRED_ANNOTATION, PREEMPTED_ANNOTATION)
"""Annotations only kabin's operator (or an admin) sets; anyone may remove them."""


def _protected_change(old: Any, body: Any, spec: Any) -> str | None:
    """The protected annotation an update sets or changes, if any: but the schedule-fired
    time that `session-user` wrote, when this update sets or changes the schedule."""
    was = ((old or {}).get("metadata") or {}).get("annotations") or {}
    now = (body.get("metadata") or {}).get("annotations") or {}
    ours = (SCHEDULE_FIRED_ANNOTATION,) if _rescheduled(old, spec) is not None else ()
    return next(
        (
            k
            for k in PROTECTED
            if k not in ours and now.get(k) is not None and now.get(k) != was.get(k)
        ),
        None,
    )


def _resuming(old: Any, new: SessionSpec, previous: SessionSpec | None, body: Any) -> bool:
    """Whether an update resumes a session: spec.suspend back to false, or a new renew
    on an Expired one."""
    if previous is None:
        return False
    if previous.suspend and not new.suspend:
        return True
    was = ((old or {}).get("metadata") or {}).get("annotations") or {}
    now = (body.get("metadata") or {}).get("annotations") or {}
    expired = ((old or {}).get("status") or {}).get("phase") == "Expired"
    return expired and not new.suspend and now.get(RENEW_ANNOTATION) != was.get(RENEW_ANNOTATION)


@kopf.on.validate(GROUP, "sessions", id="session-fits", operations=["CREATE", "UPDATE"])
@timed("session-fits")
async def session_fits(
    *, spec: kopf.Spec, body: kopf.Body, namespace: str | None, **kwargs: Any
) -> None:
    """Refuse a session over its caps (the environment's, else the default policy's), its
    user's session limit, one its environment does not serve, or whose drive is missing,
    someone else's private drive, or a default drive that is not the user's."""
    if body.metadata.get("deletionTimestamp"):
        return  # finalizers being removed: nothing the user asked for changes
    old = kwargs.get("old")
    forged = _protected_change(old, body, spec)
    if forged is not None and not _admin(kwargs.get("userinfo")):
        # Why a session is suspended and which schedule fire was acted on are the
        # operator's record: a user who set them would choose the reason and the metrics.
        raise kopf.AdmissionError(
            f"metadata.annotations[{forged}]: only kabin's operator sets it; remove it or "
            "leave it as it is",
            code=403,
        )
    try:
        new = SessionSpec.model_validate(dict(spec))
        previous = SessionSpec.model_validate(old["spec"]) if old and "spec" in old else None
    except ValidationError:
        return  # the schema and CEL rules refuse it, with their own messages
    ours = settings_module.current()
    userinfo = kwargs.get("userinfo") or {}
    username = userinfo.get("username", "")
    admin = _admin(userinfo)
    api = await k8s.shared()
    environment = await k8s.get_environment(api, new.environment) if new.environment else None
    # One read of the drive serves both checks: that it exists, and that it is not
    # someone else's private drive.
    drive_name = drive_of(new)
    drive = None
    if previous is None and drive_name and namespace:
        drive = await k8s.get_drive(api, namespace, drive_name)
    drive_exists = (drive is not None) if new.drive is not None and previous is None else None
    problems = []
    if drive is not None and drive_name is not None:
        refusal = check_drive_access(
            drive=drive_name,
            access=drive.spec.access,
            owner=drive.spec.owner,
            username=username,
            admin=admin,
        )
        if new.drive is None and new.user:
            refusal = refusal or check_default_drive(
                drive=drive_name, owner=drive.spec.owner, user=new.user
            )
        if refusal is not None:
            problems.append(refusal)
    problems += check_session(
        spec=new,
        namespace=namespace or "",
        environment=environment.spec if environment else None,
        drive_exists=drive_exists,
        policy=Policy.of(ours),
        old=previous,
    )
    uid = check_agent_uid(environment.spec if environment else None, ours.agent_uid)
    if uid is not None:
        problems.append(uid)
    env_spec = environment.spec if environment else None
    queue = queueing(new, env_spec, QueueDefaults(queue=ours.queue))[0]
    if queue is not None and previous is not None:
        group = check_group_change(previous, new, queued=True)
        problems += [group] if group is not None else []
    starting = previous is None or _resuming(old, new, previous, body)
    if queue is not None and namespace and (previous is None or (starting and not admin)):
        # At creation and at a person's resume: a queue that is not there would hold its
        # pods back forever. (A schedule's resume, by the operator, goes through: its pods
        # wait in line, their message saying the queue is missing.)
        # One read when the queue is there; Kueue's discovery only to say why it is not.
        exists = await kueue.local_queue(api, namespace, queue) is not None
        problem = check_queue(
            spec=new,
            environment=env_spec,
            queue=queue,
            namespace=namespace,
            kueue=exists or await kueue.installed(api),
            exists=exists,
        )
        problems += [problem] if problem is not None else []
    if (
        starting
        and not problems
        and not admin
        and new.type != "headless"
        and ours.max_sessions_per_user > 0
    ):
        user = new.user or username
        resumed = body.metadata.get("uid") if previous is not None else None
        count = check_session_count(
            user=user,
            active=await _active_sessions(api, user, but=resumed),
            most=ours.max_sessions_per_user,
            field="spec.type" if previous is None else "spec.suspend",
        )
        if count is not None:
            raise kopf.AdmissionError(str(count), code=403)
    if problems:
        raise kopf.AdmissionError(explain(problems), code=422)


@kopf.on.validate(GROUP, "sessions", id="session-scale", operations=["UPDATE"], subresource="scale")
@timed("session-scale")
async def session_scale(
    *, body: kopf.Body, name: str | None, namespace: str | None, **_: Any
) -> None:
    """`kubectl scale` is held to the caps on a whole session, as an edit of
    spec.replicas is."""
    replicas = int((body.get("spec") or {}).get("replicas") or 1)
    if not name or not namespace:
        return
    api = await k8s.shared()
    raw = await objects.get_custom(api, "sessions", namespace, name)
    if raw is None:
        return
    try:
        spec = SessionSpec.model_validate(raw["spec"])
        scaled = spec.model_copy(update={"replicas": replicas})
    except ValidationError:
        return
    environment = await k8s.get_environment(api, spec.environment) if spec.environment else None
    queued = queueing(spec, environment.spec if environment else None, QueueDefaults(
        queue=settings_module.current().queue
    ))[0] is not None  # fmt: skip
    group = check_group_change(spec, scaled, queued)
    if group is not None:
        raise kopf.AdmissionError(str(group), code=422)
    if replicas <= spec.replicas:
        return
    problems = check_session(
        spec=scaled,
        namespace=namespace,
        environment=environment.spec if environment else None,
        drive_exists=None,
        policy=Policy.of(settings_module.current()),
        old=spec,
    )
    if problems:
        raise kopf.AdmissionError(explain(problems), code=422)
