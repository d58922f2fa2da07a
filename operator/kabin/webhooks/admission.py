"""The admission handlers: thin, they read what they need and call `kabin.logic`."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import kopf
from prometheus_client import Histogram
from pydantic import ValidationError

from kabin import k8s
from kabin import settings as settings_module
from kabin.api.meta import GROUP
from kabin.api.session import SessionSpec
from kabin.logic.admission import (
    Operation,
    check_drive_access,
    check_session,
    explain,
    stamp_owner,
)
from kabin.logic.drives import default_drive_name
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
        groups=userinfo.get("groups", []),
        admin_groups=settings_module.current().admin_groups,
    )
    if problem is not None:
        raise kopf.AdmissionError(str(problem), code=403 if operation == "CREATE" else 422)
    if value is not None:
        patch.spec[key] = value


@kopf.on.mutate(GROUP, "sessions", id="session-user", operations=["CREATE", "UPDATE"])
@timed("session-user")
def session_user(
    *, spec: kopf.Spec, userinfo: kopf.UserInfo, patch: kopf.Patch, **kwargs: Any
) -> None:
    """Record the creating user in spec.user; refuse forgeries and changes."""
    _stamp("spec.user", spec=spec, userinfo=userinfo, patch=patch, kwargs=kwargs)


@kopf.on.mutate(GROUP, "drives", id="drive-owner", operations=["CREATE", "UPDATE"])
@timed("drive-owner")
def drive_owner(
    *, spec: kopf.Spec, userinfo: kopf.UserInfo, patch: kopf.Patch, **kwargs: Any
) -> None:
    """Record the creating user in spec.owner; refuse forgeries and changes."""
    _stamp("spec.owner", spec=spec, userinfo=userinfo, patch=patch, kwargs=kwargs)


@kopf.on.validate(GROUP, "sessions", id="session-fits", operations=["CREATE", "UPDATE"])
@timed("session-fits")
async def session_fits(
    *, spec: kopf.Spec, body: kopf.Body, namespace: str | None, **kwargs: Any
) -> None:
    """Refuse a session its environment does not serve or allow, or whose drive is missing."""
    if body.metadata.get("deletionTimestamp"):
        return  # finalizers being removed: nothing the user asked for changes
    old = kwargs.get("old")
    try:
        new = SessionSpec.model_validate(dict(spec))
        previous = SessionSpec.model_validate(old["spec"]) if old and "spec" in old else None
    except ValidationError:
        return  # the schema and CEL rules refuse it, with their own messages
    api = await k8s.shared()
    environment = await k8s.get_environment(api, new.environment) if new.environment else None
    # One read of the drive serves both checks: that it exists, and that it is not
    # someone else's private drive.
    drive_name = new.drive or (
        default_drive_name(new.user) if new.user and new.type != "headless" else None
    )
    drive = None
    if previous is None and drive_name and namespace:
        drive = await k8s.get_drive(api, namespace, drive_name)
    drive_exists = (drive is not None) if new.drive is not None and previous is None else None
    problems = []
    if drive is not None and drive_name is not None:
        userinfo = kwargs.get("userinfo") or {}
        refusal = check_drive_access(
            drive=drive_name,
            access=drive.spec.access,
            owner=drive.spec.owner,
            username=userinfo.get("username", ""),
            groups=userinfo.get("groups", []),
            admin_groups=settings_module.current().admin_groups,
        )
        if refusal is not None:
            problems.append(refusal)
    problems += check_session(
        spec=new,
        namespace=namespace or "",
        environment=environment.spec if environment else None,
        drive_exists=drive_exists,
        old=previous,
    )
    if problems:
        raise kopf.AdmissionError(explain(problems), code=422)
