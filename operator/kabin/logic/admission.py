"""Admission decisions: who a Session or Drive belongs to, and whether a Session
fits its EnvironmentConfig. Each refusal names the field and the limit."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from kabin.api.environment import EnvironmentConfigSpec, ResourceAmounts
from kabin.api.meta import parse_quantity
from kabin.api.session import SessionSpec

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
    groups: Iterable[str],
    admin_groups: Iterable[str],
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
    if given == username:
        return None, None
    admins = set(admin_groups)
    if admins.intersection(groups):
        return None, None
    names = ", ".join(f'"{g}"' for g in sorted(admins))
    return None, Problem(
        field,
        f'may only be "{username}", the requesting user; members of {names} may name another',
    )


def _caps(
    requested: ResourceAmounts | None, cap: ResourceAmounts | None, environment: str
) -> list[Problem]:
    if requested is None or cap is None:
        return []
    problems: list[Problem] = []
    for key in ("cpu", "memory", "gpu"):
        asked, most = getattr(requested, key), getattr(cap, key)
        if asked is None or most is None:
            continue
        if parse_quantity(asked) > parse_quantity(most):
            problems.append(
                Problem(
                    f"spec.resources.{key}",
                    f"{asked} exceeds the maximum of {most} set by "
                    f'EnvironmentConfig "{environment}"',
                )
            )
    return problems


def _timeout(timeout: int | None, env: EnvironmentConfigSpec, environment: str) -> list[Problem]:
    most = env.timeouts.max if env.timeouts else None
    if timeout is None or most is None or most == -1:
        return []
    if timeout == -1:
        return [
            Problem(
                "spec.timeout",
                f'-1 (no timeout) is not allowed: EnvironmentConfig "{environment}" '
                f"caps timeouts at {most} seconds",
            )
        ]
    if timeout > most:
        return [
            Problem(
                "spec.timeout",
                f"{timeout} exceeds the maximum of {most} seconds set by "
                f'EnvironmentConfig "{environment}"',
            )
        ]
    return []


def check_session(
    *,
    spec: SessionSpec,
    namespace: str,
    environment: EnvironmentConfigSpec | None,
    drive_exists: bool | None,
    old: SessionSpec | None = None,
) -> list[Problem]:
    """Cross-object checks of a Session against its EnvironmentConfig and Drive.

    `environment` is None when the session names none or the named one does not
    exist; `drive_exists` is None when the session names no drive. On update
    (`old` given) only what may change is checked: the timeout.
    """
    name = spec.environment
    if old is not None:
        if environment is None or spec.timeout == old.timeout:
            return []
        return _timeout(spec.timeout, environment, name or "")
    problems: list[Problem] = []
    if name is not None and environment is None:
        problems.append(Problem("spec.environment", f'EnvironmentConfig "{name}" does not exist'))
    if name is not None and environment is not None:
        if not environment.serves(spec.type):
            served = ", ".join(environment.session_types or ())
            problems.append(
                Problem(
                    "spec.type",
                    f'"{spec.type}" is not served by EnvironmentConfig "{name}", '
                    f"which serves: {served}",
                )
            )
        cap = environment.resources.max if environment.resources else None
        requested = (
            ResourceAmounts.model_validate(spec.resources.model_dump()) if spec.resources else None
        )
        problems += _caps(requested, cap, name)
        problems += _timeout(spec.timeout, environment, name)
    if spec.drive is not None and drive_exists is False:
        problems.append(
            Problem("spec.drive", f'Drive "{spec.drive}" does not exist in namespace "{namespace}"')
        )
    return problems


def check_drive_access(
    *,
    drive: str,
    access: str,
    owner: str | None,
    username: str,
    groups: Iterable[str],
    admin_groups: Iterable[str],
) -> Problem | None:
    """A private drive is for its owner's sessions only (and admins')."""
    if access != "private" or owner in (None, username):
        return None
    if set(admin_groups).intersection(groups):
        return None
    return Problem(
        "spec.drive",
        f'Drive "{drive}" is private to "{owner}"; "{username}" may not use it',
    )
