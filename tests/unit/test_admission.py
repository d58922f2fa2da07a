"""Admission decisions as tables: identity stamping and a Session's fit in its environment."""

from __future__ import annotations

from typing import Any

import pytest

from kabin.api.environment import EnvironmentConfigSpec
from kabin.api.session import SessionSpec
from kabin.logic.admission import (
    Policy,
    Problem,
    check_access_change,
    check_default_drive,
    check_session,
    check_session_count,
    explain,
    stamp_owner,
)
from kabin.settings import OperatorSettings

ADMINS = ("kabin:admins",)
POLICY = Policy.of(OperatorSettings())  # 16 CPU, 64Gi, 1 GPU, 7 days a pod; 64/256Gi/8 a session


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
        admin=bool(set(groups) & set(ADMINS)),
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
        (
            spec(resources={"gpu": 64}),
            UNCAPPED,
            None,
            ["spec.resources.gpu: 64 exceeds the maximum of 1 set by the cluster's default policy"],
        ),
        (
            spec(resources={"cpu": "8"}, replicas=9),
            UNCAPPED,
            None,
            [
                "spec.replicas: 9 replicas x cpu 8 exceeds the maximum of 64 for one session "
                "set by the cluster's default policy"
            ],
        ),
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
        (
            spec(timeout=-1),
            UNCAPPED,
            None,
            [
                "spec.timeout: -1 (no timeout) is not allowed: the cluster's default policy "
                "caps timeouts at 604800 seconds"
            ],
        ),
        (
            SessionSpec(
                type="headless",
                image="busybox",
                timeout=-1,
                resources={"cpu": 256, "memory": "512Gi", "gpu": 28},
            ),
            None,
            None,
            [
                "spec.resources.cpu: 256 exceeds the maximum of 16 set by the cluster's default "
                "policy",
                "spec.resources.memory: 512Gi exceeds the maximum of 64Gi set by the cluster's "
                "default policy",
                "spec.resources.gpu: 28 exceeds the maximum of 1 set by the cluster's default "
                "policy",
                "spec.timeout: -1 (no timeout) is not allowed: the cluster's default policy caps "
                "timeouts at 604800 seconds",
            ],
        ),
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
        "no-env-caps-policy-caps",
        "replicas-times-cpu-over",
        "type-not-served",
        "all-types-served",
        "no-timeout-under-cap",
        "timeout-over",
        "no-timeout-policy-cap",
        "no-environment-policy-caps",
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
        spec=session,
        namespace="ns",
        environment=environment,
        drive_exists=drive_exists,
        policy=POLICY,
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
        (spec(resources={"gpu": 1}), spec(resources={"gpu": 1}, replicas=8), []),
        (
            spec(resources={"gpu": 1}),
            spec(resources={"gpu": 1}, replicas=9),
            [
                "spec.replicas: 9 replicas x gpu 1 exceeds the maximum of 8 for one session set "
                "by the cluster's default policy"
            ],
        ),
        (spec(resources={"gpu": 9}), spec(resources={"gpu": 9}), []),
    ],
    ids=[
        "timeout-raised-over",
        "timeout-raised-within",
        "scaled",
        "scaled-to-the-session-cap",
        "scaled-over-the-session-cap",
        "unchanged-caps-not-rechecked",
    ],
)
def test_check_session_on_update_checks_only_what_may_change(
    old: SessionSpec, new: SessionSpec, expected: list[str]
) -> None:
    problems = check_session(
        spec=new, namespace="ns", environment=CAPPED, drive_exists=None, policy=POLICY, old=old
    )
    assert [str(p) for p in problems] == expected


def test_explain_lists_one_problem_per_line() -> None:
    text = explain([Problem("spec.a", "bad"), Problem("spec.b", "worse")])
    assert text == "spec.a: bad\nspec.b: worse"


def test_session_without_environment_or_image_is_refused_by_the_model() -> None:
    with pytest.raises(ValueError, match=r"one of spec.environment or spec.image is required"):
        SessionSpec(type="notebook")


def test_environment_caps_replace_the_policy_where_set() -> None:
    # CAPPED allows 8 GPUs a pod where the policy allows 1: the environment's word holds.
    problems = check_session(
        spec=spec(resources={"gpu": 8}),
        namespace="ns",
        environment=CAPPED,
        drive_exists=None,
        policy=POLICY,
    )
    assert problems == []


@pytest.mark.parametrize(
    ("owner", "user", "problem"),
    [("alice", "alice", None), ("bob", "alice", 'belongs to "bob", not to "alice"')],
)
def test_default_drive_only_when_it_is_the_users(
    owner: str, user: str, problem: str | None
) -> None:
    found = check_default_drive(drive=f"{user}-home", owner=owner, user=user)
    assert (found is None) if problem is None else (found is not None and problem in str(found))


@pytest.mark.parametrize(
    ("old", "new", "owner", "username", "admin", "refused"),
    [
        ("private", "shared", "alice", "alice", False, False),
        ("private", "shared", "alice", "bob", False, True),
        ("private", "shared", "alice", "carol", True, False),
        ("shared", "shared", "alice", "bob", False, False),
    ],
    ids=["owner", "another-user", "admin", "unchanged"],
)
def test_only_the_owner_changes_a_drives_access(
    old: str, new: str, owner: str, username: str, admin: bool, refused: bool
) -> None:
    problem = check_access_change(
        drive="d", old=old, new=new, owner=owner, username=username, admin=admin
    )
    assert (problem is not None) == refused
    if problem is not None:
        assert problem.field == "spec.access" and '"alice"' in problem.message


@pytest.mark.parametrize(
    ("active", "most", "refused"), [(4, 5, False), (5, 5, True), (50, 0, False)]
)
def test_session_count(active: int, most: int, refused: bool) -> None:
    problem = check_session_count(user="alice", active=active, most=most)
    assert (problem is not None) == refused


def test_an_environment_may_not_run_sessions_as_the_agents_uid() -> None:
    from kabin.logic.admission import check_agent_uid

    as_agent = EnvironmentConfigSpec.model_validate(
        {"image": "x:1", "podOverrides": {"securityContext": {"runAsUser": 1999999}}}
    )
    refused = check_agent_uid(as_agent, 1999999)
    assert refused is not None and refused.field == "spec.environment"
    assert "reserved for kabin's agent" in refused.message
    assert check_agent_uid(CAPPED, 1999999) is None
    assert check_agent_uid(None, 1999999) is None
