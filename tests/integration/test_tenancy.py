"""Tenancy, tried as an attacker would, against the real control plane: each attack of
the security review (docs/security.md, "Threat model") is refused here.

- a provisioned namespace is locked down: no privileged pod, no pods, Ingresses,
  Services or Secrets for the user, a NetworkPolicy, a ResourceQuota;
- a ServiceAccount token gets no namespace and no service;
- caps hold for a session that names no environment, for replicas and `kubectl
  scale`, and per user;
- one user's flood of live streams leaves everyone else's requests alone;
- forged proxy headers sign no one in;
- a private drive's access is its owner's to change, and a drive made under someone
  else's default name is never theirs;
- the agent runs as its own UID;
- a bogus-token flood costs few TokenReviews and gets 429;
- renew and delete act only on the session that was read.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
import uuid
from typing import Any

import aiohttp
import httpx
import pytest

from tests.conftest import Gateway, Person, start_gateway
from tests.support import (
    Result,
    command,
    eventually,
    kubectl_apply,
    manifest,
    run,
    service_account_token,
)

pytestmark = pytest.mark.integration

IMAGE = "images.canfar.net/skaha/terminal:1.1.1"


def bearer(person: Person) -> dict[str, str]:
    return {"Authorization": f"Bearer {person.token}"}


async def signed_up(gateway: Gateway) -> Person:
    """Someone new, whose first request has made their namespace."""
    person = gateway.person()
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await http.get(f"{gateway.skaha}/v1/session", headers=bearer(person))
    assert answer.status_code == 200, answer.text
    return person


async def sessions_in(namespace: str) -> list[str]:
    out = await run("kubectl", "get", "sessions", "-n", namespace, "-o", "name")
    return sorted(out.split())


# -- the provisioned namespace -------------------------------------------------------


async def test_a_privileged_pod_is_refused_in_a_provisioned_namespace(gateway: Gateway) -> None:
    me = await signed_up(gateway)
    root_on_the_node = manifest(
        "Pod",
        "escape",
        {
            "hostPID": True,
            "containers": [
                {"name": "sh", "image": "busybox", "securityContext": {"privileged": True}}
            ],
        },
    )
    root_on_the_node["apiVersion"] = "v1"
    # Even the cluster admin (who could be tricked into it, or whose EnvironmentConfig
    # asks for it) cannot run it there: Pod Security admission enforces `restricted`.
    refused = await kubectl_apply(root_on_the_node, namespace=me.namespace)
    assert refused.code != 0
    assert "violates PodSecurity" in refused.err and "restricted" in refused.err, refused.err
    assert "privileged" in refused.err and "hostPID" in refused.err, refused.err
    labels = json.loads(await run("kubectl", "get", "namespace", me.namespace, "-o", "json"))[
        "metadata"
    ]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    guards = await run(
        "kubectl",
        "get",
        "networkpolicy,resourcequota,limitrange",
        "-n",
        me.namespace,
        "-o",
        "name",
    )
    assert sorted(guards.split()) == [
        "limitrange/kabin-tenant",
        "networkpolicy.networking.k8s.io/kabin-tenant",
        "resourcequota/kabin-tenant",
    ]


CAN_I = [
    ("create", "pods", "no"),
    ("create", "pods/exec", "no"),
    ("create", "ingresses.networking.k8s.io", "no"),
    ("create", "services", "no"),
    ("create", "secrets", "no"),
    ("get", "secrets", "no"),
    ("list", "secrets", "no"),
    ("create", "rolebindings.rbac.authorization.k8s.io", "no"),
    ("create", "networkpolicies.networking.k8s.io", "no"),
    ("delete", "resourcequotas", "no"),
    ("patch", "namespaces", "no"),
    ("create", "sessions.kabin.dev", "yes"),
    ("create", "drives.kabin.dev", "yes"),
    ("update", "sessions.kabin.dev/scale", "yes"),
    ("get", "pods/log", "yes"),
    ("list", "events", "yes"),
]


async def test_what_the_user_may_do_in_their_namespace(gateway: Gateway) -> None:
    """`kubectl auth can-i` as the user: kabin's objects, their logs and events; nothing
    that runs a pod, routes traffic, or reads a Secret."""
    me = await signed_up(gateway)
    wrong = []
    for verb, resource, allowed in CAN_I:
        answer = await command(
            "kubectl",
            "auth",
            "can-i",
            verb,
            resource,
            "-n",
            me.namespace,
            f"--as={me.user}",
            "--as-group=researchers",
        )
        if answer.out.strip() != allowed:
            wrong.append((verb, resource, answer.out, answer.err))
    assert not wrong, wrong


async def test_a_service_account_token_gets_no_namespace(
    kubeconfig: Any, api: Any, namespace: str, tmp_path: Any, operator: object
) -> None:
    """Any pod has a ServiceAccount token; the gateway makes it nothing, and says so."""
    token = await service_account_token(api, namespace, "robot")
    template = f"sa{uuid.uuid4().hex[:5]}-{{user}}"
    proc, url = start_gateway(
        tmp_path,
        kubeconfig=kubeconfig,
        env={
            "KABIN_GATEWAY_PROVISION_NAMESPACES": "true",
            "KABIN_GATEWAY_PROVISION_GROUPS": '["*"]',
            "KABIN_GATEWAY_NAMESPACE_TEMPLATE": template,
        },
    )
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            answer = await http.get(
                f"{url}/skaha/v1/session", headers={"Authorization": f"Bearer {token}"}
            )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert answer.status_code == 403, answer.text
    assert "system identity" in answer.text
    made = await run("kubectl", "get", "namespaces", "-o", "name")
    assert f"namespace/{template.split('-')[0]}-" not in made


async def test_only_users_in_the_allowed_groups_get_a_namespace(
    kubeconfig: Any, tmp_path: Any, operator: object
) -> None:
    template = f"grp{uuid.uuid4().hex[:5]}-{{user}}"
    tokens = tmp_path / "tokens.csv"
    tokens.write_text('in-token,insider,insider,"kabin:users"\nout-token,outsider,outsider,"x"\n')
    proc, url = start_gateway(
        tmp_path,
        kubeconfig=kubeconfig,
        env={
            "KABIN_GATEWAY_PROVISION_NAMESPACES": "true",
            "KABIN_GATEWAY_NAMESPACE_TEMPLATE": template,
        },
        args=("--token-file", str(tokens)),
    )
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            inside = await http.get(
                f"{url}/skaha/v1/session", headers={"Authorization": "Bearer in-token"}
            )
            outside = await http.get(
                f"{url}/skaha/v1/session", headers={"Authorization": "Bearer out-token"}
            )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        await command(
            "kubectl", "delete", "namespace", template.replace("{user}", "insider"), "--wait=false"
        )
    assert inside.status_code == 200, inside.text
    assert outside.status_code == 403 and "none of the groups" in outside.text, outside.text
    missing = await command("kubectl", "get", "namespace", template.replace("{user}", "outsider"))
    assert missing.code != 0 and "NotFound" in missing.err


# -- caps ----------------------------------------------------------------------------


async def test_caps_hold_for_a_session_that_names_no_environment(gateway: Gateway) -> None:
    me = await signed_up(gateway)
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await http.post(
            f"{gateway.skaha}/v1/session",
            params={
                "name": "greedy",
                "type": "headless",
                "image": "busybox",
                "cores": "256",
                "ram": "512",
                "gpus": "28",
                "timeout": "-1",
            },
            headers=bearer(me),
        )
    assert answer.status_code == 400, answer.text
    for words in (
        "spec.resources.cpu: 256 exceeds the maximum of 16 set by the cluster's default policy",
        "spec.resources.memory: 512Gi exceeds the maximum of 64Gi",
        "spec.resources.gpu: 28 exceeds the maximum of 1",
        "spec.timeout: -1 (no timeout) is not allowed",
    ):
        assert words in answer.text, answer.text
    assert await sessions_in(me.namespace) == []


async def test_replicas_times_a_pod_are_capped_at_create_and_at_scale(gateway: Gateway) -> None:
    me = await signed_up(gateway)
    as_me = (f"--as={me.user}", "--as-group=researchers")
    big = manifest(
        "Session",
        "wide",
        {"type": "headless", "image": "busybox", "replicas": 9, "resources": {"cpu": "8"}},
    )
    refused = await kubectl_apply(
        big, namespace=me.namespace, user=me.user, groups=("researchers",)
    )
    assert refused.code != 0
    assert "spec.replicas: 9 replicas x cpu 8 exceeds the maximum of 64" in refused.err
    big["spec"]["replicas"] = 2
    made = await kubectl_apply(big, namespace=me.namespace, user=me.user, groups=("researchers",))
    assert made.code == 0, made.err
    scaled = await command(
        "kubectl", "scale", "session", "wide", "--replicas=200", "-n", me.namespace, *as_me
    )
    assert scaled.code != 0
    assert "200 replicas x cpu 8 exceeds the maximum of 64" in scaled.err, scaled.err
    within = await command(
        "kubectl", "scale", "session", "wide", "--replicas=8", "-n", me.namespace, *as_me
    )
    assert within.code == 0, within.err
    replicas = await run(
        "kubectl", "get", "session", "wide", "-n", me.namespace, "-o", "jsonpath={.spec.replicas}"
    )
    assert replicas == "8"
    # 64 cores asked: give the simulated nodes back to the tests after this one.
    await run("kubectl", "delete", "session", "wide", "-n", me.namespace, "--wait=true")


async def test_one_user_has_at_most_five_interactive_sessions(gateway: Gateway) -> None:
    me = await signed_up(gateway)
    async with httpx.AsyncClient(timeout=30) as http:
        for i in range(5):
            answer = await http.post(
                f"{gateway.skaha}/v1/session",
                params={"name": f"nb{i}", "type": "notebook", "environment": "notebook"},
                headers=bearer(me),
            )
            assert answer.status_code == 200, answer.text
        sixth = await http.post(
            f"{gateway.skaha}/v1/session",
            params={"name": "nb5", "type": "notebook", "environment": "notebook"},
            headers=bearer(me),
        )
        assert sixth.status_code == 403, sixth.text
        assert "already has 5 interactive sessions" in sixth.text
        # Headless runs are bounded by the namespace's quota, not this count.
        batch = await http.post(
            f"{gateway.skaha}/v1/session",
            params={"name": "batch", "image": IMAGE, "cmd": "true"},
            headers=bearer(me),
        )
        assert batch.status_code == 200, batch.text
        # Someone else is not affected.
        other = await signed_up(gateway)
        theirs = await http.post(
            f"{gateway.skaha}/v1/session",
            params={"name": "nb", "type": "notebook", "environment": "notebook"},
            headers=bearer(other),
        )
        assert theirs.status_code == 200, theirs.text
    assert len(await sessions_in(me.namespace)) == 6
    await run("kubectl", "delete", "sessions", "--all", "-n", me.namespace, "--wait=true")


# -- the gateway under a flood -------------------------------------------------------


async def _flood(
    url: str, flooder: Person, bystander: Person, streams: int
) -> tuple[list[int], list[float]]:
    """Open `streams` live streams as `flooder` and hold them; meanwhile time the
    bystander's session list. Returns the streams' statuses and the list's times."""
    statuses: list[int] = []
    timings: list[float] = []
    connector = aiohttp.TCPConnector(limit=0)
    jar = aiohttp.CookieJar(unsafe=True)  # the gateway is at an IP address
    async with aiohttp.ClientSession(connector=connector, cookie_jar=jar) as http:
        signed = await http.post(
            f"{url}/signin", data={"token": flooder.token}, allow_redirects=False
        )
        assert signed.status == 303, await signed.text()
        opened: list[aiohttp.ClientResponse] = []
        try:

            async def open_one() -> None:
                response = await http.get(f"{url}/events", timeout=aiohttp.ClientTimeout(total=60))
                statuses.append(response.status)
                if response.status == 429:
                    assert response.headers.get("Retry-After", "").isdigit(), response.headers
                    response.release()
                    return
                opened.append(response)
                # Held open: its watch has started and sent the first list, so it holds
                # a connection to the API server while the bystander asks.
                async for line in response.content:
                    if line.startswith(b"event: sessions"):
                        return

            await asyncio.gather(*(open_one() for _ in range(streams)))
            async with aiohttp.ClientSession() as other:
                for _ in range(5):
                    start = time.monotonic()
                    async with other.get(
                        f"{url}/skaha/v1/session", headers=bearer(bystander)
                    ) as answer:
                        assert answer.status == 200, await answer.text()
                    timings.append(time.monotonic() - start)
        finally:
            for response in opened:
                response.close()
    return statuses, timings


async def test_one_users_streams_leave_everyone_else_alone(gateway: Gateway) -> None:
    flooder, bystander = await signed_up(gateway), await signed_up(gateway)
    statuses, timings = await _flood(gateway.url, flooder, bystander, 150)
    assert statuses.count(200) == 8, statuses  # streams_per_user
    assert statuses.count(429) == 142, statuses
    assert max(timings) < 2, timings


async def test_streams_have_their_own_connections(
    kubeconfig: Any, tmp_path: Any, operator: object
) -> None:
    """With the per-user cap raised to 150, 150 open watches still leave the other
    user's requests their connections: watches have a pool of their own."""
    template = f"pool{uuid.uuid4().hex[:5]}-{{user}}"
    tokens = tmp_path / "tokens.csv"
    tokens.write_text(
        'flood-token,flooder,flooder,"kabin:users"\nby-token,bystander,b,"kabin:users"\n'
    )
    proc, url = start_gateway(
        tmp_path,
        kubeconfig=kubeconfig,
        env={
            "KABIN_GATEWAY_PROVISION_NAMESPACES": "true",
            "KABIN_GATEWAY_NAMESPACE_TEMPLATE": template,
            "KABIN_GATEWAY_STREAMS_PER_USER": "150",
            "KABIN_GATEWAY_STREAMS_TOTAL": "150",
        },
        args=("--token-file", str(tokens)),
    )
    flooder = Person("flooder", "flood-token", template.replace("{user}", "flooder"))
    bystander = Person("bystander", "by-token", template.replace("{user}", "bystander"))
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            for person in (flooder, bystander):
                answer = await http.get(f"{url}/skaha/v1/session", headers=bearer(person))
                assert answer.status_code == 200, answer.text
        statuses, timings = await _flood(url, flooder, bystander, 150)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        for person in (flooder, bystander):
            await command("kubectl", "delete", "namespace", person.namespace, "--wait=false")
    assert statuses.count(200) == 150, statuses
    assert max(timings) < 2, timings


async def test_a_bogus_token_flood_gets_429_and_costs_few_reviews(
    kubeconfig: Any, tmp_path: Any, operator: object
) -> None:
    proc, url = start_gateway(
        tmp_path, kubeconfig=kubeconfig, env={"KABIN_GATEWAY_FAILED_TOKENS_PER_MINUTE": "10"}
    )

    async def reviews() -> float:
        text = await run("kubectl", "get", "--raw", "/metrics")
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("apiserver_request_total{")
            and 'resource="tokenreviews"' in line
            and 'verb="POST"' in line
        )

    try:
        before = await reviews()
        codes: list[int] = []
        async with httpx.AsyncClient(timeout=30) as http:
            for i in range(60):
                answer = await http.get(
                    f"{url}/skaha/v1/session", headers={"Authorization": f"Bearer bogus-{i}"}
                )
                codes.append(answer.status_code)
                if answer.status_code == 429:
                    assert answer.headers["Retry-After"].isdigit()
            # The same bogus token again and again is reviewed once (negative cache).
        after = await reviews()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert codes[:10] == [401] * 10, codes
    assert set(codes[10:]) == {429}, codes
    assert after - before <= 10, (before, after)


# -- proxy headers -------------------------------------------------------------------


async def test_forged_proxy_headers_sign_no_one_in(
    kubeconfig: Any, tmp_path: Any, operator: object
) -> None:
    secret = uuid.uuid4().hex
    template = f"px{uuid.uuid4().hex[:5]}-{{user}}"
    env = {
        "KABIN_GATEWAY_TRUST_PROXY_HEADERS": "true",
        "KABIN_GATEWAY_PROVISION_NAMESPACES": "true",
        "KABIN_GATEWAY_PROVISION_GROUPS": '["kabin:users"]',
        "KABIN_GATEWAY_NAMESPACE_TEMPLATE": template,
    }
    # Without a secret the gateway does not start at all, and says why.
    refused = await command(
        sys.executable,
        "-m",
        "kabin",
        "gateway",
        "--port",
        "0",
        env={**os.environ, "KUBECONFIG": str(kubeconfig), **env},
        within=60,
    )
    assert refused.code != 0
    assert "proxy_secret: required with trust_proxy_headers" in refused.out + refused.err
    proc, url = start_gateway(
        tmp_path, kubeconfig=kubeconfig, env={**env, "KABIN_GATEWAY_PROXY_SECRET": secret}
    )
    alice = {"X-Forwarded-User": "alice", "X-Forwarded-Groups": "kabin:users"}
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            forged = await http.get(f"{url}/", headers=alice)
            guessed = await http.get(f"{url}/", headers={**alice, "X-Kabin-Proxy-Secret": "x"})
            operator_sa = await http.get(
                f"{url}/",
                headers={
                    "X-Forwarded-User": "system:serviceaccount:kabin-system:kabin-operator",
                    "X-Forwarded-Groups": "system:masters,kabin:users",
                    "X-Kabin-Proxy-Secret": secret,
                },
            )
            proxied = await http.get(f"{url}/", headers={**alice, "X-Kabin-Proxy-Secret": secret})
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        await command(
            "kubectl", "delete", "namespace", template.replace("{user}", "alice"), "--wait=false"
        )
    for answer in (forged, guessed, operator_sa):
        assert answer.status_code == 303 and answer.headers["location"] == "/signin", answer
    assert proxied.status_code == 200 and "Sessions" in proxied.text


# -- drives --------------------------------------------------------------------------


async def _shared_namespace(namespace: str, *users: str) -> None:
    """A team namespace where each user may `edit` (kabin's roles aggregate into it)."""
    for user in users:
        await run(
            "kubectl",
            "create",
            "rolebinding",
            f"{user}-edit",
            "--clusterrole=edit",
            f"--user={user}",
            "-n",
            namespace,
        )

    async def bound() -> None:
        for user in users:
            answer = await command(
                "kubectl",
                "auth",
                "can-i",
                "create",
                "drives.kabin.dev",
                "-n",
                namespace,
                f"--as={user}",
            )
            assert answer.out.strip() == "yes", answer

    await eventually(bound)


async def set_access(namespace: str, drive: str, value: str, user: str, *groups: str) -> Result:
    """`kubectl patch` of a drive's spec.access, as `user`."""
    return await command(
        "kubectl",
        "patch",
        "drive",
        drive,
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"access": value}}),
        f"--as={user}",
        *(f"--as-group={g}" for g in groups),
    )


async def test_a_private_drives_access_is_its_owners_to_change(
    namespace: str, operator: object
) -> None:
    await _shared_namespace(namespace, "alice", "bob", "carol")
    drive = manifest("Drive", "thesis", {"size": "1Gi", "access": "private"})
    made = await kubectl_apply(drive, namespace=namespace, user="alice")
    assert made.code == 0, made.err
    opened = await set_access(namespace, "thesis", "shared", "bob")
    assert opened.code != 0
    assert 'spec.access: only the owner of Drive "thesis" ("alice")' in opened.err, opened.err
    access = await run(
        "kubectl", "get", "drive", "thesis", "-n", namespace, "-o", "jsonpath={.spec.access}"
    )
    assert access == "private"
    # Bob cannot use it either; Alice can share it, and an admin can change it back.
    used = await kubectl_apply(
        manifest("Session", "peek", {"type": "ssh", "image": IMAGE, "drive": "thesis"}),
        namespace=namespace,
        user="bob",
    )
    assert used.code != 0 and 'Drive "thesis" is private to "alice"' in used.err, used.err
    for user, groups, value in (("alice", (), "shared"), ("carol", ("kabin:admins",), "private")):
        changed = await set_access(namespace, "thesis", value, user, *groups)
        assert changed.code == 0, changed.err


async def test_a_drive_made_under_someone_elses_default_name_is_never_theirs(
    namespace: str, operator: object, environments: None
) -> None:
    await _shared_namespace(namespace, "alice", "bob")
    trap = manifest("Drive", "alice-home", {"size": "1Gi", "access": "shared"})
    made = await kubectl_apply(trap, namespace=namespace, user="bob")
    assert made.code == 0, made.err
    session = manifest("Session", "work", {"type": "notebook", "environment": "notebook"})
    refused = await kubectl_apply(session, namespace=namespace, user="alice")
    assert refused.code != 0
    assert 'the default drive "alice-home" belongs to "bob", not to "alice"' in refused.err
    assert await sessions_in(namespace) == []
    # Naming a drive of her own works.
    mine = manifest("Drive", "alices", {"size": "1Gi", "access": "private"})
    assert (await kubectl_apply(mine, namespace=namespace, user="alice")).code == 0
    session["spec"]["drive"] = "alices"
    allowed = await kubectl_apply(session, namespace=namespace, user="alice")
    assert allowed.code == 0, allowed.err


# -- the agent -----------------------------------------------------------------------


async def test_the_agent_runs_as_its_own_uid_in_a_locked_down_namespace(gateway: Gateway) -> None:
    """A notebook made through the gateway runs in the restricted, quota'd namespace
    (its pods pass Pod Security and the quota), and its agent is another UID."""
    me = await signed_up(gateway)
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await http.post(
            f"{gateway.skaha}/v1/session",
            params={"name": "nb", "type": "notebook", "environment": "notebook"},
            headers=bearer(me),
        )
    assert answer.status_code == 200, answer.text
    session_id = answer.text.strip()

    async def pod() -> dict[str, Any]:
        found = await command(
            "kubectl", "get", "pod", f"{session_id}-1", "-n", me.namespace, "-o", "json"
        )
        assert found.code == 0, found.err
        parsed: dict[str, Any] = json.loads(found.out)
        return parsed

    made = await eventually(pod, timeout=60)
    containers = {c["name"]: c for c in made["spec"]["containers"]}
    agent, main = containers["kabin-agent"], containers["main"]
    assert agent["securityContext"]["runAsUser"] == 1999999
    assert "runAsUser" not in main.get("securityContext", {})
    assert made["spec"]["securityContext"].get("runAsUser") != 1999999
    # The LimitRange gave the main container what the quota needs to count it.
    assert main["resources"]["requests"]["cpu"]


# -- preconditions -------------------------------------------------------------------


async def test_renew_and_delete_act_only_on_the_session_that_was_read(
    api: Any, namespace: str, operator: object
) -> None:
    from kabin.client.errors import Conflict
    from kabin.client.session import AsyncSession

    session = manifest("Session", "same-name", {"type": "headless", "image": "busybox"})
    await run("kubectl", "apply", "-n", namespace, "-f", "-", stdin=json.dumps(session))
    old_uid = await run(
        "kubectl", "get", "session", "same-name", "-n", namespace, "-o", "jsonpath={.metadata.uid}"
    )
    await run("kubectl", "delete", "session", "same-name", "-n", namespace, "--wait=true")
    await run("kubectl", "apply", "-n", namespace, "-f", "-", stdin=json.dumps(session))
    client = AsyncSession.over(api, namespace=namespace)
    with pytest.raises(Conflict, match=re.escape(old_uid)):
        await client.renew("same-name", uids={"same-name": old_uid})
    with pytest.raises(Conflict):
        await client.destroy("same-name", uids={"same-name": old_uid})
    assert await sessions_in(namespace) == ["session.kabin.dev/same-name"]
