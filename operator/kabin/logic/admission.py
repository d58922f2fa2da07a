"""Admission decisions: who a Session or Drive belongs to, and whether a Session
fits its EnvironmentConfig. Each refusal names the field and the limit."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from kabin.api.environment import EnvironmentConfigSpec, ResourceAmounts
from kabin.api.meta import parse_quantity
from kabin.api.names import RENEW_ANNOTATION
from kabin.api.session import SessionSpec
from kabin.logic import schedule
from kabin.settings import OperatorSettings

Operation = Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]


@dataclass(frozen=True)
class Problem:
    """Why an object is refused: the field, and what is wrong with it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def explain(problems: Iterable[Problem]) -> str:
    """All problems as one message, one per line, as the API server lists its own."""
    return "\n".join(str(p) for p in problems)


def stamp_owner(
    *,
    field: str,
    operation: Operation,
    given: str | None,
    previous: str | None,
    username: str,
    admin: bool,
) -> tuple[str | None, Problem | None]:
    """The value `field` (spec.user of a Session, spec.owner of a Drive) must have.

    On create it is the requesting user; only admins may name someone else. Later
    it never changes: an update that leaves it out keeps the old value (so that a
    manifest re-applied without it sees no drift), one that changes it is refused.
    Returns (value to set, or None to leave as is; problem, or None).
    """
    if operation == "UPDATE" and previous is not None:
        if given is None:
            return previous, None
        if given != previous:
            return None, Problem(field, f'is immutable: it is "{previous}", not "{given}"')
        return None, None
    if given is None:
        return username, None
    if given == username or admin:
        return None, None
    return None, Problem(
        field,
        f'may only be "{username}", the requesting user; only administrators may name another',
    )


@dataclass(frozen=True)
class Policy:
    """The caps that hold wherever an EnvironmentConfig sets none (always, for a session
    that names no environment), and the caps on a whole session (replicas x per pod).
    From the operator's settings (`max_*`)."""

    cpu: str
    memory: str
    gpu: int
    timeout: int
    total_cpu: str
    total_memory: str
    total_gpu: int

    @classmethod
    def of(cls, settings: OperatorSettings) -> Policy:
        return cls(
            cpu=settings.max_cpu,
            memory=settings.max_memory,
            gpu=settings.max_gpu,
            timeout=settings.max_timeout,
            total_cpu=settings.max_total_cpu,
            total_memory=settings.max_total_memory,
            total_gpu=settings.max_total_gpu,
        )

    def per_pod(self) -> ResourceAmounts:
        return ResourceAmounts(cpu=self.cpu, memory=self.memory, gpu=self.gpu)

    def total(self) -> ResourceAmounts:
        return ResourceAmounts(cpu=self.total_cpu, memory=self.total_memory, gpu=self.total_gpu)


BY_POLICY = "the cluster's default policy"


def _caps(
    requested: ResourceAmounts | None,
    env_cap: ResourceAmounts | None,
    policy: Policy,
    environment: str | None,
) -> list[Problem]:
    """Each amount against the environment's cap for it, else the default policy's."""
    if requested is None:
        return []
    problems: list[Problem] = []
    for key in ("cpu", "memory", "gpu"):
        asked = getattr(requested, key)
        most = getattr(env_cap, key) if env_cap is not None else None
        by = f'EnvironmentConfig "{environment}"'
        if most is None:
            most, by = getattr(policy.per_pod(), key), BY_POLICY
        if asked is None:
            continue
        if parse_quantity(asked) > parse_quantity(most):
            problems.append(
                Problem(
                    f"spec.resources.{key}", f"{asked} exceeds the maximum of {most} set by {by}"
                )
            )
    return problems


def _totals(
    spec: SessionSpec,
    env: EnvironmentConfigSpec | None,
    policy: Policy,
    skip: frozenset[str] = frozenset(),
) -> list[Problem]:
    """Replicas x what each pod gets (asked, else the environment's default) against the
    policy's caps on a whole session, which never fall below what one pod of the
    environment may have; not for the `skip` keys, already refused per pod."""
    defaults = env.resources.default if env and env.resources else None
    env_cap = env.resources.max if env and env.resources else None
    asked = spec.resources
    problems: list[Problem] = []
    for key in ("cpu", "memory", "gpu"):
        if key in skip:
            continue
        per_pod = getattr(asked, key) if asked is not None else None
        if per_pod is None and defaults is not None:
            per_pod = getattr(defaults, key)
        if per_pod is None:
            continue
        most = getattr(policy.total(), key)
        one_pod = getattr(env_cap, key) if env_cap is not None else None
        if one_pod is not None and parse_quantity(one_pod) > parse_quantity(most):
            most = one_pod
        if spec.replicas * parse_quantity(per_pod) > parse_quantity(most):
            problems.append(
                Problem(
                    "spec.replicas",
                    f"{spec.replicas} replicas x {key} {per_pod} exceeds the maximum of {most} "
                    f"for one session set by {BY_POLICY}",
                )
            )
    return problems


def _timeout(
    timeout: int | None, env: EnvironmentConfigSpec | None, environment: str | None, policy: Policy
) -> list[Problem]:
    most = env.timeouts.max if env and env.timeouts and env.timeouts.max is not None else None
    by = f'EnvironmentConfig "{environment}"'
    if most is None:
        most, by = policy.timeout, BY_POLICY
    if timeout is None or most == -1:
        return []
    if timeout == -1:
        return [
            Problem(
                "spec.timeout",
                f"-1 (no timeout) is not allowed: {by} caps timeouts at {most} seconds",
            )
        ]
    if timeout > most:
        return [
            Problem("spec.timeout", f"{timeout} exceeds the maximum of {most} seconds set by {by}")
        ]
    return []


def _action(
    asked: str | None, env: EnvironmentConfigSpec | None, environment: str | None
) -> list[Problem]:
    """A session may choose Expire where its environment suspends, not Suspend where it
    expires (its compute and drive must come back to others for good)."""
    imposed = env.timeouts.action if env and env.timeouts else None
    if asked == "Suspend" and imposed == "Expire":
        return [
            Problem(
                "spec.timeoutAction",
                f'"Suspend" is not allowed: EnvironmentConfig "{environment}" sets the '
                'timeout action to "Expire"; sessions may only choose "Expire"',
            )
        ]
    return []


def _schedule(
    spec: SessionSpec, env: EnvironmentConfigSpec | None, environment: str | None
) -> list[Problem]:
    """A schedule that parses, in a zone that exists, and that the environment allows."""
    given = spec.schedule
    if given is None or not (given.suspend or given.resume):
        return []
    allowed = (env.schedules if env else None) or "Allowed"
    by = f'EnvironmentConfig "{environment}"'
    if allowed == "Forbidden":
        return [Problem("spec.schedule", f"is not allowed: {by} forbids schedules")]
    if allowed == "SuspendOnly" and given.resume:
        return [
            Problem(
                "spec.schedule.resume",
                f"is not allowed: {by} lets a schedule suspend sessions, not resume them",
            )
        ]
    return [Problem(field, problem) for field, problem in schedule.problems(given)]


def check_session(
    *,
    spec: SessionSpec,
    namespace: str,
    environment: EnvironmentConfigSpec | None,
    drive_exists: bool | None,
    policy: Policy,
    old: SessionSpec | None = None,
) -> list[Problem]:
    """Cross-object checks of a Session against its EnvironmentConfig, the default
    policy and its Drive.

    `environment` is None when the session names none or the named one does not
    exist; `drive_exists` is None when the session names no drive. Caps always apply:
    the environment's where it sets them, the policy's elsewhere. On update (`old`
    given) only what may change is checked: the timeout and the replicas.
    """
    name = spec.environment
    if old is not None:
        problems = []
        if spec.timeout != old.timeout:
            problems += _timeout(spec.timeout, environment, name, policy)
        if spec.timeout_action != old.timeout_action:
            problems += _action(spec.timeout_action, environment, name)
        if spec.schedule != old.schedule:
            problems += _schedule(spec, environment, name)
        if spec.replicas > old.replicas:
            problems += _totals(spec, environment, policy)
        return problems
    problems = []
    if name is not None and environment is None:
        problems.append(Problem("spec.environment", f'EnvironmentConfig "{name}" does not exist'))
    if name is not None and environment is not None and not environment.serves(spec.type):
        served = ", ".join(environment.session_types or ())
        problems.append(
            Problem(
                "spec.type",
                f'"{spec.type}" is not served by EnvironmentConfig "{name}", '
                f"which serves: {served}",
            )
        )
    cap = environment.resources.max if environment and environment.resources else None
    per_pod = _caps(spec.resources, cap, policy, name)
    problems += per_pod
    problems += _totals(
        spec, environment, policy, frozenset(p.field.rsplit(".")[-1] for p in per_pod)
    )
    problems += _timeout(spec.timeout, environment, name, policy)
    problems += _action(spec.timeout_action, environment, name)
    problems += _schedule(spec, environment, name)
    if spec.drive is not None and drive_exists is False:
        problems.append(
            Problem("spec.drive", f'Drive "{spec.drive}" does not exist in namespace "{namespace}"')
        )
    return problems


def check_drive_access(
    *, drive: str, access: str, owner: str | None, username: str, admin: bool
) -> Problem | None:
    """A private drive is for its owner's sessions only (and admins')."""
    if access != "private" or owner in (None, username) or admin:
        return None
    return Problem(
        "spec.drive",
        f'Drive "{drive}" is private to "{owner}"; "{username}" may not use it',
    )


def check_default_drive(*, drive: str, owner: str | None, user: str) -> Problem | None:
    """A user's default drive is used only when it is theirs: one that someone else made
    under that name (shared, to catch the user's files) is never adopted."""
    if owner == user:
        return None
    return Problem(
        "spec.drive",
        f'the default drive "{drive}" belongs to "{owner}", not to "{user}"; name a drive of '
        "yours in spec.drive, or ask an administrator to remove it",
    )


def check_access_change(
    *, drive: str, old: str, new: str, owner: str | None, username: str, admin: bool
) -> Problem | None:
    """Only a drive's owner (or an admin) changes who may use it."""
    if old == new or owner == username or admin:
        return None
    return Problem(
        "spec.access",
        f'only the owner of Drive "{drive}" ("{owner}") or an administrator may change it',
    )


def runs(session: Mapping[str, Any]) -> bool:
    """Whether a Session counts toward its user's cap: interactive, not being deleted, not
    suspended, not finished; a Suspended one whose spec.suspend is false already counts (it
    is resuming), and an Expired one counts while a new kabin.dev/renew brings it back."""
    meta, spec = session["metadata"], session.get("spec") or {}
    status = session.get("status") or {}
    if spec.get("type") == "headless" or meta.get("deletionTimestamp") or spec.get("suspend"):
        return False
    phase = status.get("phase")
    if phase in ("Succeeded", "Failed"):
        return False
    if phase == "Expired":
        renew = (meta.get("annotations") or {}).get(RENEW_ANNOTATION)
        return bool(renew) and renew != (status.get("renewal") or {}).get("token")
    return True


def running(sessions: Iterable[Mapping[str, Any]], user: str, but: str | None = None) -> int:
    """How many of these Sessions are `user`'s and count toward the cap (`runs`), but the
    one whose uid is `but` (the one being resumed)."""
    return sum(
        1
        for s in sessions
        if (s.get("spec") or {}).get("user") == user and runs(s) and s["metadata"].get("uid") != but
    )


def check_session_count(
    *, user: str, active: int, most: int, field: str = "spec.type"
) -> Problem | None:
    """A user's running interactive sessions (not finished, not suspended), this one
    included, within the limit: on create, and on a resume (`field` spec.suspend)."""
    if most <= 0 or active < most:
        return None
    return Problem(
        field,
        f'"{user}" already has {active} interactive sessions, the most one user may have at '
        "once; suspend or delete one first",
    )


def check_agent_uid(environment: EnvironmentConfigSpec | None, agent_uid: int) -> Problem | None:
    """The agent's UID is its own: an environment may not run sessions as it (they share
    its process namespace, and would read its token)."""
    overrides = environment.pod_overrides if environment else None
    security = (overrides.security_context if overrides else None) or {}
    if security.get("runAsUser") != agent_uid:
        return None
    return Problem(
        "spec.environment",
        f"EnvironmentConfig runs sessions as UID {agent_uid}, which is reserved for kabin's agent",
    )


def queue_source(spec: SessionSpec, environment: EnvironmentConfigSpec | None) -> str:
    """Where a session's queue comes from, in words a refusal can name."""
    if spec.queue is not None:
        return "spec.queue"
    if environment is not None and environment.queueing and environment.queueing.queue:
        return f'its EnvironmentConfig "{spec.environment}" (queueing.queue)'
    return "the operator's default queue (setting `queue`)"


def check_queue(
    *,
    spec: SessionSpec,
    environment: EnvironmentConfigSpec | None,
    queue: str,
    namespace: str,
    kueue: bool,
    exists: bool,
) -> Problem | None:
    """A session that waits in a queue needs Kueue, and that LocalQueue in its namespace."""
    field = "spec.queue" if spec.queue is not None or environment is None else "spec.environment"
    source = queue_source(spec, environment)
    if not kueue:
        return Problem(
            field,
            f'queue "{queue}" (from {source}) needs Kueue, which is not installed in this '
            "cluster (the kueue.x-k8s.io API is not served); leave spec.queue out",
        )
    if not exists:
        fix = (
            "name one that exists (kubectl get localqueues)"
            if spec.queue is not None
            else "ask an administrator for it, or name one that exists in spec.queue"
        )
        return Problem(
            field, f'no LocalQueue "{queue}" (from {source}) in namespace "{namespace}"; {fix}'
        )
    return None


def check_group_change(old: SessionSpec, new: SessionSpec, queued: bool) -> Problem | None:
    """A queued session's replicas are one Kueue pod group, admitted together: its size
    changes only while no pod of it exists (suspended)."""
    if not queued or old.replicas == new.replicas or (old.suspend and new.suspend):
        return None
    return Problem(
        "spec.replicas",
        f"is {old.replicas}: a queued session's replicas are admitted together, as one group; "
        "suspend it to change them",
    )
