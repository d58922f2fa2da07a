"""Where a session is served and who may open it (kabin.logic.access)."""

from __future__ import annotations

import pytest

from kabin.logic.access import Origin, may_open, safe_next

ORIGIN = Origin.parse("http://sessions.localhost:8088")


def test_each_session_has_a_host_of_its_own() -> None:
    assert ORIGIN.host("kabin-alice", "lab") == "lab.kabin-alice.sessions.localhost"
    assert ORIGIN.url("kabin-alice", "lab", "/session/notebook/kabin-alice/lab/lab") == (
        "http://lab.kabin-alice.sessions.localhost:8088/session/notebook/kabin-alice/lab/lab"
    )
    assert Origin.parse("https://sessions.example.org").url("ns", "s") == (
        "https://s.ns.sessions.example.org/"
    )


@pytest.mark.parametrize(
    ("host", "found"),
    [
        ("lab.kabin-alice.sessions.localhost:8088", ("kabin-alice", "lab")),
        ("LAB.kabin-alice.sessions.localhost", ("kabin-alice", "lab")),
        ("my.dotted.name.ns.sessions.localhost", ("ns", "my.dotted.name")),
        ("sessions.localhost", None),
        ("ns.sessions.localhost", None),
        ("lab.ns.sessions.localhost.evil.example", None),
        ("lab.ns.evilsessions.localhost", None),
        ("lab..ns.sessions.localhost", None),
        ("-x.ns.sessions.localhost", None),
        ("lab.ns_x.sessions.localhost", None),
    ],
)
def test_a_host_names_its_session_or_none(host: str, found: tuple[str, str] | None) -> None:
    assert ORIGIN.session_of(host) == found


def test_only_urls_are_origins() -> None:
    with pytest.raises(ValueError, match="sessions_url"):
        Origin.parse("sessions.localhost")


@pytest.mark.parametrize(
    ("owner", "user", "groups", "allowed"),
    [
        ("alice", "alice", (), True),
        ("alice", "bob", (), False),
        ("alice", "carol", ("kabin:admins",), True),
        (None, "alice", (), False),
    ],
)
def test_only_the_owner_and_admins_may_open(
    owner: str | None, user: str, groups: tuple[str, ...], allowed: bool
) -> None:
    assert (
        may_open(owner=owner, user=user, groups=groups, admin_groups=("kabin:admins",)) is allowed
    )


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("/session/notebook/ns/lab/lab", "/session/notebook/ns/lab/lab"),
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        (None, "/"),
    ],
)
def test_after_signing_in_a_browser_stays_on_the_host(given: str | None, kept: str) -> None:
    assert safe_next(given) == kept


def test_the_ticket_goes_under_the_sessions_base_path() -> None:
    from kabin.logic.access import is_signin, signin_path

    assert (
        signin_path("/session/notebook/ns/lab/lab/tree") == "/session/notebook/ns/lab/_kabin/signin"
    )
    assert signin_path("//evil.example/") == "/_kabin/signin"
    assert is_signin("/session/notebook/ns/lab/_kabin/signin")
    assert not is_signin("/session/notebook/ns/lab/lab")
