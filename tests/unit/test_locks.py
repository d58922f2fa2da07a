"""Drive lock decisions as tables: who is granted, who waits, what is stale."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kabin.api.drive import Hold
from kabin.logic.drives import claimants, default_drive_name
from kabin.logic.locks import Claimant, decide

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: int) -> datetime:
    return NOW - timedelta(seconds=seconds)


def c(name: str, age: int, *, wants: bool = True, pods: tuple[str, ...] = ()) -> Claimant:
    return Claimant(name=name, created=at(age), wants=wants, pod_phases=pods)


@pytest.mark.parametrize(
    ("holder", "claimants", "orphan", "expected_holder", "expected_waiting", "released"),
    [
        (None, [], False, None, [], None),
        (None, [c("b", 5), c("a", 10)], False, "a", ["b"], None),
        (None, [c("b", 10), c("a", 10)], False, "a", ["b"], None),
        ("a", [c("a", 10, pods=("Running",)), c("b", 5)], False, "a", ["b"], None),
        ("a", [c("a", 10), c("b", 5)], False, "a", ["b"], None),
        ("a", [c("a", 10, wants=False, pods=("Succeeded",)), c("b", 5)], False, "b", [], "a"),
        ("a", [c("a", 10, wants=False, pods=("Running",)), c("b", 5)], False, "a", ["b"], None),
        (
            "a",
            [c("a", 10, wants=False, pods=("Succeeded", "Running")), c("b", 5)],
            False,
            "a",
            ["b"],
            None,
        ),
        ("a", [c("a", 10, wants=False), c("b", 5)], False, "b", [], "a"),
        ("gone", [c("b", 5)], False, "b", [], "gone"),
        ("gone", [c("b", 5)], True, "gone", ["b"], None),
        ("a", [c("a", 10, wants=False, pods=("Failed",))], False, None, [], "a"),
        (None, [c("a", 10, wants=False), c("b", 5)], False, "b", [], None),
    ],
    ids=[
        "nobody-wants-it",
        "oldest-waiter-first",
        "same-second-by-name",
        "holder-running-keeps-it",
        "granted-before-its-pods-exist",
        "finished-holder-hands-over",
        "holder-ending-but-still-writing",
        "one-replica-still-writing",
        "deleted-before-any-pod",
        "stale-hold-of-a-vanished-session",
        "vanished-session-whose-pods-still-terminate",
        "failed-holder-frees-it",
        "finished-waiters-are-skipped",
    ],
)
def test_decide(
    holder: str | None,
    claimants: list[Claimant],
    orphan: bool,
    expected_holder: str | None,
    expected_waiting: list[str],
    released: str | None,
) -> None:
    current = Hold(session=holder, since=at(100)) if holder else None
    decision = decide(holder=current, claimants=claimants, orphan_writing=orphan, now=NOW)
    assert (decision.holder.session if decision.holder else None) == expected_holder
    assert [w.session for w in decision.waiting] == expected_waiting
    assert decision.released == released


def test_a_continued_hold_keeps_its_start_and_a_new_one_starts_now() -> None:
    kept = decide(
        holder=Hold(session="a", since=at(100)),
        claimants=[c("a", 200)],
        orphan_writing=False,
        now=NOW,
    )
    assert kept.holder is not None
    assert kept.holder.since == at(100)
    fresh = decide(holder=None, claimants=[c("a", 200)], orphan_writing=False, now=NOW)
    assert fresh.holder is not None
    assert fresh.holder.since == NOW


@pytest.mark.parametrize(
    ("user", "name"),
    [
        ("alice", "alice-home"),
        ("Alice.Smith@Example.org", "alice.smith-example.org-home"),
        ("system:serviceaccount:ns:ci", "system-serviceaccount-ns-ci-home"),
        ("--weird__", "weird-home"),
        ("@@@", "user-home"),
    ],
    ids=["plain", "email", "service-account", "edges", "nothing-left"],
)
def test_default_drive_name_is_dns_safe(user: str, name: str) -> None:
    assert default_drive_name(user) == name


def _session(name: str, user: str, drive: str | None = None) -> dict[str, object]:
    spec: dict[str, object] = {"type": "notebook", "image": "x", "user": user}
    if drive:
        spec["drive"] = drive
    return {
        "metadata": {"name": name, "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": spec,
        "status": {"phase": "Pending"},
    }


def test_a_default_drive_that_is_not_the_users_is_never_theirs() -> None:
    from kabin.api.names import Reason
    from kabin.logic.drives import claimants, view

    trap = {"metadata": {"name": "alice-home"}, "spec": {"owner": "bob", "access": "shared"}}
    seen = view("alice-home", session="work", drive=trap, default_for="alice")
    assert not seen.granted and seen.reason == Reason.DRIVE_NOT_OWNED
    assert 'belongs to "bob", not to "alice"' in (seen.message or "")
    # Named explicitly (a shared drive of Bob's she may use), it is a drive like any other.
    assert view("alice-home", session="work", drive=trap).reason == Reason.WAITING
    found, _ = claimants(
        [_session("work", "alice"), _session("named", "carol", drive="alice-home")],
        [],
        drive="alice-home",
        deleting=False,
        owner="bob",
    )
    assert {c.name: c.wants for c in found} == {"work": False, "named": True}


def _in_phase(name: str, phase: str, *, renew: str | None = None, acted: str | None = None) -> dict:
    notes = {"kabin.dev/renew": renew} if renew else {}
    status: dict = {"phase": phase}
    if acted:
        status["renewal"] = {"token": acted, "time": "2026-01-01T00:00:00Z"}
    return {
        "metadata": {"name": name, "creationTimestamp": "2026-01-01T00:00:00Z",
                     "annotations": notes},
        "spec": {"type": "headless", "image": "busybox", "drive": "data"},
        "status": status,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("session", "wants"),
    [
        (_in_phase("a", "Running"), True),
        (_in_phase("a", "Succeeded"), False),
        (_in_phase("a", "Expired"), False),
        (_in_phase("a", "Expired", renew="r1", acted="r1"), False),  # acted on, expired again
        # Renewed and not yet acted on: it comes back, so it keeps (or waits for) its drive.
        (_in_phase("a", "Expired", renew="r2", acted="r1"), True),
        (_in_phase("a", "Expired", renew="r1"), True),
    ],
)
def test_an_expired_session_renewed_wants_its_drive_before_the_operator_acts(
    session: dict, wants: bool
) -> None:
    found, _ = claimants([session], [], drive="data", deleting=False)
    assert [x.wants for x in found] == [wants]
