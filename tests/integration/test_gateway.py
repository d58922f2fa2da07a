"""`kabin gateway` driven by the real Skaha clients from PyPI, `skaha==1.7.0` and
`canfar==1.5.2`, unchanged, against the local control plane and the operator.

Each test signs in as someone new (a static token file of the `gateway` fixture), so
their namespace holds only what the test made. The clients' documented calls are
covered sync and async: create with cmd, args, env and replicas, fetch with filters,
info, logs, events, stats, context, images, renew (canfar), destroy, destroy_with with
each client's default status word, and `canfar ps`.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from typing import Any

import httpx
import pytest

from tests.conftest import Gateway, Person
from tests.support import SKAHA_KEYS as KEYS
from tests.support import eventually, exit_pod, run

pytestmark = pytest.mark.integration

IMAGE = "images.canfar.net/skaha/terminal:1.1.1"
ID = re.compile(r"^[a-z][a-z0-9]{7}$")


def kubectl_json(*args: str) -> Any:
    out = subprocess.run(
        ["kubectl", *args, "-o", "json"], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out)


def session_object(person: Person, session_id: str) -> dict[str, Any]:
    """The Session as `kubectl get session <id>` shows it in the person's namespace."""
    obj: dict[str, Any] = kubectl_json("get", "session", session_id, "-n", person.namespace)
    return obj


def names_in(person: Person) -> list[str]:
    found = kubectl_json("get", "sessions", "-n", person.namespace)
    return sorted(s["metadata"]["name"] for s in found["items"])


async def until_status(fetch: Any, wanted: str, ids: list[str]) -> list[dict[str, str]]:
    async def probe() -> list[dict[str, str]]:
        records = [r for r in await fetch() if r["id"] in ids]
        assert len(records) == len(ids) and {r["status"] for r in records} == {wanted}, records
        return records

    return await eventually(probe, timeout=60)


def check_record(record: dict[str, str]) -> None:
    assert set(record) >= KEYS, KEYS - set(record)
    assert all(isinstance(record[k], str) for k in KEYS), record
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["startTime"]), record


# -- skaha 1.7.0 (its default: /v0) -------------------------------------------------------


async def test_skaha_session_calls(gateway: Gateway, api: object) -> None:
    from skaha.context import Context
    from skaha.images import Images
    from skaha.overview import Overview
    from skaha.session import Session

    me = gateway.person()
    session = Session(server=gateway.skaha, token=me.token)
    ids = session.create(
        name="probe",
        image=IMAGE,
        cores=1,
        ram=1,
        kind="headless",
        cmd="printenv",
        args="TEST REPLICA_ID",
        env={"TEST": "test"},
        replicas=2,
    )
    assert len(ids) == 2 and all(ID.match(i) for i in ids), ids

    # The id is the object name; the Skaha name, the user and what was asked are there.
    first = session_object(me, ids[0])
    assert first["metadata"]["annotations"]["kabin.dev/name"] == "probe-1"
    assert first["spec"]["user"] == me.user
    assert first["spec"]["command"] == ["printenv"]
    assert first["spec"]["args"] == ["TEST", "REPLICA_ID"]
    assert {e["name"]: e["value"] for e in first["spec"]["env"]} == {
        "TEST": "test",
        "REPLICA_ID": "1",
        "REPLICA_COUNT": "2",
    }
    assert first["spec"]["resources"] == {"cpu": 1, "memory": "1Gi"}

    async def fetch() -> list[dict[str, str]]:
        return session.fetch(kind="headless")

    records = await until_status(fetch, "Running", ids)
    for r in records:
        check_record(r)
    assert sorted(r["name"] for r in records) == ["probe-1", "probe-2"]
    assert {r["userid"] for r in records} == {me.user}
    assert {r["requestedRAM"] for r in records} == {"1G"}
    assert session.fetch(kind="notebook") == []
    assert session.fetch(status="Pending", kind="headless") == []

    info = session.info(ids)
    assert [r["id"] for r in info] == ids

    logs = session.logs(ids)
    assert set(logs) == set(ids) and all("[kabin-sim]" in text for text in logs.values()), logs

    events = session.events(ids)
    assert len(events) == 2
    table = events[0][ids[0]]
    assert table.splitlines()[0].split() == ["TYPE", "REASON", "MESSAGE", "FIRST-TIME", "LAST-TIME"]
    assert "Scheduled" in table, table

    stats = session.stats()
    assert stats["instances"]["headless"] >= 2
    assert {"requestedCPUCores", "cpuCoresAvailable", "maxCPUCores"} <= set(stats["cores"])
    assert {"requestedRAM", "ramAvailable", "maxRAM"} <= set(stats["ram"])
    assert "NVIDIA-H100-80GB-HBM3" in stats["gpus"]

    resources = Context(server=gateway.skaha, token=me.token).resources()
    assert resources["cores"]["options"][-1] == 32 and resources["gpus"]["options"][-1] == 8
    images = Images(server=gateway.skaha, token=me.token).fetch()
    assert "quay.io/jupyter/scipy-notebook:2024-10-07" in images or images, images
    assert Overview(server=gateway.skaha, token=me.token).availability() is True

    # destroy_with's default status is Succeeded: only the finished replica goes.
    await exit_pod(api, me.namespace, f"{ids[0]}-1", 0)
    await until_status(fetch, "Succeeded", ids[:1])
    assert session.destroy_with(prefix="probe") == {ids[0]: True}
    assert session.destroy(ids[1]) == {ids[1]: True}
    assert session.destroy(ids[1]) == {ids[1]: False}  # 404: it was not there to destroy


async def test_skaha_async_session_calls(gateway: Gateway) -> None:
    from skaha.session import AsyncSession

    me = gateway.person()
    session = AsyncSession(server=gateway.skaha, token=me.token)
    ids = await session.create(
        name="many", image=IMAGE, kind="headless", cmd="sleep", args="600", replicas=5
    )
    assert len(ids) == 5 and len(set(ids)) == 5
    records = await until_status(lambda: session.fetch(kind="headless"), "Running", ids)
    assert sorted(r["name"] for r in records) == [f"many-{i}" for i in range(1, 6)]
    assert [r["id"] for r in await session.info(ids)] == ids
    assert set(await session.logs(ids)) == set(ids)
    assert len(await session.events(ids)) == 5
    assert (await session.stats())["instances"]["total"] >= 5
    assert await session.destroy(ids) == dict.fromkeys(ids, True)
    assert names_in(me) == [] or all(n not in ids for n in names_in(me))


def test_skaha_v1_and_duplicate_names(gateway: Gateway) -> None:
    """Two creates with the same name make two sessions; v1 works for skaha too."""
    from skaha.session import Session

    me = gateway.person()
    session = Session(server=gateway.skaha, token=me.token, version="v1")
    one = session.create(name="same", image=IMAGE, cmd="sleep", args="60")
    two = session.create(name="same", image=IMAGE, cmd="sleep", args="60")
    assert len(one) == len(two) == 1 and one != two
    assert sorted(names_in(me)) == sorted(one + two)
    assert {r["name"] for r in session.fetch()} == {"same-1"}


# -- canfar 1.5.2 (/v1) -----------------------------------------------------------------


async def test_canfar_session_calls(gateway: Gateway, api: object) -> None:
    from canfar.context import Context
    from canfar.images import Images
    from canfar.overview import Overview
    from canfar.sessions import Session

    me = gateway.person()
    url = f"{gateway.skaha}/v1"
    session = Session(url=url, token=me.token)
    ids = session.create(
        name="cprobe",
        image=IMAGE,
        cmd="sleep",
        args="600",
        env={"A": "b=c"},
        replicas=2,
        errors="raise",
    )
    assert len(ids) == 2
    obj = session_object(me, ids[0])
    assert {e["name"]: e["value"] for e in obj["spec"]["env"]}["A"] == "b=c"
    assert "resources" not in obj["spec"]  # canfar's flexible mode: no cores, no ram

    async def fetch() -> list[dict[str, str]]:
        return session.fetch(kind="headless", status="Running")

    records = await until_status(fetch, "Running", ids)
    assert sorted(r["name"] for r in records) == ["cprobe-1", "cprobe-2"]
    assert [r["id"] for r in session.info(ids)] == ids
    assert set(session.logs(ids)) == set(ids)
    assert len(session.events(ids)) == 2
    assert "cores" in session.stats()

    before = session_object(me, ids[0])["metadata"].get("annotations", {}).get("kabin.dev/renew")
    assert session.renew(ids) == dict.fromkeys(ids, True)
    renewed = session_object(me, ids[0])["metadata"]["annotations"]["kabin.dev/renew"]
    assert renewed and renewed != before

    resources = Context(url=url, token=me.token).resources()
    assert resources["cores"]["options"]
    details = Images(url=url, token=me.token).details()
    assert details and all(d.id for d in details)
    assert Overview(url=url, token=me.token).availability() is True

    # canfar's destroy_with defaults to status Completed: v1's word for Succeeded.
    await exit_pod(api, me.namespace, f"{ids[1]}-1", 0)
    done = await until_status(lambda: asyncio.sleep(0, session.fetch()), "Completed", ids[1:])
    assert done[0]["status"] == "Completed"
    assert session.destroy_with(prefix="cprobe") == {ids[1]: True}
    assert session.destroy(ids[0]) == {ids[0]: True}


async def test_canfar_async_session_calls(gateway: Gateway) -> None:
    from canfar.sessions import AsyncSession

    me = gateway.person()
    session = AsyncSession(url=f"{gateway.skaha}/v1", token=me.token)
    ids = await session.create(name="acprobe", image=IMAGE, cmd="sleep", args="600", replicas=3)
    assert len(ids) == 3
    await until_status(lambda: session.fetch(kind="headless"), "Running", ids)
    assert [r["id"] for r in await session.info(ids)] == ids
    assert set(await session.logs(ids)) == set(ids)
    assert len(await session.events(ids)) == 3
    assert await session.renew(ids) == dict.fromkeys(ids, True)
    assert "ram" in await session.stats()
    assert await session.destroy(ids) == dict.fromkeys(ids, True)


def test_canfar_ps_through_environment(gateway: Gateway, tmp_path: Any) -> None:
    """`canfar ps` with only CANFAR_URL and CANFAR_TOKEN set lists the person's sessions."""
    from canfar.sessions import Session

    me = gateway.person()
    url = f"{gateway.skaha}/v1"
    [session_id] = Session(url=url, token=me.token).create(
        name="listed", image=IMAGE, cmd="sleep", args="600"
    )
    canfar = os.path.join(os.path.dirname(sys.executable), "canfar")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CANFAR_")},
        "HOME": str(tmp_path),
        "CANFAR_URL": url,
        "CANFAR_TOKEN": me.token,
    }
    done = subprocess.run(
        [canfar, "ps", "--all", "-o", "json"], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert session_id in done.stdout and "listed" in done.stdout, done.stdout


# -- what kubectl makes shows up too ---------------------------------------------------------


async def test_kubectl_sessions_show_up(gateway: Gateway) -> None:
    from skaha.session import Session

    me = gateway.person()
    # The person's namespace exists once they have used the gateway.
    Session(server=gateway.skaha, token=me.token).fetch()
    Session(server=gateway.skaha, token=me.token).create(name="x", image=IMAGE)
    manifest = (
        '{"apiVersion": "kabin.dev/v1alpha1", "kind": "Session", "metadata": {"name": "by-kubectl"},'
        ' "spec": {"type": "headless", "image": "busybox", "command": ["sleep", "60"]}}'
    )
    await run("kubectl", "apply", "--as", me.user, "-n", me.namespace, "-f", "-", stdin=manifest)
    records = Session(server=gateway.skaha, token=me.token).fetch()
    mine = [r for r in records if r["id"] == "by-kubectl"]
    assert mine and mine[0]["name"] == "by-kubectl" and mine[0]["userid"] == me.user


# -- identity and isolation ----------------------------------------------------------------


def test_isolation_between_people(gateway: Gateway) -> None:
    from skaha.session import Session

    alice, bob = gateway.person(), gateway.person()
    [secret] = Session(server=gateway.skaha, token=alice.token).create(
        name="alices", image=IMAGE, cmd="sleep", args="600"
    )
    base = f"{gateway.skaha}/v0/session"
    as_bob = {"Authorization": f"Bearer {bob.token}"}
    with httpx.Client(timeout=30) as http:
        assert http.get(base, headers=as_bob).json() == []
        for method, url in [
            ("GET", f"{base}/{secret}"),
            ("GET", f"{base}/{secret}?view=logs"),
            ("GET", f"{base}/{secret}?view=events"),
            ("POST", f"{base}/{secret}?action=renew"),
            ("DELETE", f"{base}/{secret}"),
        ]:
            answer = http.request(method, url, headers=as_bob)
            assert answer.status_code == 404, (method, url, answer.text)
            assert answer.headers["content-type"].startswith("text/plain")
        # Everyone's sessions, with their public fields only.
        everyone = http.get(base, params={"view": "all"}, headers=as_bob).json()
        alices = [r for r in everyone if r["userid"] == alice.user]
        assert alices and all(set(r) == {"userid", "type", "status", "startTime"} for r in alices)
        # No token, a wrong one, a malformed header: 401, text/plain.
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic eDp5"}):
            answer = http.get(base, headers=headers)
            assert answer.status_code == 401, answer.text
            assert answer.headers["content-type"].startswith("text/plain")
    assert names_in(alice) == [secret]  # bob's DELETE touched nothing


async def test_token_review_and_impersonation(
    kubeconfig: Any, api: object, namespace: str, tmp_path: Any, operator: object
) -> None:
    """Without a token file the gateway asks the API server (TokenReview). A
    ServiceAccount's token is refused unless an administrator lets system identities in
    (any pod has one); then it signs in as that ServiceAccount, whom RBAC judges."""
    from kubernetes_asyncio import client

    from tests.conftest import start_gateway
    from tests.support import service_account_token

    token = await service_account_token(api, namespace, "robot")
    env = {"KABIN_GATEWAY_NAMESPACE_TEMPLATE": namespace}  # everyone's home, for this test
    proc, url = start_gateway(tmp_path, kubeconfig=kubeconfig, env=env)
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            answer = await http.get(
                f"{url}/skaha/v1/session", headers={"Authorization": f"Bearer {token}"}
            )
            assert answer.status_code == 403 and "system identity" in answer.text, answer.text
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    proc, url = start_gateway(
        tmp_path, kubeconfig=kubeconfig, env={**env, "KABIN_GATEWAY_ALLOW_SYSTEM_USERS": "true"}
    )
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            answer = await http.get(
                f"{url}/skaha/v1/session", headers={"Authorization": f"Bearer {token}"}
            )
            # Signed in, but the robot may not list sessions: RBAC says so, not the gateway.
            assert answer.status_code == 403, answer.text
            assert "system:serviceaccount:" + namespace + ":robot" in answer.text
            rbac = client.RbacAuthorizationV1Api(api)
            await rbac.create_namespaced_role_binding(
                namespace,
                {
                    "metadata": {"name": "robot-edit"},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": "edit",
                    },
                    "subjects": [
                        {"kind": "ServiceAccount", "name": "robot", "namespace": namespace}
                    ],
                },
            )

            async def allowed() -> None:
                answer = await http.post(
                    f"{url}/skaha/v1/session",
                    params={"name": "robotrun", "image": IMAGE},
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert answer.status_code == 200, answer.text

            await eventually(allowed, timeout=30)
            answer = await http.get(
                f"{url}/skaha/v1/session", headers={"Authorization": "Bearer x"}
            )
            assert answer.status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    found = kubectl_json("get", "sessions", "-n", namespace)["items"]
    assert [s["spec"]["user"] for s in found] == [f"system:serviceaccount:{namespace}:robot"]


def test_unreachable_api_server_is_503(tmp_path: Any, kubeconfig: Any) -> None:
    """With the API server out of reach, every call answers 503 with Retry-After."""
    from tests.conftest import start_gateway

    dead = tmp_path / "dead-kubeconfig"
    config = subprocess.run(
        ["kubectl", "config", "view", "--raw", "--minify", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
    ).stdout
    parsed = json.loads(config)
    parsed["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:9"
    dead.write_text(json.dumps(parsed))
    tokens = tmp_path / "tokens.csv"
    tokens.write_text('t0k3n,carol,carol,""\n')
    proc, url = start_gateway(
        tmp_path,
        kubeconfig=dead,
        env={"KABIN_GATEWAY_REQUEST_TIMEOUT": "5"},
        args=("--token-file", str(tokens)),
    )
    try:
        with httpx.Client(timeout=30) as http:
            auth = {"Authorization": "Bearer t0k3n"}
            for method, path in [
                ("GET", "/skaha/v0/session"),
                ("POST", f"/skaha/v0/session?name=a&image={IMAGE}"),
                ("GET", "/skaha/v1/context"),
            ]:
                answer = http.request(method, url + path, headers=auth)
                assert answer.status_code == 503, (path, answer.text)
                assert answer.headers["Retry-After"] == "5"
            xml = http.get(f"{url}/skaha/availability").text
            assert "<vosi:available>false</vosi:available>" in xml
            # The public page says no more than that: no address, no exception text.
            assert "127.0.0.1" not in xml and "Error" not in xml and "Cannot" not in xml, xml
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def test_provisioning_binds_only_in_namespaces_made_for_that_user(gateway: Gateway) -> None:
    """A namespace that exists without the gateway's owner mark (an administrator's, or
    kabin-system for a user named "system") gets no RoleBinding; one made for another
    user is refused."""
    stranger, claimed = gateway.person(), gateway.person()
    await run("kubectl", "create", "namespace", stranger.namespace)
    await run("kubectl", "create", "namespace", claimed.namespace)
    await run(
        "kubectl", "annotate", "namespace", claimed.namespace, "kabin.dev/owner=somebody-else"
    )
    async with httpx.AsyncClient(timeout=30) as http:
        for person, words in ((stranger, "forbidden"), (claimed, "belongs to another user")):
            answer = await http.get(
                f"{gateway.skaha}/v1/session", headers={"Authorization": f"Bearer {person.token}"}
            )
            assert answer.status_code == 403 and words in answer.text, answer.text
    bindings = await run("kubectl", "get", "rolebindings", "-n", stranger.namespace, "-o", "name")
    assert "kabin-user" not in bindings
