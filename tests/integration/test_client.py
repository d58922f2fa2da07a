"""The Python client on the real control plane: the Skaha documentation's own examples,
run through `Session` (blocking) and `AsyncSession` alike.

Each test takes a `skaha` fixture parametrized over both classes; `call` awaits the
async one and calls the blocking one directly, inside the test's running event
loop, as a Jupyter notebook would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes_asyncio import client

from kabin import AsyncSession, Session
from kabin.client import AlreadyExists, Invalid, NotFound
from tests.support import SKAHA_KEYS, cores_available, eventually, exit_pod, present

pytestmark = pytest.mark.integration

GROUP, VERSION = "kabin.dev", "v1alpha1"
IMAGE = "images.canfar.net/skaha/terminal:1.1.1"
GPU_PRODUCT = "NVIDIA-H100-80GB-HBM3"

Client = Session | AsyncSession


@pytest.fixture(params=["Session", "AsyncSession"])
async def skaha(
    request: pytest.FixtureRequest, namespace: str, operator: object
) -> AsyncIterator[Client]:
    """A client of either kind in the test's namespace, as a Skaha user builds one."""
    kind = Session if request.param == "Session" else AsyncSession
    session = kind(namespace=namespace, timeout=30)
    yield session
    await call(session, "close")


async def call(session: Client, method: str, *args: Any, **kwargs: Any) -> Any:
    """Await an AsyncSession method; call a Session method right here, in a running loop."""
    result = getattr(session, method)(*args, **kwargs)
    return await result if isinstance(session, AsyncSession) else result


async def sessions_of(api: client.ApiClient, namespace: str) -> dict[str, dict[str, Any]]:
    found = await client.CustomObjectsApi(api).list_namespaced_custom_object(
        GROUP, VERSION, namespace, "sessions"
    )
    return {s["metadata"]["name"]: s for s in found["items"]}


def effective_env(pod: client.V1Pod) -> dict[str, str]:
    """The environment a container sees: for a repeated name, the last definition wins."""
    return {e.name: e.value for e in pod.spec.containers[0].env}


async def phase(session: Client, ids: list[str], wanted: str) -> list[dict[str, Any]]:
    async def probe() -> list[dict[str, Any]]:
        found = await call(session, "info", ids)
        assert [s["status"] for s in found] == [wanted] * len(ids), found
        return found  # type: ignore[no-any-return]

    return await eventually(probe, timeout=30)


async def test_create_replicas_with_env(
    skaha: Client, api: client.ApiClient, namespace: str
) -> None:
    ids = await call(
        skaha,
        "create",
        name="test",
        image=IMAGE,
        cores=2,
        ram=8,
        kind="headless",
        cmd="env",
        env={"TEST": "test"},
        replicas=2,
    )
    assert ids == ["test-1", "test-2"]

    stored = await sessions_of(api, namespace)
    assert sorted(stored) == ["test-1", "test-2"]
    for replica, name in enumerate(ids, start=1):
        spec = stored[name]["spec"]
        assert spec["type"] == "headless"
        assert spec["image"] == IMAGE
        assert spec["resources"] == {"cpu": 2, "memory": "8Gi"}
        assert spec["command"] == ["env"]
        assert spec["replicas"] == 1
        assert {"name": "TEST", "value": "test"} in spec["env"]

        pod = await present(
            lambda name=name: client.CoreV1Api(api).read_namespaced_pod(f"{name}-1", namespace)
        )
        env = effective_env(pod)
        assert env["TEST"] == "test"
        assert (env["REPLICA_ID"], env["REPLICA_COUNT"]) == (str(replica), "2")
        names = [e.name for e in pod.spec.containers[0].env]
        assert len(names) == len(set(names)), f"a variable set twice: {names}"

    # replicas=1 makes the name itself, with no replica variables of its own.
    assert await call(skaha, "create", "single", IMAGE) == ["single"]
    single = (await sessions_of(api, namespace))["single"]["spec"]
    assert single["resources"] == {"cpu": 2, "memory": "4Gi"}  # Skaha's defaults
    assert "env" not in single


async def test_create_with_a_taken_name_is_a_clear_error(skaha: Client, namespace: str) -> None:
    await call(skaha, "create", "taken", IMAGE)
    with pytest.raises(
        AlreadyExists, match=f'session "taken" already exists in namespace "{namespace}"'
    ):
        await call(skaha, "create", "taken", IMAGE)


async def test_the_api_servers_refusal_surfaces_with_its_message(
    skaha: Client, environments: None
) -> None:
    with pytest.raises(Invalid) as refused:
        await call(
            skaha,
            "create",
            "big",
            None,
            cores=None,
            ram=None,
            kind="notebook",
            gpu=9,
            environment="pytorch-gpu",
        )
    assert (
        'spec.resources.gpu: 9 exceeds the maximum of 8 set by EnvironmentConfig "pytorch-gpu"'
        in str(refused.value)
    )
    with pytest.raises(Invalid, match="cores: 0 must be more than 0"):
        await call(skaha, "create", "zero", IMAGE, cores=0)


async def test_fetch_by_kind_and_status(
    skaha: Client, api: client.ApiClient, namespace: str, environments: None
) -> None:
    await call(skaha, "create", "batch", IMAGE, replicas=2)
    await call(skaha, "create", "nb", None, cores=1, ram=2, kind="notebook", environment="notebook")

    headless = await call(skaha, "fetch", kind="headless")
    assert [s["id"] for s in headless] == ["batch-1", "batch-2"]
    notebooks = await call(skaha, "fetch", kind="notebook")
    assert [s["id"] for s in notebooks] == ["nb"]
    for record in headless + notebooks:
        assert set(record) == SKAHA_KEYS
        assert all(isinstance(v, str) for v in record.values())
    (nb,) = notebooks
    assert nb["image"] == "quay.io/jupyter/scipy-notebook:2025-06-02"  # the environment's
    assert (nb["requestedCPUCores"], nb["requestedRAM"], nb["requestedGPUCores"]) == (
        "1",
        "2G",
        "0",
    )
    assert nb["userid"] != "<none>"  # stamped by the webhook

    await phase(skaha, ["batch-1", "batch-2"], "Running")
    await exit_pod(api, namespace, "batch-1-1", 0)
    await phase(skaha, ["batch-1"], "Succeeded")
    assert [s["id"] for s in await call(skaha, "fetch", kind="headless", status="Succeeded")] == [
        "batch-1"
    ]
    assert [s["id"] for s in await call(skaha, "fetch", status="Running", kind="headless")] == [
        "batch-2"
    ]
    assert len(await call(skaha, "fetch")) == 3
    with pytest.raises(Invalid, match="kind: 'desktop-app' is not a session type"):
        await call(skaha, "fetch", kind="desktop-app")


async def test_info_logs_stats_and_destroy_of_a_list_of_ids(
    skaha: Client, api: client.ApiClient, namespace: str, environments: None
) -> None:
    ids = await call(
        skaha, "create", name="test", image=IMAGE, cmd="env", env={"TEST": "test"}, replicas=2
    )
    gpu = await call(
        skaha,
        "create",
        "gpu",
        None,
        cores=None,
        ram=None,
        kind="notebook",
        environment="pytorch-gpu",
    )

    info = await phase(skaha, ids, "Running")
    assert [i["id"] for i in info] == ids
    assert all(set(i) == SKAHA_KEYS for i in info)
    assert info[0]["connectURL"] == "not-applicable"
    assert info[0]["startTime"] != "<none>"

    logs = await call(skaha, "logs", ids)
    assert set(logs) == set(ids)
    assert all("[kabin-sim] hello from a simulated pod" in text for text in logs.values())

    stats = await call(skaha, "stats")
    assert set(stats) == {"instances", "cores", "ram", "gpus"}
    assert stats["instances"]["headless"] >= 2 and stats["instances"]["notebook"] >= 1
    assert stats["instances"]["total"] == sum(
        v for k, v in stats["instances"].items() if k != "total"
    )
    # The simulated cluster (4 nodes of 16 cores, 2 GPU nodes of 32) and the real node.
    assert stats["cores"]["cpuCoresAvailable"] == await cores_available()
    assert stats["cores"]["requestedCPUCores"] >= 2 * 2
    assert stats["cores"]["maxCPUCores"] == {"cpuCores": 32, "withRam": "256Gi"}
    assert stats["ram"]["maxRAM"] == {"ram": "256Gi", "withCPUCores": 32}
    assert stats["gpus"][GPU_PRODUCT]["available"] == 16

    async def gpu_placed() -> None:
        now = await call(skaha, "stats")
        assert now["gpus"][GPU_PRODUCT]["requested"] >= 1, now["gpus"]

    await eventually(gpu_placed)

    assert await call(skaha, "destroy", ids + gpu) == {"test-1": True, "test-2": True, "gpu": True}

    async def gone() -> None:
        assert not await sessions_of(api, namespace)

    await eventually(gone)
    assert await call(skaha, "destroy", ["test-1"]) == {"test-1": False}
    with pytest.raises(NotFound, match=f'session "test-1" not found in namespace "{namespace}"'):
        await call(skaha, "info", ["test-1"])
    with pytest.raises(NotFound):
        await call(skaha, "logs", "test-1")


@pytest.mark.parametrize(
    ("kind", "status", "destroyed"),
    [
        (None, None, ["test-done"]),  # Skaha's defaults: headless, Succeeded
        ("headless", "Running", ["test-running"]),
        ("notebook", "Running", ["test-notebook"]),
        ("headless", "Failed", []),
    ],
    ids=["defaults", "headless-running", "notebook-running", "nothing-failed"],
)
async def test_destroy_with_prefix(
    skaha: Client,
    api: client.ApiClient,
    namespace: str,
    environments: None,
    kind: str | None,
    status: str | None,
    destroyed: list[str],
) -> None:
    for name in ("test-done", "test-running", "other-done"):
        await call(skaha, "create", name, IMAGE)
    await call(
        skaha,
        "create",
        "test-notebook",
        None,
        cores=1,
        ram=2,
        kind="notebook",
        environment="notebook",
    )
    await phase(skaha, ["test-done", "test-running", "other-done", "test-notebook"], "Running")
    for name in ("test-done", "other-done"):
        await exit_pod(api, namespace, f"{name}-1", 0)
    await phase(skaha, ["test-done", "other-done"], "Succeeded")

    if kind is None:
        result = await call(skaha, "destroy_with", prefix="test")
    else:
        result = await call(skaha, "destroy_with", prefix="test", kind=kind, status=status)

    assert result == dict.fromkeys(destroyed, True)

    async def left() -> None:
        remaining = set(await sessions_of(api, namespace))
        assert remaining == {"test-done", "test-running", "other-done", "test-notebook"} - set(
            destroyed
        )

    await eventually(left)


async def test_fetch_view_all_spans_namespaces(
    skaha: Client, api: client.ApiClient, namespace: str
) -> None:
    other = f"{namespace}-b"[:63]
    await client.CoreV1Api(api).create_namespace({"metadata": {"name": other}})
    try:
        elsewhere = AsyncSession(namespace=other)
        await elsewhere.create("there", IMAGE)
        await elsewhere.close()
        await call(skaha, "create", "here", IMAGE)

        mine = [s["id"] for s in await call(skaha, "fetch")]
        assert mine == ["here"]
        everywhere = [s["id"] for s in await call(skaha, "fetch", view="all")]
        assert "here" in everywhere and f"{other}/there" in everywhere
        (there,) = await call(skaha, "info", [f"{other}/there"])
        assert there["name"] == "there"
    finally:
        await client.CoreV1Api(api).delete_namespace(other)


async def test_wait_and_renew(skaha: Client, api: client.ApiClient, namespace: str) -> None:
    await call(skaha, "create", "shell", IMAGE, timeout=3600)
    seen: list[str] = []
    ready = await call(
        skaha,
        "wait",
        "shell",
        timeout=30,
        on_change=lambda o: seen.append(o["status"]["phase"] if o.get("status") else "new"),
    )
    assert ready == {"shell": True}
    assert seen[-1] == "Running"

    before = (await sessions_of(api, namespace))["shell"]["status"]["expiryTime"]
    assert await call(skaha, "renew", ["shell"]) == ["shell"]

    async def renewed() -> None:
        status = (await sessions_of(api, namespace))["shell"]["status"]
        assert status.get("renewal") and status["expiryTime"] >= before, status

    await eventually(renewed)
    with pytest.raises(NotFound):
        await call(skaha, "renew", ["nope"])


async def test_blocking_session_runs_inside_a_running_loop(
    namespace: str, operator: object
) -> None:
    asyncio.get_running_loop()  # a loop runs here, as in Jupyter: asyncio.run would refuse
    with Session(namespace=namespace) as session:
        assert session.create("nb", IMAGE) == ["nb"]
        assert [s["id"] for s in session.fetch()] == ["nb"]
