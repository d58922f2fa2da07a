"""Malformed requests to `kabin gateway`: each gets a clear 4xx naming what is wrong,
as `text/plain`, and none creates anything. A hypothesis search over the query
parameters finds no 500."""

from __future__ import annotations

import subprocess
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Gateway, Person

pytestmark = pytest.mark.integration

IMAGE = "images.canfar.net/skaha/terminal:1.1.1"
OK = {"name": "ok", "image": IMAGE}


def with_ok(**changes: Any) -> dict[str, Any]:
    """A valid create with some parameters changed (None removes one)."""
    merged = {**OK, **changes}
    return {k: v for k, v in merged.items() if v is not None}


# (method, path under /skaha, query parameters, status, words the answer must hold)
CASES: list[tuple[str, str, Any, int, str]] = [
    ("POST", "/v0/session", {}, 400, "name: required"),
    ("POST", "/v0/session", {"name": "x"}, 400, "image: required"),
    ("POST", "/v0/session", with_ok(name=""), 400, "name"),
    ("POST", "/v0/session", with_ok(name="bad name"), 400, "name: 'bad name'"),
    ("POST", "/v0/session", with_ok(name="a_b"), 400, "name: 'a_b'"),
    ("POST", "/v0/session", with_ok(name="n" * 64), 400, "at most 63"),
    (
        "POST",
        "/v0/session",
        [("name", "a"), ("name", "b"), ("image", IMAGE)],
        400,
        "name: given 2 times",
    ),
    ("POST", "/v0/session", with_ok(image=""), 400, "image"),
    ("POST", "/v0/session", with_ok(image="has space"), 400, "image: 'has space'"),
    ("POST", "/v0/session", with_ok(image="i" * 2000), 400, "image"),
    ("POST", "/v0/session", with_ok(type="bogus"), 400, "type: 'bogus'"),
    ("POST", "/v0/session", with_ok(type="desktop-app"), 400, "type"),
    ("POST", "/v0/session", with_ok(cores="abc"), 400, "cores: 'abc' is not a number"),
    ("POST", "/v0/session", with_ok(cores="0"), 400, "cores: 0 must be more than 0"),
    ("POST", "/v0/session", with_ok(cores="-1"), 400, "cores"),
    ("POST", "/v0/session", with_ok(cores="nan"), 400, "cores"),
    ("POST", "/v0/session", with_ok(cores="inf"), 400, "cores"),
    ("POST", "/v0/session", with_ok(cores="1000"), 400, "cores: 1000 exceeds the maximum of 256"),
    ("POST", "/v0/session", with_ok(ram="lots"), 400, "ram: 'lots'"),
    ("POST", "/v0/session", with_ok(ram="0"), 400, "ram"),
    ("POST", "/v0/session", with_ok(ram="100000"), 400, "ram: 100000 exceeds the maximum of 512"),
    ("POST", "/v0/session", with_ok(gpus="1.5"), 400, "gpus: '1.5' must be a whole number"),
    ("POST", "/v0/session", with_ok(gpus="-1"), 400, "gpus"),
    ("POST", "/v0/session", with_ok(gpus="100"), 400, "gpus: 100 exceeds the maximum of 28"),
    ("POST", "/v0/session", with_ok(env="NOEQUALS"), 400, "env: 'NOEQUALS' must be KEY=VALUE"),
    ("POST", "/v0/session", with_ok(env="1BAD=x"), 400, "env: '1BAD'"),
    ("POST", "/v0/session", with_ok(env="=value"), 400, "env: ''"),
    ("POST", "/v0/session", with_ok(env="A B=c"), 400, "env: 'A B'"),
    ("POST", "/v0/session", with_ok(timeout="soon"), 400, "timeout: 'soon'"),
    ("POST", "/v0/session", with_ok(timeout="-5"), 400, "timeout"),
    ("POST", "/v0/session", with_ok(drive="Bad_Drive"), 400, "drive"),
    (
        "POST",
        "/v0/session",
        with_ok(environment="nope", type="notebook"),
        400,
        'EnvironmentConfig "nope" does not exist',
    ),
    (
        "POST",
        "/v1/session",
        with_ok(type="notebook", environment="pytorch-gpu", cores="200"),
        400,
        "spec.resources.cpu: 200 exceeds the maximum of 32",
    ),
    ("POST", "/v1/session", with_ok(environment="ssh", type="notebook"), 400, "spec.type"),
    (
        "POST",
        "/v1/session",
        with_ok(environment="ssh", type="ssh", timeout="999999"),
        400,
        "spec.timeout",
    ),
    ("POST", "/v0/session", [*OK.items(), ("cmd", "a"), ("cmd", "b")], 400, "cmd: given 2 times"),
    (
        "POST",
        "/v0/session",
        [*OK.items(), ("args", "a"), ("args", "b")],
        400,
        "args: given 2 times",
    ),
    ("GET", "/v0/session", {"type": "bogus"}, 400, "type: 'bogus'"),
    ("GET", "/v0/session", {"status": "Sleeping"}, 400, "status: 'Sleeping'"),
    ("GET", "/v0/session", {"view": "bogus"}, 400, "view: 'bogus'"),
    (
        "GET",
        "/v1/session",
        [("type", "headless"), ("type", "notebook")],
        400,
        "type: given 2 times",
    ),
    ("GET", "/v0/session/NOT-AN-ID", {}, 404, "not found"),
    ("GET", "/v0/session/zzzzzzzz", {"view": "logs"}, 404, "not found"),
    ("GET", "/v0/session/zzzzzzzz", {"view": "events"}, 404, "not found"),
    ("POST", "/v1/session/zzzzzzzz", {"action": "renew"}, 404, "not found"),
    ("DELETE", "/v0/session/zzzzzzzz", {}, 404, "not found"),
    ("POST", "/v1/session/EXISTING", {}, 400, "action: required"),
    ("POST", "/v1/session/EXISTING", {"action": "explode"}, 400, "action: 'explode'"),
    ("GET", "/v1/image", {"type": "bogus"}, 400, "type: 'bogus'"),
    ("GET", "/v2/session", {}, 404, "Not Found"),
    ("PUT", "/v0/session", {}, 405, "Method Not Allowed"),
    ("GET", "/v0/session/", {}, 404, "Not Found"),
]


def names(person: Person) -> list[str]:
    out = subprocess.run(
        ["kubectl", "get", "sessions", "-n", person.namespace, "-o", "name"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(out.split())


@pytest.fixture(scope="module")
def someone(gateway: Gateway) -> tuple[Person, str]:
    """A person with one valid session, whose id the cases that need one use."""
    me = gateway.person()
    answer = httpx.post(
        f"{gateway.skaha}/v1/session",
        params={**OK, "cmd": "sleep", "args": "600"},
        headers={"Authorization": f"Bearer {me.token}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return me, answer.text.strip()


def test_malformed_requests_get_clear_4xx_and_create_nothing(
    gateway: Gateway, someone: tuple[Person, str]
) -> None:
    me, existing = someone
    before = names(me)
    failures = []
    with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {me.token}"}) as http:
        for method, path, query, status, words in CASES:
            url = f"{gateway.skaha}{path.replace('EXISTING', existing)}"
            answer = http.request(method, url, params=query)
            if (
                answer.status_code != status
                or words not in answer.text
                or not answer.headers["content-type"].startswith("text/plain")
            ):
                failures.append((method, path, query, answer.status_code, answer.text))
        # The same in a urlencoded body, as a form would send it, and in a body with no
        # Content-Type; a body that is not UTF-8; a token that is not.
        answer = http.post(f"{gateway.skaha}/v0/session", data={"name": "a b", "image": IMAGE})
        if answer.status_code != 400 or "name: 'a b'" not in answer.text:
            failures.append(("POST body", answer.status_code, answer.text))
        raw = http.build_request(
            "POST", f"{gateway.skaha}/v0/session", content=f"name=a+b&image={IMAGE}"
        )
        raw.headers.pop("Content-Type", None)  # httpx sets none for raw content
        answer = http.send(raw)
        if answer.status_code != 400 or "name: 'a b'" not in answer.text:
            failures.append(("POST unlabelled body", answer.status_code, answer.text))
        answer = http.post(
            f"{gateway.skaha}/v0/session",
            content=b"name=\xff",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        if answer.status_code != 400 or "UTF-8" not in answer.text:
            failures.append(("POST non-UTF-8", answer.status_code, answer.text))
        answer = http.get(
            f"{gateway.skaha}/v0/session", headers={"Authorization": b"Bearer \xff\xfe"}
        )
        if answer.status_code != 401:
            failures.append(("bad token bytes", answer.status_code, answer.text))
    assert not failures, "\n".join(map(str, failures))
    assert len(CASES) >= 40
    assert names(me) == before  # nothing half-made


KEYS = ["name", "image", "type", "cores", "ram", "gpus", "cmd", "args", "env", "timeout"]
KEYS += ["view", "status", "action", "environment", "drive", "NAME", "Type"]
PLAUSIBLE = st.sampled_from(
    [
        IMAGE,
        "ok",
        "headless",
        "notebook",
        "ssh",
        "2",
        "0",
        "-1",
        "1e9",
        "all",
        "stats",
        "logs",
        "events",
        "renew",
        "Running",
        "Completed",
        "A=b",
        "A",
        "=",
        "",
        " ",
        "\x00",
    ]
)
VALUES = st.lists(PLAUSIBLE | st.text(max_size=12), min_size=1, max_size=3)
ROUTES = st.sampled_from(
    [
        ("GET", "/v0/session"),
        ("POST", "/v1/session"),
        ("GET", "/v1/session/ID"),
        ("POST", "/v0/session/ID"),
        ("DELETE", "/v1/session/nosuchid"),
        ("GET", "/v1/image"),
        ("GET", "/v0/context"),
        ("GET", "/v1/session/%2e%2e"),
        ("POST", "/v0/session/ID"),
    ]
)


def test_no_query_makes_a_500(gateway: Gateway, someone: tuple[Person, str]) -> None:
    me, existing = someone
    seen: dict[int, int] = {}
    with httpx.Client(timeout=60, headers={"Authorization": f"Bearer {me.token}"}) as http:

        @settings(
            max_examples=300,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        @given(route=ROUTES, query=st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6))
        def search(route: tuple[str, str], query: dict[str, list[str]]) -> None:
            method, path = route
            params = [(k, v) for k, values in query.items() for v in values]
            answer = http.request(
                method, f"{gateway.skaha}{path.replace('ID', existing)}", params=params
            )
            seen[answer.status_code] = seen.get(answer.status_code, 0) + 1
            assert answer.status_code < 500, (method, path, params, answer.text)
            if answer.status_code >= 400:
                assert answer.headers["content-type"].startswith("text/plain")

        search()
    assert sum(seen.values()) >= 300 and any(400 <= s < 500 for s in seen), seen
