"""The gateway's pure decisions: Skaha parameters to manifests, records in each
version's words, status filters, namespaces of users, tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kabin.client.errors import Invalid
from kabin.gateway import protocol
from kabin.gateway.identity import (
    Identity,
    StaticTokens,
    TokenReviews,
    Unauthenticated,
    bearer,
    namespace_of,
    read_token_file,
)

IMAGE = "images.canfar.net/skaha/terminal:1.1.1"
ENVIRONMENTS = [
    {
        "metadata": {"name": "b-notebook"},
        "spec": {"image": "jupyter", "sessionTypes": ["notebook"]},
    },
    {"metadata": {"name": "a-notebook"}, "spec": {"image": "other", "sessionTypes": ["notebook"]}},
    {"metadata": {"name": "shell"}, "spec": {"image": "shell", "sessionTypes": ["ssh"]}},
]


def create(*pairs: tuple[str, str], environments: list[Any] | None = None) -> dict[str, Any]:
    return protocol.create_manifest(
        protocol.Params(pairs),
        session_id="abcdefgh",
        namespace="kabin-alice",
        environments=environments or [],
    )


def test_create_from_skahas_parameters() -> None:
    manifest = create(
        ("name", "probe-1"),
        ("image", IMAGE),
        ("cores", "2"),
        ("ram", "8"),
        ("type", "headless"),
        ("cmd", "printenv"),
        ("args", "TEST  REPLICA_ID"),
        ("env", "TEST=a=b"),
        ("env", "REPLICA_ID=1"),
    )
    assert manifest["metadata"] == {
        "name": "abcdefgh",
        "namespace": "kabin-alice",
        "annotations": {"kabin.dev/name": "probe-1"},
    }
    assert manifest["spec"] == {
        "type": "headless",
        "image": IMAGE,
        "resources": {"cpu": 2, "memory": "8Gi"},
        "command": ["printenv"],
        "args": ["TEST", "REPLICA_ID"],
        "env": [{"name": "TEST", "value": "a=b"}, {"name": "REPLICA_ID", "value": "1"}],
    }


@pytest.mark.parametrize(
    ("pairs", "environment"),
    [
        pytest.param([("type", "notebook"), ("image", "jupyter")], "b-notebook", id="same-image"),
        pytest.param([("type", "NOTEBOOK"), ("image", "x")], "a-notebook", id="first-serving"),
        pytest.param([("type", "desktop"), ("image", "x")], None, id="none-serves"),
        pytest.param([("type", "headless"), ("image", "jupyter")], None, id="headless-alone"),
        pytest.param([("type", "ssh"), ("environment", "mine")], "mine", id="named"),
    ],
)
def test_interactive_sessions_run_in_an_environment(
    pairs: list[tuple[str, str]], environment: str | None
) -> None:
    spec = create(("name", "n"), *pairs, environments=ENVIRONMENTS)["spec"]
    assert spec.get("environment") == environment


@pytest.mark.parametrize(
    ("pairs", "words"),
    [
        ([("image", IMAGE)], "name: required"),
        ([("name", "a.b"), ("image", IMAGE)], "name: 'a.b'"),
        ([("name", "a")], "image: required"),
        ([("name", "a"), ("image", IMAGE), ("cores", "x")], "cores: 'x' is not a number"),
        ([("name", "a"), ("image", IMAGE), ("ram", "1e400")], "ram: '1e400' is not a number"),
        ([("name", "a"), ("image", IMAGE), ("gpus", "0.5")], "gpus: '0.5' must be a whole"),
        ([("name", "a"), ("image", IMAGE), ("env", "X")], "env: 'X' must be KEY=VALUE"),
        ([("name", "a"), ("image", IMAGE), ("type", "x")], "type: 'x' is not a session type"),
        ([("name", "a"), ("name", "b"), ("image", IMAGE)], "name: given 2 times"),
    ],
)
def test_bad_parameters_are_named(pairs: list[tuple[str, str]], words: str) -> None:
    with pytest.raises(Invalid, match=words.replace(".", r"\.").replace("(", r"\(")):
        create(*pairs)


def test_parameter_names_are_case_insensitive() -> None:
    assert create(("NAME", "a"), ("Image", IMAGE))["spec"]["image"] == IMAGE


SESSION = {
    "metadata": {
        "name": "abcdefgh",
        "namespace": "kabin-alice",
        "creationTimestamp": "2026-01-02T03:04:05Z",
        "annotations": {"kabin.dev/name": "probe-1"},
    },
    "spec": {"type": "headless", "image": IMAGE, "user": "alice"},
    "status": {"phase": "Succeeded", "startTime": "2026-01-02T03:04:06.123456Z"},
}


@pytest.mark.parametrize(
    ("phase", "v0", "v1"),
    [
        ("Pending", "Pending", "Pending"),
        ("Running", "Running", "Running"),
        ("Succeeded", "Succeeded", "Completed"),
        ("Failed", "Failed", "Failed"),
        ("Expired", "Failed", "Failed"),
        ("Terminating", "Terminating", "Terminating"),
        ("Suspended", "Pending", "Pending"),  # as Skaha's v1 says of a suspended Job
    ],
)
def test_status_words_per_version(phase: str, v0: str, v1: str) -> None:
    obj = {**SESSION, "status": {**SESSION["status"], "phase": phase}}
    assert protocol.record(obj, images={}, version="v0")["status"] == v0
    assert protocol.record(obj, images={}, version="v1")["status"] == v1


def test_record_has_skahas_name_and_whole_second_times() -> None:
    shown = protocol.record(SESSION, images={}, version="v1")
    assert (shown["id"], shown["name"], shown["userid"]) == ("abcdefgh", "probe-1", "alice")
    assert shown["startTime"] == "2026-01-02T03:04:06Z"
    assert shown["connectURL"] == "not-applicable"
    assert protocol.public(shown) == {
        "userid": "alice",
        "type": "headless",
        "status": "Completed",
        "startTime": "2026-01-02T03:04:06Z",
    }


@pytest.mark.parametrize(
    ("word", "phases"),
    [
        ("Succeeded", {"Succeeded"}),
        ("completed", {"Succeeded"}),
        ("Failed", {"Failed", "Expired"}),
        ("Error", {"Failed", "Expired"}),
        ("Expired", {"Expired"}),
        ("RUNNING", {"Running"}),
        ("Pending", {"Pending", "Suspended"}),
        ("suspended", {"Suspended"}),
    ],
)
def test_status_filters_accept_both_vocabularies(word: str, phases: set[str]) -> None:
    assert protocol.filter_status(word) == phases


def test_events_table() -> None:
    assert protocol.events_table([]) == "<none>\n"
    table = protocol.events_table(
        [
            {
                "type": "Normal",
                "reason": "Scheduled",
                "message": "placed\non cpu-1",
                "firstTimestamp": "2026-01-01T00:00:00Z",
                "lastTimestamp": "2026-01-01T00:00:01Z",
            }
        ]
    ).splitlines()
    assert table[0].split() == ["TYPE", "REASON", "MESSAGE", "FIRST-TIME", "LAST-TIME"]
    assert table[1].split() == ["Normal", "Scheduled", "placed", "on", "cpu-1",
                                "2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z"]  # fmt: skip


def test_context_from_the_largest_node() -> None:
    nodes = [
        {"status": {"allocatable": {"cpu": "16", "memory": "64Gi"}}},
        {"status": {"allocatable": {"cpu": "32", "memory": "256Gi", "nvidia.com/gpu": "8"}}},
        {"spec": {"unschedulable": True}, "status": {"allocatable": {"cpu": "999"}}},
    ]
    context = protocol.context(nodes)
    assert context["cores"]["options"] == list(range(1, 33))
    assert context["memoryGB"]["options"] == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert context["gpus"]["options"] == list(range(1, 9))


def test_images_of_environments() -> None:
    assert protocol.images(ENVIRONMENTS, "notebook") == [
        {"id": "jupyter", "types": ["notebook"], "digest": "<none>"},
        {"id": "other", "types": ["notebook"], "digest": "<none>"},
    ]


def test_ids_look_like_skahas() -> None:
    ids = {protocol.new_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == 8 and i[0].isalpha() and i.isalnum() and i.islower() for i in ids)


@pytest.mark.parametrize(
    ("user", "namespace"),
    [
        ("alice", "kabin-alice"),
        ("Alice", "kabin-alice-3bc51062"[: len("kabin-alice-") + 6]),
        ("bob@example.org", None),
        ("system:serviceaccount:ns:robot", None),
        ("x" * 100, None),
    ],
)
def test_namespaces_of_users(user: str, namespace: str | None) -> None:
    made = namespace_of(user, "kabin-{user}")
    assert len(made) <= 63 and made.startswith("kabin-")
    assert made == namespace_of(user, "kabin-{user}")  # stable
    if namespace is not None and user == user.lower():
        assert made == namespace
    if user != user.lower() or "@" in user or ":" in user or len(user) > 57:
        assert made != f"kabin-{user.lower()}"  # changed names carry a hash: no collisions
    assert namespace_of("Alice", "kabin-{user}") != namespace_of("alice", "kabin-{user}")


def test_bearer_header() -> None:
    assert bearer("Bearer abc") == "abc"
    assert bearer("bearer  abc ") == "abc"
    for bad in (None, "", "Basic abc", "Bearer", "Bearer   "):
        with pytest.raises(Unauthenticated):
            bearer(bad)


async def test_token_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens.csv"
    path.write_text('# comment\nt1,alice,1,"a,b"\nt2,bob,2\n')
    tokens = StaticTokens(read_token_file(path))
    assert await tokens("t1") == Identity("alice", ("a", "b"))
    assert await tokens("t2") == Identity("bob", ())
    with pytest.raises(Unauthenticated):
        await tokens("t3")
    path.write_text("just-a-token\n")
    with pytest.raises(ValueError, match=r"tokens\.csv:1"):
        read_token_file(path)


async def test_token_reviews_are_cached() -> None:
    asked: list[str] = []

    async def review(token: str) -> dict[str, Any]:
        asked.append(token)
        if token == "good":
            return {"authenticated": True, "user": {"username": "alice", "groups": ["g"]}}
        return {"authenticated": False, "error": "expired"}

    reviews = TokenReviews(review, ttl=60, negative_ttl=10)
    assert await reviews("good") == Identity("alice", ("g",))
    assert await reviews("good") == Identity("alice", ("g",))
    assert asked == ["good"]
    # A refused token is refused again without a second review, and the API server's
    # reason ("expired") is not told to whoever sent it.
    for _ in range(3):
        with pytest.raises(Unauthenticated) as refused:
            await reviews("bad")
        assert "expired" not in str(refused.value)
    assert asked == ["good", "bad"]


async def test_failed_sign_ins_are_held_off_per_address_but_known_tokens_pass() -> None:
    from kabin.gateway.identity import FailedSignIns, SignIn, StaticTokens, TooMany

    sign_in = SignIn(StaticTokens({"good": Identity("alice")}), FailedSignIns(per_minute=3))
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            await sign_in("bogus", "10.0.0.9")
    with pytest.raises(TooMany) as held:
        await sign_in("bogus", "10.0.0.9")
    assert 1 <= held.value.retry_after <= 61
    # The same address with a good token (people behind one ingress), and another
    # address, are not held off.
    assert await sign_in("good", "10.0.0.9") == Identity("alice")
    with pytest.raises(Unauthenticated):
        await sign_in("bogus", "10.0.0.10")


def test_proxy_headers_never_carry_system_groups() -> None:
    from aiohttp.test_utils import make_mocked_request

    from kabin.gateway.dashboard.signin import proxy_identity
    from kabin.settings import GatewaySettings

    trusted = GatewaySettings(trust_proxy_headers=True, proxy_secret="s3cret")
    request = make_mocked_request(
        "GET",
        "/",
        headers={
            "X-Forwarded-User": "alice",
            "X-Forwarded-Groups": "team, system:masters,",
            "X-Kabin-Proxy-Secret": "s3cret",
        },
    )
    assert proxy_identity(request, trusted) == Identity("alice", ("team",))
    assert proxy_identity(request, GatewaySettings()) is None


@pytest.mark.parametrize(
    ("headers", "words"),
    [
        ({"X-Forwarded-User": "alice"}, "did not come through the proxy"),
        ({"X-Forwarded-User": "alice", "X-Kabin-Proxy-Secret": "guess"}, "through the proxy"),
        (
            {
                "X-Forwarded-User": "system:serviceaccount:kabin-system:kabin-operator",
                "X-Kabin-Proxy-Secret": "s3cret",
            },
            "system identity",
        ),
    ],
    ids=["no-secret", "wrong-secret", "system-user"],
)
def test_forged_proxy_headers_are_refused(headers: dict[str, str], words: str) -> None:
    from aiohttp.test_utils import make_mocked_request

    from kabin.gateway.dashboard.signin import proxy_identity
    from kabin.settings import GatewaySettings

    trusted = GatewaySettings(trust_proxy_headers=True, proxy_secret="s3cret")
    with pytest.raises(Unauthenticated, match=words):
        proxy_identity(make_mocked_request("GET", "/", headers=headers), trusted)


def test_trusting_proxy_headers_needs_a_secret() -> None:
    from pydantic import ValidationError

    from kabin.settings import GatewaySettings

    with pytest.raises(ValidationError, match="proxy_secret: required"):
        GatewaySettings(trust_proxy_headers=True)


def test_tokens_that_are_not_utf8_are_refused() -> None:
    with pytest.raises(Unauthenticated):
        bearer("Bearer \udcff")


async def test_the_token_file_is_read_again_when_it_changes(tmp_path: Any) -> None:
    path = tmp_path / "tokens.csv"
    path.write_text('t-alice,alice,alice,"kabin:users"\n')
    tokens = StaticTokens.from_file(path)
    assert await tokens("t-alice") == Identity("alice", ("kabin:users",))
    with pytest.raises(Unauthenticated):
        await tokens("t-bob")
    path.write_text('t-alice,alice,alice,"kabin:users"\nt-bob,bob,bob,"kabin:users"\n')
    assert await tokens("t-bob") == Identity("bob", ("kabin:users",))
    # A file broken while being edited keeps the tokens read before.
    path.write_text("t-carol\n")
    assert await tokens("t-bob") == Identity("bob", ("kabin:users",))
    # Removing a line signs that user out.
    path.write_text('t-alice,alice,alice,"kabin:users"\n')
    with pytest.raises(Unauthenticated):
        await tokens("t-bob")
