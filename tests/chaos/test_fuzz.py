"""Generated Session, Drive and EnvironmentConfig manifests through `kubectl apply`
against the real API server, admission and the operator (hypothesis). Each is either
accepted, or refused with a message naming a field; and the operator logs no
unexpected error for any accepted one.

`make test` applies 400 manifests; `make chaos` (KABIN_CHAOS=full) 2,000.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import uuid
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes_asyncio import client

from kabin.api.environment import SESSION_TYPES
from tests.chaos.invariants import GROUP, VERSION, scale
from tests.support import command

pytestmark = pytest.mark.integration
BATCH = 50

NAMES = st.from_regex(r"[a-z][a-z0-9-]{0,20}[a-z0-9]", fullmatch=True) | st.sampled_from(
    ["", "UPPER", "-x", "a_b", "x" * 70]
)
QUANTITY = st.sampled_from(
    ["1", "500m", "2Gi", "0", "-1", "1e3", "lots", "", "1.5", "10Ti"]
) | st.integers(-5, 300)
TYPES = st.sampled_from([*SESSION_TYPES, "bogus", ""])
# YAML itself allows no control characters: kubectl would refuse the whole stream.
TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=8)
SCALAR = st.none() | st.booleans() | st.integers(-10, 10**6) | TEXT


def optional(**fields: Any) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


RESOURCES = optional(cpu=QUANTITY, memory=QUANTITY, gpu=st.integers(-2, 20) | QUANTITY)
SESSION = optional(
    type=TYPES,
    environment=st.sampled_from(["notebook", "ssh", "pytorch-gpu", "nope"]) | NAMES,
    image=st.sampled_from(["busybox", "", "a b", "x" * 1100]),
    resources=RESOURCES,
    replicas=st.integers(-1, 300) | SCALAR,
    timeout=st.integers(-5, 10**6) | SCALAR,
    command=st.lists(TEXT, max_size=2) | SCALAR,
    env=st.lists(optional(name=NAMES | SCALAR, value=SCALAR), max_size=2),
    drive=NAMES,
    user=st.sampled_from(["someone-else", ""]),
    unknown=SCALAR,
)
DRIVE = optional(
    size=QUANTITY,
    access=st.sampled_from(["private", "shared", "public", ""]),
    accessMode=st.sampled_from(["ReadWriteOnce", "ReadWriteMany", "Sideways"]),
    reclaimPolicy=st.sampled_from(["Retain", "Delete", "Recycle"]),
    owner=st.sampled_from(["someone-else", ""]),
    storageClassName=NAMES | SCALAR,
)
ENVIRONMENT = optional(
    image=st.sampled_from(["jupyter:1", "", 7]),
    displayName=TEXT,
    interfaces=st.lists(
        optional(
            name=st.sampled_from(["jupyterlab", "ssh", "http", "telnet"]),
            port=st.integers(-1, 70000) | SCALAR,
            path=st.sampled_from(["/", "/lab", "no-slash", "/a b"]),
        ),
        max_size=2,
    ),
    sessionTypes=st.lists(TYPES, max_size=3),
    resources=optional(default=RESOURCES, max=RESOURCES),
    timeouts=optional(
        default=st.integers(-5, 10**6),
        max=st.integers(-5, 10**6),
        mode=st.sampled_from(["idle", "absolute", "sometimes"]),
    ),
)
KINDS = {"Session": SESSION, "Drive": DRIVE, "EnvironmentConfig": ENVIRONMENT}


@st.composite
def manifest(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(sorted(KINDS)))
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "spec": draw(KINDS[kind])}


PREFIX = f"fz{uuid.uuid4().hex[:4]}-"
FIELD = re.compile(r"spec(\.[A-Za-z]+|\[|:)|metadata\.name|\bspec\b")


async def existing(api: client.ApiClient, namespace: str) -> set[str]:
    """The names of the fuzzed objects that exist (were accepted)."""
    custom = client.CustomObjectsApi(api)
    found = [
        *(await custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "sessions"))[
            "items"
        ],
        *(await custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "drives"))["items"],
        *(await custom.list_cluster_custom_object(GROUP, VERSION, "environmentconfigs"))["items"],
    ]
    return {o["metadata"]["name"] for o in found if o["metadata"]["name"].startswith(PREFIX)}


async def alone(namespace: str, doc: dict[str, Any]) -> str:
    """What kubectl says when it applies one manifest."""
    done = await command(
        "kubectl", "apply", "--server-side", "-n", namespace, "-f", "-",
        stdin=yaml.safe_dump(doc), within=60,
    )  # fmt: skip
    return done.err or "(accepted when applied alone)"


async def apply_all(namespace: str, docs: list[dict[str, Any]]) -> dict[str, str]:
    """Apply the manifests in one kubectl call; what it said about each refused one."""
    done = await command(
        "kubectl", "apply", "--server-side", "-n", namespace, "-f", "-",
        stdin=yaml.safe_dump_all(docs), within=120,
    )  # fmt: skip
    # One refusal per "Error from server" block; some carry their fields on the lines
    # that follow (a typed patch's errors).
    blocks = re.split(r"\n(?=Error from server|error:)", done.err)
    refused: dict[str, str] = {}
    for block in blocks:
        for doc in docs:
            if doc["metadata"]["name"] in block:
                refused[doc["metadata"]["name"]] = block
    return refused


async def test_generated_manifests_are_accepted_or_refused_naming_a_field(
    api: client.ApiClient,
    operator: object,
    environments: None,
    namespace: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="kabin")
    judged = {"accepted": 0, "refused": 0}
    numbers = itertools.count()
    loop = asyncio.get_running_loop()
    created_environments: list[str] = []

    @settings(
        max_examples=scale(8, 40),
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )
    @given(docs=st.lists(manifest(), min_size=BATCH, max_size=BATCH))
    def batch(docs: list[dict[str, Any]]) -> None:
        for doc in docs:  # every manifest a new object, judged on its own
            doc["metadata"] = {"name": f"{PREFIX}{next(numbers)}"}
        refused = asyncio.run_coroutine_threadsafe(apply_all(namespace, docs), loop).result(180)
        accepted = asyncio.run_coroutine_threadsafe(existing(api, namespace), loop).result(60)
        for doc in docs:
            name = doc["metadata"]["name"]
            if name in accepted:
                judged["accepted"] += 1
                if doc["kind"] == "EnvironmentConfig":
                    created_environments.append(name)
            else:
                judged["refused"] += 1
                said = refused.get(name)
                if said is None:  # an error that does not name its object: ask again alone
                    said = asyncio.run_coroutine_threadsafe(
                        apply_all(namespace, [doc]), loop
                    ).result(60).get(name) or asyncio.run_coroutine_threadsafe(
                        alone(namespace, doc), loop
                    ).result(60)
                assert FIELD.search(said), (doc, said)

    try:
        await loop.run_in_executor(None, batch)
    finally:
        custom = client.CustomObjectsApi(api)
        for name in created_environments:
            with contextlib.suppress(client.ApiException):
                await custom.delete_cluster_custom_object(
                    GROUP, VERSION, "environmentconfigs", name
                )
    assert judged["accepted"] and judged["refused"], judged
    assert sum(judged.values()) >= scale(8, 40) * BATCH
    await asyncio.sleep(3)  # the operator reconciles what was accepted meanwhile
    unexpected = [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("kabin") and r.levelno >= logging.ERROR
    ]
    assert not unexpected, unexpected[:3]
    print(f"\nfuzzed manifests: {judged}", flush=True)
