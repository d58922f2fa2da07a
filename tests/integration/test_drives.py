"""Drives on the real control plane: a PVC each, an explicit queued lock, default
drives, private and shared access, reclaim policies and growth."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client
from kubernetes_asyncio.client.rest import ApiException

from tests.support import eventually, exit_pod, gone, kubectl_apply, manifest, present, run

pytestmark = pytest.mark.integration

GROUP, VERSION = "kabin.dev", "v1alpha1"
RACERS = 20
FINISHED = {"Succeeded", "Failed"}


def drive(name: str, **spec: Any) -> dict[str, Any]:
    return manifest("Drive", name, {"size": "1Gi", **spec})


def session(name: str, **spec: Any) -> dict[str, Any]:
    return manifest("Session", name, {"type": "headless", "image": "busybox", **spec})


async def get(api: client.ApiClient, plural: str, namespace: str, name: str) -> dict[str, Any]:
    return await client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, plural, name
    )


async def apply(namespace: str, *manifests: dict[str, Any], user: str | None = None) -> None:
    for one in manifests:
        result = await kubectl_apply(one, namespace=namespace, user=user)
        assert result.code == 0, result.err


async def writers(api: client.ApiClient, namespace: str) -> set[str]:
    """Sessions with a pod that can still write (not finished; Terminating counts)."""
    pods = (await client.CoreV1Api(api).list_namespaced_pod(namespace)).items
    return {p.metadata.labels["kabin.dev/session"] for p in pods if p.status.phase not in FINISHED}


class Sampler:
    """Samples the namespace continuously: who writes, who holds."""

    def __init__(self, api: client.ApiClient, namespace: str, drive_name: str) -> None:
        self.api, self.namespace, self.drive = api, namespace, drive_name
        self.most_writers = 0
        self.holders: list[str] = []  # each new holder, in order
        self.samples = 0
        self._task: asyncio.Task[None] | None = None

    async def _loop(self) -> None:
        while True:
            busy = await writers(self.api, self.namespace)
            self.most_writers = max(self.most_writers, len(busy))
            assert len(busy) <= 1, f"two sessions write to the drive at once: {busy}"
            obj = await get(self.api, "drives", self.namespace, self.drive)
            holder = (obj.get("status", {}).get("holder") or {}).get("session")
            if holder and (not self.holders or self.holders[-1] != holder):
                self.holders.append(holder)
            self.samples += 1
            await asyncio.sleep(0.02)

    def __enter__(self) -> Sampler:
        self._task = asyncio.get_running_loop().create_task(self._loop())
        return self

    def __exit__(self, *_: object) -> None:
        assert self._task is not None
        if self._task.done():
            self._task.result()  # re-raise what the sampler saw
        self._task.cancel()


async def finish_holder(api: client.ApiClient, namespace: str, drive_name: str) -> str:
    """Wait for the drive's holder to run, then end its pod (exit 0); return its name."""

    async def running_holder() -> str:
        obj = await get(api, "drives", namespace, drive_name)
        holder = (obj.get("status", {}).get("holder") or {}).get("session")
        assert holder, "nobody holds the drive yet"
        pods = (
            await client.CoreV1Api(api).list_namespaced_pod(
                namespace, label_selector=f"kabin.dev/session={holder}"
            )
        ).items
        assert pods, f"{holder} has no pod yet"
        assert pods[0].status.phase == "Running", pods[0].status.phase
        return holder

    holder = await eventually(running_holder, timeout=60)
    await exit_pod(api, namespace, f"{holder}-1", 0)
    return holder


async def race(
    api: client.ApiClient,
    namespace: str,
    *,
    chaos: Callable[[], Coroutine[Any, Any, None]] | None = None,
) -> list[str]:
    """20 sessions at once on one drive, finished one by one; returns the hand-over order."""
    await apply(namespace, drive("shared", access="shared"))
    await run(
        "kubectl",
        "apply",
        "--server-side",
        "-n",
        namespace,
        "-f",
        "-",
        stdin=yaml.safe_dump_all(session(f"s{i:02d}", drive="shared") for i in range(RACERS)),
        within=60,
    )
    order = []
    with Sampler(api, namespace, "shared") as sampler:
        for _ in range(RACERS):
            order.append(await finish_holder(api, namespace, "shared"))
            if chaos is not None:
                await chaos()

        async def all_done() -> None:
            listed = await client.CustomObjectsApi(api).list_namespaced_custom_object(
                GROUP, VERSION, namespace, "sessions"
            )
            phases = [s.get("status", {}).get("phase") for s in listed["items"]]
            pods = (await client.CoreV1Api(api).list_namespaced_pod(namespace)).items
            assert phases == ["Succeeded"] * RACERS, (
                phases,
                sorted(
                    (p.metadata.name, p.status.phase) for p in pods if p.status.phase != "Succeeded"
                ),
            )

        await eventually(all_done, timeout=60)
    assert sampler.samples > RACERS
    assert sampler.most_writers == 1
    return order


async def test_twenty_sessions_take_turns_in_creation_order(
    api: client.ApiClient, operator: object, namespace: str
) -> None:
    from prometheus_client import REGISTRY  # the in-process operator's metrics

    def waits() -> float:
        return REGISTRY.get_sample_value("kabin_drive_wait_seconds_count") or 0.0

    before = waits()
    order = await race(api, namespace)
    assert order == [f"s{i:02d}" for i in range(RACERS)]
    # Every grant is a wait observed (the first ones waited little, the last ones long).

    async def observed() -> None:
        assert waits() - before >= RACERS

    await eventually(observed, timeout=5)

    async def free() -> None:
        obj = await get(api, "drives", namespace, "shared")
        assert "holder" not in obj["status"], obj["status"]
        assert obj["status"]["phase"] == "Available"

    await eventually(free)


def spawn(argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start an operator process (Popen returns at once; it does not block the loop)."""
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def test_the_same_race_with_the_operator_killed_at_random_moments(
    api: client.ApiClient, k_namespace: str
) -> None:
    env = {
        **os.environ,
        "KABIN_WEBHOOK_MANAGED": "false",
        "KABIN_METRICS_PORT": "0",
        "KABIN_EXCLUDE_NAMESPACES": "[]",
        "KABIN_ERROR_BACKOFFS": "[0.2, 0.5, 1]",
    }
    argv = [sys.executable, "-m", "kabin", "operator", "--namespace", k_namespace]
    procs = [spawn(argv, env)]
    rng = random.Random(7)
    kills = 0

    async def chaos() -> None:
        nonlocal kills
        if rng.random() < 0.4:
            await asyncio.sleep(rng.uniform(0, 0.3))
            procs[-1].send_signal(signal.SIGKILL)
            procs[-1].wait()
            kills += 1
            procs.append(spawn(argv, env))

    try:
        order = await race(api, k_namespace, chaos=chaos)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert kills >= 3
    assert sorted(order) == [f"s{i:02d}" for i in range(RACERS)]  # every one ran


@pytest.fixture
async def people(namespace: str) -> str:
    for user in ("alice", "bob"):
        await run(
            "kubectl",
            "create",
            "rolebinding",
            f"{user}-edits",
            "--clusterrole=edit",
            f"--user={user}",
            "-n",
            namespace,
        )
    return namespace


async def test_session_without_a_drive_makes_and_holds_its_users_default_drive(
    api: client.ApiClient, environments: None, people: str
) -> None:
    namespace = people
    await apply(namespace, session("lab", type="notebook", environment="notebook"), user="alice")

    home = await present(lambda: get(api, "drives", namespace, "alice-home"))
    assert home["spec"]["owner"] == "alice"
    assert home["spec"]["access"] == "private"
    assert home["spec"]["size"] == "10Gi"
    assert home["metadata"]["annotations"]["kabin.dev/display-name"] == "alice's default drive"

    async def held() -> dict[str, Any]:
        obj = await get(api, "drives", namespace, "alice-home")
        assert obj.get("status", {}).get("holder", {}).get("session") == "lab", obj.get("status")
        assert obj["status"]["phase"] == "InUse"
        return obj

    obj = await eventually(held)
    assert obj["status"]["claimName"] == "drive-alice-home"

    async def started() -> client.V1Pod:
        found = await client.CoreV1Api(api).list_namespaced_pod(
            namespace, label_selector="kabin.dev/session=lab"
        )
        assert len(found.items) == 1, "its pod is not there yet"
        return found.items[0]

    pod = await eventually(started)
    claims = [
        v.persistent_volume_claim.claim_name for v in pod.spec.volumes if v.persistent_volume_claim
    ]
    assert claims == ["drive-alice-home"]
    assert {"name": "drive", "mountPath": "/workspace"} in [
        {"name": m.name, "mountPath": m.mount_path} for m in pod.spec.containers[0].volume_mounts
    ]
    lab = await get(api, "sessions", namespace, "lab")
    assert lab["status"]["drive"] == "alice-home"


async def test_bob_may_not_use_alices_private_drive_but_may_use_a_shared_one(
    api: client.ApiClient, environments: None, people: str
) -> None:
    namespace = people
    await apply(namespace, drive("alice-home", access="private"), user="alice")
    await apply(namespace, drive("team", access="shared"), user="alice")

    refused = await kubectl_apply(
        session("peek", drive="alice-home"), namespace=namespace, user="bob"
    )
    assert refused.code != 0
    assert 'spec.drive: Drive "alice-home" is private to "alice"; "bob" may not use it' in (
        refused.err
    )
    await apply(namespace, session("work", drive="team"), user="bob")
    await apply(namespace, session("mine", drive="alice-home"), user="alice")


async def test_waiting_session_says_who_holds_the_drive(
    api: client.ApiClient, operator: object, namespace: str
) -> None:
    await apply(namespace, drive("one"), session("first", drive="one"))

    async def granted(name: str) -> None:
        obj = await get(api, "sessions", namespace, name)
        ready = [
            c for c in obj.get("status", {}).get("conditions", []) if c["type"] == "DriveReady"
        ]
        assert ready and ready[0]["status"] == "True", obj.get("status")

    await eventually(lambda: granted("first"))
    await apply(namespace, session("second", drive="one"))

    async def waiting() -> dict[str, Any]:
        obj = await get(api, "sessions", namespace, "second")
        ready = [
            c for c in obj.get("status", {}).get("conditions", []) if c["type"] == "DriveReady"
        ]
        assert ready and ready[0]["reason"] == "DriveInUse", obj.get("status")
        return ready[0]

    condition = await eventually(waiting)
    assert condition["message"] == 'Drive "one" is held by session "first"'

    async def queued() -> None:
        # The drive's reconcile writes its queue just after the session's says why.
        obj = await get(api, "drives", namespace, "one")
        assert [w["session"] for w in obj["status"].get("waiting", [])] == ["second"], obj

    await eventually(queued)
    assert not (
        await client.CoreV1Api(api).list_namespaced_pod(
            namespace, label_selector="kabin.dev/session=second"
        )
    ).items


@pytest.mark.parametrize(
    ("policy", "kept"), [("Retain", True), ("Delete", False)], ids=["retain", "delete"]
)
async def test_deleting_a_held_drive_waits_for_release_then_honours_its_reclaim_policy(
    api: client.ApiClient, operator: object, namespace: str, policy: str, kept: bool
) -> None:
    core = client.CoreV1Api(api)
    await apply(namespace, drive("data", reclaimPolicy=policy), session("user", drive="data"))
    await eventually(lambda: _pod_running(api, namespace, "user-1"))
    await client.CustomObjectsApi(api).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, "drives", "data"
    )

    async def blocked() -> dict[str, Any]:
        obj = await get(api, "drives", namespace, "data")
        assert obj["metadata"].get("deletionTimestamp")
        conditions = {c["type"]: c for c in obj.get("status", {}).get("conditions", [])}
        assert "DeletionBlocked" in conditions, obj.get("status")
        return conditions["DeletionBlocked"]

    condition = await eventually(blocked)
    assert condition["message"] == 'deletion waits for session "user" to release the drive'
    await exit_pod(api, namespace, "user-1", 0)
    await gone(lambda: get(api, "drives", namespace, "data"), within=60)
    if kept:
        pvc = await core.read_namespaced_persistent_volume_claim("drive-data", namespace)
        assert pvc.status.phase == "Bound"
    else:
        # Deleted, though Kubernetes keeps it while a pod still names it: the finished
        # headless pod, kept for its logs. It goes with the session.
        pvc = await core.read_namespaced_persistent_volume_claim("drive-data", namespace)
        assert pvc.metadata.deletion_timestamp is not None
        await client.CustomObjectsApi(api).delete_namespaced_custom_object(
            GROUP, VERSION, namespace, "sessions", "user"
        )
        await gone(
            lambda: core.read_namespaced_persistent_volume_claim("drive-data", namespace), within=60
        )


async def _pod_running(api: client.ApiClient, namespace: str, name: str) -> None:
    try:
        pod = await client.CoreV1Api(api).read_namespaced_pod(name, namespace)
    except ApiException as e:
        raise AssertionError(f"{name}: {e.status}") from e
    assert pod.status.phase == "Running"


async def test_growing_a_drive_expands_its_pvc(
    api: client.ApiClient, operator: object, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    # The simulated class: the real node's local-path volumes are directories, which
    # no resizer grows.
    await apply(namespace, drive("grow", size="1Gi", storageClassName="kabin-sim"))

    async def capacity(size: str) -> None:
        obj = await get(api, "drives", namespace, "grow")
        assert obj.get("status", {}).get("capacity") == size, obj.get("status")
        assert obj["status"]["phase"] == "Available"

    await eventually(lambda: capacity("1Gi"))
    await apply(namespace, drive("grow", size="5Gi", storageClassName="kabin-sim"))
    await eventually(lambda: capacity("5Gi"))
    pvc = await core.read_namespaced_persistent_volume_claim("drive-grow", namespace)
    assert pvc.spec.resources.requests["storage"] == "5Gi"
    shrink = await kubectl_apply(
        drive("grow", size="2Gi", storageClassName="kabin-sim"), namespace=namespace
    )
    assert shrink.code != 0
    assert "may only grow: 2Gi is smaller than 5Gi" in shrink.err


@pytest.mark.parametrize(("action", "ended"), [("Expire", "Expired"), ("Suspend", "Suspended")])
async def test_a_deleted_default_drive_is_not_brought_back_by_a_finished_session(
    api: client.ApiClient, environments: None, people: str, action: str, ended: str
) -> None:
    """Only a session about to run makes its user's default drive: one that has ended
    (or is suspended) does not make it again when it is reconciled after its user
    deleted the drive."""
    namespace = people
    old = session("old", type="notebook", environment="notebook", timeout=5, timeoutAction=action)
    await apply(namespace, old, user="alice")
    await present(lambda: get(api, "drives", namespace, "alice-home"))

    async def expired() -> None:
        obj = await get(api, "sessions", namespace, "old")
        assert obj.get("status", {}).get("phase") == ended, obj.get("status")

    await eventually(expired, timeout=60)
    custom = client.CustomObjectsApi(api)
    await custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "drives", "alice-home")
    await gone(lambda: get(api, "drives", namespace, "alice-home"), within=60)

    # Any reconcile of the old session (a resync, a restart, an edit) reads it again.
    await custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "sessions", "old",
        {"metadata": {"annotations": {"test.kabin.dev/touch": "1"}}},
        _content_type="application/merge-patch+json",
    )  # fmt: skip
    await asyncio.sleep(3)
    with pytest.raises(client.ApiException) as missing:
        await get(api, "drives", namespace, "alice-home")
    assert missing.value.status == 404

    # A new session of alice's makes it again.
    await apply(namespace, session("new", type="notebook", environment="notebook"), user="alice")
    await present(lambda: get(api, "drives", namespace, "alice-home"))
