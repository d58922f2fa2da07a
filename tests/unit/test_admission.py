"""Admission decisions as tables: identity stamping and a Session's fit in its environment."""

from __future__ import annotations

from typing import Any

import pytest

from kabin.api.environment import EnvironmentConfigSpec
from kabin.api.session import SessionSpec
from kabin.logic.admission import Problem, check_session, explain, stamp_owner

ADMINS = ("kabin:admins",)


@pytest.mark.parametrize(
    ("operation", "given", "previous", "username", "groups", "value", "problem"),
    [
        ("CREATE", None, None, "alice", (), "alice", None),
        ("CREATE", "alice", None, "alice", (), None, None),
        ("CREATE", "bob", None, "alice", (), None, 'may only be "alice"'),
        ("CREATE", "bob", None, "carol", ADMINS, None, None),
        ("UPDATE", None, "alice", "alice", (), "alice", None),
        ("UPDATE", "alice", "alice", "alice", (), None, None),
        ("UPDATE", "bob", "alice", "alice", (), None, 'is immutable: it is "alice", not "bob"'),
        ("UPDATE", "bob", "alice", "carol", ADMINS, None, "is immutable"),
        ("UPDATE", None, None, "alice", (), "alice", None),
    ],
    ids=[
        "create-stamps-requester",
        "create-naming-self",
        "create-forging-refused",
        "create-admin-for-other",
        "update-omitted-restored",
        "update-unchanged",
        "update-change-refused",
        "update-change-refused-even-for-admins",
        "update-of-unstamped-object-stamps",
    ],
)
def test_stamp_owner(
    operation: Any,
    given: str | None,
    previous: str | None,
    username: str,
    groups: tuple[str, ...],
    value: str | None,
    problem: str | None,
) -> None:
    got_value, got_problem = stamp_owner(
        field="spec.user",
        operation=operation,
        given=given,
        previous=previous,
        username=username,
        groups=groups,
        admin_groups=ADMINS,
    )
    assert got_value == value
    if problem is None:
        assert got_problem is None
    else:
        assert got_problem is not None
        assert got_problem.field == "spec.user"
        assert problem in got_problem.message


CAPPED = EnvironmentConfigSpec.model_validate(
    {
        "image": "x:1",
        "sessionTypes": ["notebook", "headless"],
        "resources": {"max": {"cpu": "32", "memory": "256Gi", "gpu": 8}},
        "timeouts": {"default": 3600, "max": 86400},
    }
)
UNCAPPED = EnvironmentConfigSpec.model_validate({"image": "x:1"})


def spec(**fields: Any) -> SessionSpec:
    return SessionSpec.model_validate({"type": "notebook", "environment": "gpu", **fields})


@pytest.mark.parametrize(
    ("session", "environment", "drive_exists", "expected"),
    [
        (spec(), CAPPED, None, []),
        (spec(resources={"gpu": 8, "cpu": "32", "memory": "256Gi"}), CAPPED, None, []),
        (
            spec(resources={"gpu": 9}),
            CAPPED,
            None,
            ['spec.resources.gpu: 9 exceeds the maximum of 8 set by EnvironmentConfig "gpu"'],
        ),
        (
            spec(resources={"cpu": "32500m"}),
            CAPPED,
            None,
            ['spec.resources.cpu: 32500m exceeds the maximum of 32 set by EnvironmentConfig "gpu"'],
        ),
        (
            spec(resources={"memory": "1Ti", "gpu": 16}),
            CAPPED,
            None,
            [
                'spec.resources.memory: 1Ti exceeds the maximum of 256Gi set by EnvironmentConfig "gpu"',
                'spec.resources.gpu: 16 exceeds the maximum of 8 set by EnvironmentConfig "gpu"',
            ],
        ),
        (spec(resources={"gpu": 64}), UNCAPPED, None, []),
        (
            spec(type="ssh"),
            CAPPED,
            None,
            [
                'spec.type: "ssh" is not served by EnvironmentConfig "gpu", which serves: '
                "notebook, headless"
            ],
        ),
        (spec(type="ssh"), UNCAPPED, None, []),
        (
            spec(timeout=-1),
            CAPPED,
            None,
            [
                'spec.timeout: -1 (no timeout) is not allowed: EnvironmentConfig "gpu" caps timeouts '
                "at 86400 seconds"
            ],
        ),
        (
            spec(timeout=86401),
            CAPPED,
            None,
            [
                'spec.timeout: 86401 exceeds the maximum of 86400 seconds set by EnvironmentConfig "gpu"'
            ],
        ),
        (spec(timeout=-1), UNCAPPED, None, []),
        (spec(), None, None, ['spec.environment: EnvironmentConfig "gpu" does not exist']),
        (SessionSpec(type="headless", image="busybox"), None, None, []),
        (spec(drive="home"), CAPPED, True, []),
        (
            spec(drive="home"),
            CAPPED,
            False,
            ['spec.drive: Drive "home" does not exist in namespace "ns"'],
        ),
    ],
    ids=[
        "fits",
        "at-the-caps",
        "gpu-over",
        "millicores-over",
        "two-over",
        "no-caps",
        "type-not-served",
        "all-types-served",
        "no-timeout-under-cap",
        "timeout-over",
        "no-timeout-no-cap",
        "environment-missing",
        "image-only",
        "drive-exists",
        "drive-missing",
    ],
)
def test_check_session_on_create(
    session: SessionSpec,
    environment: EnvironmentConfigSpec | None,
    drive_exists: bool | None,
    expected: list[str],
) -> None:
    problems = check_session(
        spec=session, namespace="ns", environment=environment, drive_exists=drive_exists
    )
    assert [str(p) for p in problems] == expected


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            spec(timeout=60),
            spec(timeout=90000),
            [
                'spec.timeout: 90000 exceeds the maximum of 86400 seconds set by EnvironmentConfig "gpu"'
            ],
        ),
        (spec(timeout=60), spec(timeout=600), []),
        (spec(timeout=60, replicas=1), spec(timeout=60, replicas=5), []),
        (spec(resources={"gpu": 9}), spec(resources={"gpu": 9}, replicas=2), []),
    ],
    ids=["timeout-raised-over", "timeout-raised-within", "scaled", "unchanged-caps-not-rechecked"],
)
def test_check_session_on_update_checks_only_what_may_change(
    old: SessionSpec, new: SessionSpec, expected: list[str]
) -> None:
    problems = check_session(
        spec=new, namespace="ns", environment=CAPPED, drive_exists=None, old=old
    )
    assert [str(p) for p in problems] == expected


def test_explain_lists_one_problem_per_line() -> None:
    text = explain([Problem("spec.a", "bad"), Problem("spec.b", "worse")])
    assert text == "spec.a: bad\nspec.b: worse"


def test_session_without_environment_or_image_is_refused_by_the_model() -> None:
    with pytest.raises(ValueError, match=r"one of spec.environment or spec.image is required"):
        SessionSpec(type="notebook")
