"""The client's pure parts: create arguments to manifests, objects to Skaha records,
statistics from nodes and pods, and the blocking class generated from the async one."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest

from kabin import AsyncSession, Session
from kabin.cli.output import age
from kabin.client import Invalid, records

CREATE: dict[str, Any] = {
    "name": "test",
    "namespace": "ns",
    "image": "busybox",
    "cores": 2,
    "ram": 4,
    "kind": "headless",
    "gpu": None,
    "cmd": None,
    "args": None,
    "env": None,
    "replicas": 1,
}


def manifests(**changes: Any) -> list[dict[str, Any]]:
    return records.session_manifests(**{**CREATE, **changes})


def test_one_replica_is_the_name_itself() -> None:
    (only,) = manifests()
    assert only["metadata"] == {"name": "test", "namespace": "ns"}
    assert only["spec"] == {
        "type": "headless",
        "image": "busybox",
        "resources": {"cpu": 2, "memory": "4Gi"},
    }


def test_replicas_are_sessions_with_replica_variables() -> None:
    made = manifests(replicas=3, env={"TEST": "test", "N": 1, "REPLICA_ID": "mine"})
    assert [m["metadata"]["name"] for m in made] == ["test-1", "test-2", "test-3"]
    for index, manifest in enumerate(made, start=1):
        env = {e["name"]: e["value"] for e in manifest["spec"]["env"]}
        assert env == {"TEST": "test", "N": "1", "REPLICA_ID": str(index), "REPLICA_COUNT": "3"}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"cmd": "python", "args": "train.py --name 'a b'"},
            {"command": ["python"], "args": ["train.py", "--name", "a b"]},
        ),
        ({"cores": 0.5, "ram": 1.5}, {"resources": {"cpu": "500m", "memory": "1.5Gi"}}),
        ({"gpu": 2}, {"resources": {"cpu": 2, "memory": "4Gi", "gpu": 2}}),
        (
            {
                "image": None,
                "cores": None,
                "ram": None,
                "environment": "notebook",
                "kind": "notebook",
                "drive": "data",
                "timeout": 60,
            },
            {
                "image": None,
                "resources": None,
                "environment": "notebook",
                "type": "notebook",
                "drive": "data",
                "timeout": 60,
            },
        ),
    ],
    ids=["cmd-and-shell-split-args", "fractions", "gpu", "environment-drive-timeout"],
)
def test_create_arguments_map_to_the_spec(
    changes: dict[str, Any], expected: dict[str, Any]
) -> None:
    (manifest,) = manifests(**changes)
    for key, value in expected.items():
        assert manifest["spec"].get(key) == value, key


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "Bad_Name"}, "name: 'Bad_Name' must be lowercase letters"),
        ({"name": "x" * 62, "replicas": 10}, "with its replica suffix"),
        ({"cores": 0}, "cores: 0 must be more than 0"),
        ({"ram": -1}, "ram: -1 must be more than 0"),
        ({"gpu": -1}, "gpu: -1 must be at least 0"),
        ({"cores": "2"}, "cores: '2' is not a number"),
        ({"replicas": 0}, "replicas: 0 must be a whole number of at least 1"),
        ({"replicas": 513}, "replicas: 513 exceeds the maximum of 512"),
        ({"kind": "desktop-app"}, "kind: 'desktop-app' is not a session type; use one of notebook"),
        ({"image": None}, "image: an image is required unless an environment is named"),
        ({"args": "'unclosed"}, 'args: "\'unclosed" cannot be split'),
        ({"env": {"bad name": "x"}}, "spec.env.0.name: String should match pattern"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_arguments_name_the_field_and_the_limit(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(Invalid, match=None) as refused:
        manifests(**changes)
    assert message in str(refused.value)
    assert isinstance(refused.value, ValueError)


@pytest.mark.parametrize(
    ("status", "phase"),
    [(None, None), ("Running", "Running"), ("Error", "Failed"), ("Expired", "Expired")],
)
def test_statuses_include_skahas_words(status: str | None, phase: str | None) -> None:
    assert records.check_status(status) == phase


def test_unknown_status_and_view_are_refused() -> None:
    with pytest.raises(Invalid, match="status: 'Done' is not a session status"):
        records.check_status("Done")
    with pytest.raises(Invalid, match="view: 'mine' is not a view"):
        records.check_view("mine")


@pytest.mark.parametrize(
    ("session_id", "expected"),
    [("a", ("home", "a")), ("other/a", ("other", "a"))],
)
def test_ids_are_names_or_namespace_slash_name(session_id: str, expected: tuple[str, str]) -> None:
    assert records.parse_id(session_id, "home") == expected


def test_a_malformed_id_is_refused() -> None:
    with pytest.raises(Invalid, match="'a/b/c' is not a session id"):
        records.parse_id("a/b/c", "home")


SESSION: dict[str, Any] = {
    "metadata": {"name": "nb", "namespace": "home", "creationTimestamp": "2026-01-01T00:00:00Z"},
    "spec": {"type": "notebook", "environment": "notebook", "user": "alice"},
    "status": {
        "phase": "Running",
        "startTime": "2026-01-01T00:00:05Z",
        "expiryTime": "2026-01-01T02:00:05Z",
        "connectURL": "https://kabin.localtest.me/session/notebook/home/nb/lab",
        "requested": {"cpu": "500m", "memory": "8Gi", "gpu": 1},
        "usage": {"cpuCores": 0.25, "memory": "101Mi", "gpuUtilization": 12.5, "gpuMemory": "2Gi"},
    },
}


def test_a_session_as_skaha_describes_it() -> None:
    assert records.record(SESSION, home="home", images={"notebook": "jupyter:1"}) == {
        "id": "nb",
        "userid": "alice",
        "image": "jupyter:1",
        "type": "notebook",
        "status": "Running",
        "name": "nb",
        "startTime": "2026-01-01T00:00:05Z",
        "expiryTime": "2026-01-01T02:00:05Z",
        "connectURL": "https://kabin.localtest.me/session/notebook/home/nb/lab",
        "requestedRAM": "8G",
        "requestedCPUCores": "0.5",
        "requestedGPUCores": "1",
        "ramInUse": "101Mi",
        "gpuRAMInUse": "2Gi",
        "cpuCoresInUse": "0.25",
        "gpuUtilization": "12.5",
    }


def test_a_new_session_in_another_namespace() -> None:
    new = {
        "metadata": {
            "name": "job",
            "namespace": "other",
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {"type": "headless", "image": "busybox", "resources": {"cpu": 2, "memory": "4Gi"}},
    }
    record = records.record(new, home="home", images={})
    assert record["id"] == "other/job"
    assert (record["status"], record["startTime"], record["connectURL"]) == (
        "Pending",
        "2026-01-01T00:00:00Z",
        "not-applicable",
    )
    assert (record["requestedCPUCores"], record["requestedRAM"], record["requestedGPUCores"]) == (
        "2",
        "4G",
        "0",
    )
    assert record["ramInUse"] == record["cpuCoresInUse"] == record["userid"] == "<none>"


def node(
    name: str, cpu: str, memory: str, gpus: int = 0, product: str | None = None, **spec: Any
) -> dict[str, Any]:
    allocatable = {"cpu": cpu, "memory": memory} | ({"nvidia.com/gpu": str(gpus)} if gpus else {})
    labels = {"nvidia.com/gpu.product": product} if product else {}
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
        "status": {"allocatable": allocatable},
    }


def pod(
    node_name: str | None,
    phase: str,
    cpu: str,
    memory: str,
    gpu: int = 0,
    selector: str | None = None,
) -> dict[str, Any]:
    limits = {"nvidia.com/gpu": str(gpu)} if gpu else {}
    spec: dict[str, Any] = {
        "containers": [
            {"resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": limits}}
        ]
    }
    if node_name:
        spec["nodeName"] = node_name
    if selector:
        spec["nodeSelector"] = {"nvidia.com/gpu.product": selector}
    return {"metadata": {"name": "p"}, "spec": spec, "status": {"phase": phase}}


def session(kind: str, phase: str | None) -> dict[str, Any]:
    return {
        "metadata": {"name": "s", "namespace": "n"},
        "spec": {"type": kind},
        "status": {"phase": phase} if phase else {},
    }


def test_stats_in_skahas_shape_with_gpus_by_product() -> None:
    stats = records.stats(
        nodes=[
            node("cpu-1", "16", "64Gi"),
            node("cpu-2", "16", "64Gi"),
            node("gpu-1", "32", "256Gi", gpus=8, product="H100"),
            node("cordoned", "64", "512Gi", unschedulable=True),
        ],
        pods=[
            pod("cpu-1", "Running", "2", "4Gi"),
            pod("gpu-1", "Running", "500m", "8Gi", gpu=2),
            pod(None, "Pending", "1", "1Gi", gpu=1, selector="H100"),
            pod("cpu-2", "Succeeded", "8", "8Gi"),  # finished: holds nothing
        ],
        sessions=[
            session("notebook", "Running"),
            session("headless", None),
            session("headless", "Succeeded"),
        ],
    )
    assert stats["instances"] == {
        "notebook": 1,
        "vscode": 0,
        "desktop": 0,
        "ssh": 0,
        "headless": 1,
        "carta": 0,
        "firefly": 0,
        "contributed": 0,
        "total": 2,
    }
    assert stats["cores"] == {
        "requestedCPUCores": 3.5,
        "cpuCoresAvailable": 64,
        "maxCPUCores": {"cpuCores": 32, "withRam": "256Gi"},
    }
    assert stats["ram"] == {
        "requestedRAM": "13Gi",
        "ramAvailable": "384Gi",
        "maxRAM": {"ram": "256Gi", "withCPUCores": 32},
    }
    assert stats["gpus"] == {"H100": {"requested": 3, "available": 8}}


def test_stats_of_an_empty_cluster() -> None:
    stats = records.stats(nodes=[], pods=[], sessions=[])
    assert stats["instances"]["total"] == 0
    assert stats["cores"]["maxCPUCores"] == {"cpuCores": 0, "withRam": "<none>"}
    assert stats["gpus"] == {}


def _cluster_queue(name: str, cpu: str, used: str, *, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-05T10:00:00Z"
    resources = [{"name": "cpu", "nominalQuota": cpu}, {"name": "memory", "nominalQuota": "64Gi"}]
    return {
        "metadata": meta,
        "spec": {"resourceGroups": [{"flavors": [{"name": "f", "resources": resources}]}]},
        "status": {
            "flavorsUsage": [{"name": "f", "resources": [{"name": "cpu", "total": used}]}],
            "admittedWorkloads": 3,
            "pendingWorkloads": 2,
        },
    }


def test_stats_with_cluster_queues_are_their_quotas_and_use_but_of_one_being_deleted() -> None:
    queues = [
        _cluster_queue("team-a", "8", "3"),
        _cluster_queue("team-b", "4", "500m"),
        _cluster_queue("old", "100", "1", deleting=True),  # admits nothing more
    ]
    stats = records.stats(nodes=[], pods=[], sessions=[], cluster_queues=queues)
    assert stats["cores"]["cpuCoresAvailable"] == 12
    assert stats["cores"]["requestedCPUCores"] == 3.5
    assert stats["ram"]["ramAvailable"] == "128Gi"
    assert sorted(stats["queues"]) == ["team-a", "team-b"]
    assert stats["queues"]["team-a"] == {
        "cpu": {"quota": 8, "used": 3},
        "memory": {"quota": "64Gi", "used": "0Gi"},
        "gpu": {"quota": 0, "used": 0},
        "admitted": 3,
        "waiting": 2,
    }


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        ({}, None),
        ({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}, None),
        ({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}, True),
        ({"phase": "Succeeded"}, True),
        ({"phase": "Failed"}, False),
        ({"phase": "Expired"}, False),
    ],
    ids=["new", "running-not-ready", "ready", "succeeded", "failed", "expired"],
)
def test_when_waiting_ends(status: dict[str, Any], verdict: bool | None) -> None:
    assert records.settled({"metadata": {}, "status": status}) is verdict


def test_logs_of_several_replicas_are_sections() -> None:
    assert records.join_logs([]) == ""
    assert records.join_logs([("a-1", "x\n")]) == "x\n"
    assert records.join_logs([("a-1", "x\n"), ("a-2", "y\n")]) == "==> a-1 <==\nx\n==> a-2 <==\ny\n"


def public_methods(cls: type) -> dict[str, Any]:
    return {n: m for n, m in vars(cls).items() if not n.startswith("_") and callable(m)}


def test_session_is_the_blocking_twin_of_every_async_session_method() -> None:
    asynchronous = {
        n: m
        for n, m in public_methods(AsyncSession).items()
        if inspect.iscoroutinefunction(m) or inspect.isasyncgenfunction(m)
    }
    blocking = public_methods(Session)
    assert set(asynchronous) <= set(blocking), set(asynchronous) - set(blocking)
    for name, method in asynchronous.items():
        twin = blocking[name]
        assert not inspect.iscoroutinefunction(twin), name
        params = list(inspect.signature(method).parameters.values())
        assert list(inspect.signature(twin).parameters.values()) == params, name
        assert twin.__doc__ and "Examples:" in twin.__doc__ and "await " not in twin.__doc__, name


def test_every_public_method_documents_an_example() -> None:
    for cls in (AsyncSession, Session):
        for name, method in public_methods(cls).items():
            assert method.__doc__ and "Examples:" in method.__doc__, f"{cls.__name__}.{name}"


def test_the_constructors_take_skahas_arguments(tmp_path: Any) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: a\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {}}]\n"
        "contexts: [{name: a, context: {cluster: c, user: u, namespace: team}},"
        " {name: b, context: {cluster: c, user: u}}]\n"
    )
    assert Session(kubeconfig=str(kubeconfig)).namespace == "team"
    assert AsyncSession(kubeconfig=str(kubeconfig), context="b").namespace == "default"
    assert (
        Session(
            kubeconfig=str(kubeconfig), namespace="x", timeout=5, concurrency=4, loglevel=40
        ).options()["concurrency"]
        == 4
    )
    with pytest.raises(Invalid, match="context: 'c' is not in"):
        Session(kubeconfig=str(kubeconfig), context="c")
    with pytest.raises(Invalid, match="concurrency: 0 must be a whole number"):
        AsyncSession(kubeconfig=str(kubeconfig), concurrency=0)


async def test_an_unreachable_api_server_is_an_error_not_a_hang(tmp_path: Any) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: a\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: a, context: {cluster: c, user: u}}]\n"
    )
    from kabin.client import Unreachable

    async with AsyncSession(kubeconfig=str(kubeconfig), timeout=5) as session:
        with pytest.raises(
            Unreachable, match=r"cannot reach the API server at https://127\.0\.0\.1:9"
        ):
            await session.fetch()
    asyncio.get_running_loop()  # a running loop here, as in Jupyter
    with Session(kubeconfig=str(kubeconfig), timeout=5) as blocking, pytest.raises(Unreachable):
        blocking.fetch()


@pytest.mark.parametrize(
    ("stamp", "shown"),
    [
        ("2026-01-01T00:00:30Z", "60s"),
        ("2026-01-01T00:00:00Z", "90s"),
        ("2025-12-31T23:00:00Z", "61m"),
        ("2025-12-30T00:00:00Z", "2d"),
    ],
)
def test_ages_read_like_kubectls(stamp: str, shown: str) -> None:
    from datetime import UTC, datetime

    assert age(stamp, now=datetime(2026, 1, 1, 0, 1, 30, tzinfo=UTC)) == shown
