"""Queues on Kueue, the real project (hack/kueue/up.sh runs it beside the control plane):
sessions wait in a LocalQueue with their place in line in their Queued condition, a
session's replicas are admitted together, notebooks come before headless runs, users
get fair turns, preemption suspends or requeues, and nothing is lost while Kueue or the
operator is down."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.rest import ApiException

from tests.support import command, eventually, exit_pod, kubectl_apply, manifest, run

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
GROUP, VERSION = "kabin.dev", "v1alpha1"
KUEUE, KV = "kueue.x-k8s.io", "v1beta2"
FLAVOR = "kabin-test"
QUEUE = "team"


def headless(name: str, cpu: str = "1", **spec: Any) -> dict[str, Any]:
    return manifest(
        "Session",
        name,
        {"type": "headless", "image": "busybox", "resources": {"cpu": cpu}, "queue": QUEUE, **spec},
    )


def notebook() -> dict[str, Any]:
    """A notebook of 1 CPU (its agent asks a little more) in the queue: interactive
    priority."""
    spec = {"type": "notebook", "image": "busybox", "resources": {"cpu": "1"}, "queue": QUEUE}
    return manifest("Session", "notebook", spec)


async def apply(namespace: str, *manifests: dict[str, Any]) -> None:
    for one in manifests:
        result = await kubectl_apply(one, namespace=namespace)
        assert result.code == 0, result.err


async def get(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    return await client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, "sessions", name
    )


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == kind]
    return found[0] if found else {}


async def pods_of(api: client.ApiClient, namespace: str, name: str) -> list[Any]:
    found = await client.CoreV1Api(api).list_namespaced_pod(
        namespace, label_selector=f"kabin.dev/session={name}"
    )
    return list(found.items)


def gated(pod: Any) -> bool:
    return any(g.name == "kueue.x-k8s.io/admission" for g in pod.spec.scheduling_gates or [])


async def states(api: client.ApiClient, namespace: str, names: list[str]) -> dict[str, str]:
    """Each session as a person sees it: Running, or Queued with its place (the message)."""
    seen = {}
    for name in names:
        obj = await get(api, namespace, name)
        queued = condition(obj, "Queued")
        phase = (obj.get("status") or {}).get("phase")
        seen[name] = f"Queued: {queued['message']}" if queued.get("status") == "True" else phase
    return seen


async def until(
    probe: Callable[[], Awaitable[Any]], timeout: float = 60, interval: float = 0.25
) -> Any:
    return await eventually(probe, timeout=timeout, interval=interval)


class Queues:
    """ClusterQueues and LocalQueues a test makes (deleted after it)."""

    def __init__(self, api: client.ApiClient) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.made: list[str] = []

    async def flavor(self) -> None:
        try:
            await self.custom.create_cluster_custom_object(
                KUEUE, KV, "resourceflavors",
                {"apiVersion": f"{KUEUE}/{KV}", "kind": "ResourceFlavor",
                 "metadata": {"name": FLAVOR}},
            )  # fmt: skip
        except ApiException as e:
            if e.status != 409:
                raise

    async def cluster(
        self, namespaces: list[str], cpu: int | str, *, fair: bool = False, preempt: bool = False
    ) -> str:
        """A ClusterQueue of `cpu` CPUs for these namespaces, and a LocalQueue in each."""
        await self.flavor()
        name = f"cq-{uuid.uuid4().hex[:6]}"
        spec: dict[str, Any] = {
            "namespaceSelector": {
                "matchExpressions": [
                    {"key": "kubernetes.io/metadata.name", "operator": "In", "values": namespaces}
                ]
            }
            if namespaces
            else {},
            "queueingStrategy": "BestEffortFIFO",
            "resourceGroups": [
                {
                    "coveredResources": ["cpu", "memory"],
                    "flavors": [
                        {
                            "name": FLAVOR,
                            "resources": [
                                {"name": "cpu", "nominalQuota": cpu},
                                {"name": "memory", "nominalQuota": "1Ti"},
                            ],
                        }
                    ],
                }
            ],
        }
        if fair:
            spec["admissionScope"] = {"admissionMode": "UsageBasedAdmissionFairSharing"}
        if preempt:
            spec["preemption"] = {"withinClusterQueue": "LowerPriority"}
        body = {"apiVersion": f"{KUEUE}/{KV}", "kind": "ClusterQueue",
                "metadata": {"name": name}, "spec": spec}  # fmt: skip
        await self.custom.create_cluster_custom_object(KUEUE, KV, "clusterqueues", body)
        self.made.append(name)
        for namespace in namespaces:
            local = {"apiVersion": f"{KUEUE}/{KV}", "kind": "LocalQueue",
                     "metadata": {"name": QUEUE, "namespace": namespace},
                     "spec": {"clusterQueue": name}}  # fmt: skip
            await self.custom.create_namespaced_custom_object(
                KUEUE, KV, namespace, "localqueues", local
            )

        async def active() -> None:
            cq = await self.custom.get_cluster_custom_object(KUEUE, KV, "clusterqueues", name)
            assert condition(cq, "Active").get("status") == "True", cq.get("status")

        await until(active)
        return name

    async def delete(self) -> None:
        for name in self.made:
            try:
                await self.custom.delete_cluster_custom_object(KUEUE, KV, "clusterqueues", name)
            except ApiException as e:
                if e.status != 404:
                    raise


@pytest.fixture
async def queues(api: client.ApiClient) -> AsyncIterator[Queues]:
    made = Queues(api)
    yield made
    await made.delete()


async def test_six_one_cpu_sessions_on_four_cpus_four_run_two_wait_in_line_then_enter(
    api: client.ApiClient, operator: object, namespace: str, queues: Queues
) -> None:
    await queues.cluster([namespace], cpu=4)
    names = [f"run-{i}" for i in range(1, 7)]
    for name in names:
        await apply(namespace, headless(name))
        await asyncio.sleep(0.3)  # a creation order Kueue can tell apart (1 s timestamps)

    async def four_run_two_wait() -> dict[str, str]:
        seen = await states(api, namespace, names)
        running = [n for n, s in seen.items() if s == "Running"]
        waiting = sorted(s for s in seen.values() if (s or "").startswith("Queued"))
        assert len(running) == 4 and len(waiting) == 2, seen
        assert waiting == [
            f"Queued: 1st in line for 1 CPU in queue {QUEUE} (1st in ClusterQueue "
            f"{queues.made[0]})",
            f"Queued: 2nd in line for 1 CPU in queue {QUEUE} (2nd in ClusterQueue "
            f"{queues.made[0]})",
        ], seen
        return seen

    seen = await until(four_run_two_wait)
    waiting = [n for n, s in seen.items() if s != "Running"]
    for name in waiting:
        obj = await get(api, namespace, name)
        assert obj["status"]["phase"] == "Pending"
        assert obj["status"]["message"] == seen[name].removeprefix("Queued: ")
        assert obj["status"]["queuedAt"] and "admittedAt" not in obj["status"]
        assert all(gated(p) and not p.spec.node_name for p in await pods_of(api, namespace, name))
    # kubectl shows the place too.
    described = await run("kubectl", "describe", "session", waiting[0], "-n", namespace)
    assert "in line for 1 CPU" in described

    # Two finish: the two that waited enter, in the order they queued.
    for name in [n for n, s in seen.items() if s == "Running"][:2]:
        await exit_pod(api, namespace, f"{name}-1", 0)

    async def all_in() -> None:
        for name in waiting:
            obj = await get(api, namespace, name)
            assert obj["status"]["phase"] == "Running", obj["status"]
            assert condition(obj, "Queued")["status"] == "False"
            assert condition(obj, "Queued")["reason"] == "Admitted"
            assert obj["status"]["admittedAt"] >= obj["status"]["queuedAt"]

    await until(all_in)


async def test_a_three_replica_session_runs_no_pod_until_all_three_fit(
    api: client.ApiClient, operator: object, namespace: str, queues: Queues
) -> None:
    await queues.cluster([namespace], cpu=4)
    await apply(namespace, headless("first"), headless("second"))
    await until(lambda: _phases(api, namespace, ["first", "second"], "Running"))
    # 2 CPUs free: a session of 3 replicas of 1 CPU waits whole; none of its pods holds one.
    await apply(namespace, headless("trio", replicas=3))

    async def waits_whole() -> None:
        obj = await get(api, namespace, "trio")
        assert condition(obj, "Queued").get("status") == "True", obj.get("status")
        assert "1st in line for 3 pods of 1 CPU" in condition(obj, "Queued")["message"]
        pods = await pods_of(api, namespace, "trio")
        assert len(pods) == 3 and all(gated(p) and not p.spec.node_name for p in pods)

    await until(waits_whole)
    await asyncio.sleep(2)  # and it stays so
    await waits_whole()
    await exit_pod(api, namespace, "first-1", 0)  # 3 CPUs free: all three enter at once

    async def all_three_run() -> None:
        obj = await get(api, namespace, "trio")
        assert obj["status"]["phase"] == "Running", obj["status"]
        pods = await pods_of(api, namespace, "trio")
        assert len(pods) == 3 and all(p.status.phase == "Running" for p in pods)
        groups = {p.metadata.labels["kueue.x-k8s.io/pod-group-name"] for p in pods}
        assert len(groups) == 1

    await until(all_three_run)


async def _phases(api: client.ApiClient, namespace: str, names: list[str], phase: str) -> None:
    for name in names:
        obj = await get(api, namespace, name)
        assert (obj.get("status") or {}).get("phase") == phase, (name, obj.get("status"))


async def test_a_notebook_queued_behind_headless_runs_is_admitted_first(
    api: client.ApiClient, operator: object, namespace: str, queues: Queues
) -> None:
    # Room for one: a notebook's pod asks a little more than its 1 CPU (its agent).
    await queues.cluster([namespace], cpu="1200m")
    await apply(namespace, headless("busy"))
    await until(lambda: _phases(api, namespace, ["busy"], "Running"))
    for i in range(1, 4):
        await apply(namespace, headless(f"batch-{i}"))
    await apply(namespace, notebook())

    async def notebook_first_in_line() -> None:
        obj = await get(api, namespace, "notebook")
        assert condition(obj, "Queued").get("message", "").startswith("1st in line"), obj
        for i in range(1, 4):  # behind it, in whatever order Kueue tells their ties apart
            batch = await get(api, namespace, f"batch-{i}")
            place = condition(batch, "Queued").get("message", "")
            assert place[:3] in ("2nd", "3rd", "4th"), (i, place)

    await until(notebook_first_in_line)
    pods = await pods_of(api, namespace, "notebook")
    assert pods[0].metadata.labels["kueue.x-k8s.io/priority-class"] == "kabin-interactive"
    await exit_pod(api, namespace, "busy-1", 0)
    await until(lambda: _phases(api, namespace, ["notebook"], "Running"))
    for i in range(1, 4):
        obj = await get(api, namespace, f"batch-{i}")
        assert condition(obj, "Queued")["status"] == "True"


async def test_fair_sharing_admits_a_light_users_two_before_a_heavy_users_tail(
    api: client.ApiClient, operator: object, namespace: str, queues: Queues
) -> None:
    heavy, light = namespace, f"{namespace[:50]}-b"
    core = client.CoreV1Api(api)
    await core.create_namespace({"metadata": {"name": light}})
    try:
        await queues.cluster([heavy, light], cpu=2, fair=True)
        many = [f"a-{i:02d}" for i in range(20)]
        for name in many:
            await apply(heavy, headless(name))

        async def heavy_use_counted() -> None:
            local = await client.CustomObjectsApi(api).get_namespaced_custom_object(
                KUEUE, KV, heavy, "localqueues", QUEUE
            )
            fair = (local.get("status") or {}).get("fairSharing") or {}
            used = (fair.get("admissionFairSharingStatus") or {}).get("consumedResources") or {}
            assert used.get("cpu") not in (None, "0"), local.get("status")

        await until(heavy_use_counted, timeout=60)
        await apply(light, headless("b-1"), headless("b-2"))
        await until(lambda: _queued(api, light, ["b-1", "b-2"]))
        # Room for one at a time: each finished run lets the next in.
        order: list[tuple[str, str]] = []
        for _ in range(2):
            running = [n for n in many if await _phase(api, heavy, n) == "Running"]
            await exit_pod(api, heavy, f"{running[0]}-1", 0)

            async def one_more_admitted(before: int = len(order)) -> None:
                admitted = [
                    (ns, n)
                    for ns, names in ((light, ["b-1", "b-2"]), (heavy, many))
                    for n in names
                    if await _phase(api, ns, n) == "Running"
                    and (ns, n) not in order
                    and not (ns == heavy and n in many[:2])
                ]
                assert len(admitted) + before > before, "nothing admitted yet"
                order.extend(a for a in admitted if a not in order)

            await until(one_more_admitted)
        assert [ns for ns, _ in order] == [light, light], order
        # And the heavy user's tail goes on after them.
        await exit_pod(api, light, "b-1-1", 0)

        async def tail_goes_on() -> None:
            running = [n for n in many[2:] if await _phase(api, heavy, n) == "Running"]
            assert len(running) == 1, running

        await until(tail_goes_on)
    finally:
        await core.delete_namespace(light, propagation_policy="Background")


async def _phase(api: client.ApiClient, namespace: str, name: str) -> str | None:
    return ((await get(api, namespace, name)).get("status") or {}).get("phase")


async def _queued(api: client.ApiClient, namespace: str, names: list[str]) -> None:
    for name in names:
        obj = await get(api, namespace, name)
        assert condition(obj, "Queued").get("status") == "True", (name, obj.get("status"))


async def _events(api: client.ApiClient, namespace: str, name: str) -> list[Any]:
    found = await client.CoreV1Api(api).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name}"
    )
    return list(found.items)


async def test_preemption_requeues_a_headless_run_and_suspends_a_notebook(
    api: client.ApiClient, operator: object, namespace: str, queues: Queues
) -> None:
    await queues.cluster([namespace], cpu="1200m", preempt=True)
    await apply(namespace, headless("batch"))
    await until(lambda: _phases(api, namespace, ["batch"], "Running"))
    first = (await pods_of(api, namespace, "batch"))[0].metadata.uid
    # A notebook (priority kabin-interactive) takes the headless run's place.
    await apply(namespace, notebook())
    await until(lambda: _phases(api, namespace, ["notebook"], "Running"), timeout=90)

    async def requeued() -> None:
        obj = await get(api, namespace, "batch")
        assert obj["status"]["phase"] == "Pending", obj["status"]
        assert condition(obj, "Queued").get("status") == "True", obj["status"]
        assert obj["metadata"]["annotations"]["kabin.dev/preempted"] == first
        pods = await pods_of(api, namespace, "batch")
        assert len(pods) == 1 and pods[0].metadata.uid != first and gated(pods[0])
        reasons = {e.reason for e in await _events(api, namespace, "batch")}
        assert "Requeued" in reasons, reasons

    await until(requeued)

    # An urgent headless run (its environment's priority class) takes the notebook's place:
    # the notebook is suspended, to resume by hand, not deleted.
    custom = client.CustomObjectsApi(api)
    urgent = f"urgent-{namespace[-5:]}"
    await custom.create_cluster_custom_object(
        KUEUE, KV, "workloadpriorityclasses",
        {"apiVersion": f"{KUEUE}/{KV}", "kind": "WorkloadPriorityClass",
         "metadata": {"name": urgent}, "value": 5000},
    )  # fmt: skip
    env = {
        "apiVersion": "kabin.dev/v1alpha1",
        "kind": "EnvironmentConfig",
        "metadata": {"name": urgent},
        "spec": {"image": "busybox", "queueing": {"priorityClasses": {"headless": urgent}}},
    }
    await custom.create_cluster_custom_object(GROUP, VERSION, "environmentconfigs", env)
    try:
        await apply(namespace, headless("urgent", environment=urgent, image=None))

        async def suspended() -> None:
            obj = await get(api, namespace, "notebook")
            assert obj["status"]["phase"] == "Suspended", obj["status"]
            assert obj["status"]["reason"] == "Preempted"
            assert obj["spec"]["suspend"] is True
            assert condition(obj, "Suspended")["reason"] == "Preempted"
            assert not await pods_of(api, namespace, "notebook")

        await until(suspended, timeout=90)
        await until(lambda: _phases(api, namespace, ["urgent"], "Running"))
    finally:
        await custom.delete_cluster_custom_object(GROUP, VERSION, "environmentconfigs", urgent)
        await custom.delete_cluster_custom_object(KUEUE, KV, "workloadpriorityclasses", urgent)


async def test_a_preempted_group_is_requeued_once_as_a_new_group_and_runs_again(
    api: client.ApiClient, operator: object, namespace: str, queues: Queues
) -> None:
    await queues.cluster([namespace], cpu="2500m", preempt=True)
    await apply(namespace, headless("pair", replicas=2))
    await until(lambda: _phases(api, namespace, ["pair"], "Running"))
    [old] = {p.metadata.labels["kueue.x-k8s.io/pod-group-name"]
             for p in await pods_of(api, namespace, "pair")}  # fmt: skip
    await apply(namespace, notebook())
    await until(lambda: _phases(api, namespace, ["notebook"], "Running"), timeout=90)

    async def requeued_as_a_new_group() -> None:
        obj = await get(api, namespace, "pair")
        assert obj["metadata"].get("annotations", {}).get("kabin.dev/preempted") == old
        pods = await pods_of(api, namespace, "pair")
        groups = {p.metadata.labels["kueue.x-k8s.io/pod-group-name"] for p in pods}
        assert len(pods) == 2 and groups != {old} and all(gated(p) for p in pods), groups

    await until(requeued_as_a_new_group)
    await asyncio.sleep(2)
    requeues = [e for e in await _events(api, namespace, "pair") if e.reason == "Requeued"]
    assert len(requeues) == 1, [e.message for e in requeues]  # one group: one preemption
    await client.CustomObjectsApi(api).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, "sessions", "notebook"
    )

    async def runs_again() -> None:
        pods = await pods_of(api, namespace, "pair")
        assert len(pods) == 2 and all(p.status.phase == "Running" for p in pods), [
            (p.metadata.name, p.status.phase) for p in pods
        ]

    await until(runs_again, timeout=90)
    await until(lambda: _phases(api, namespace, ["pair"], "Running"))


def _kueue_pid() -> int:
    return int((ROOT / ".cluster" / "kueue" / "pid").read_text())


async def test_while_kueue_is_down_sessions_stay_queued_and_proceed_when_it_is_back(
    api: client.ApiClient, operator: object, namespace: str, queues: Queues
) -> None:
    await queues.cluster([namespace], cpu=1)
    await apply(namespace, headless("first"), headless("second"))
    await until(lambda: _phases(api, namespace, ["first"], "Running"))
    await until(lambda: _queued(api, namespace, ["second"]))
    os.kill(_kueue_pid(), signal.SIGKILL)
    try:
        # Its pod goes only once Kueue has let it go (its finalizer): no quota is lost.
        await client.CustomObjectsApi(api).delete_namespaced_custom_object(
            GROUP, VERSION, namespace, "sessions", "first"
        )
        await apply(namespace, headless("third"))  # its pod cannot be made without Kueue
        await asyncio.sleep(5)
        obj = await get(api, namespace, "second")
        assert obj["status"]["phase"] == "Pending"
        assert condition(obj, "Queued")["status"] == "True"
        assert all(gated(p) for p in await pods_of(api, namespace, "second"))
        third = await get(api, namespace, "third")
        assert (third.get("status") or {}).get("phase") in (None, "Pending"), third
        assert not await pods_of(api, namespace, "third")
    finally:
        up = await asyncio.create_subprocess_exec(str(ROOT / "hack" / "kueue" / "up.sh"))
        assert await up.wait() == 0
    await until(lambda: _phases(api, namespace, ["second"], "Running"), timeout=90)
    await until(lambda: _queued(api, namespace, ["third"]), timeout=60)
    for name in ("second", "third"):
        assert len(await pods_of(api, namespace, name)) == 1, name
    assert not await pods_of(api, namespace, "first")


async def test_an_operator_killed_while_sessions_wait_loses_none_and_makes_none_twice(
    api: client.ApiClient, k_namespace: str, operator_process: Any, queues: Queues
) -> None:
    await queues.cluster([k_namespace], cpu=2)
    first = operator_process()
    names = [f"run-{i}" for i in range(1, 6)]
    await apply(k_namespace, *(headless(n) for n in names))

    async def two_run_three_wait() -> list[str]:
        seen = await states(api, k_namespace, names)
        running = [n for n, s in seen.items() if s == "Running"]
        assert len(running) == 2, seen
        assert sum((s or "").startswith("Queued: ") and "in line" in s for s in seen.values()) == 3
        return running

    running = await until(two_run_three_wait)
    first.send_signal(signal.SIGKILL)
    first.wait()
    for name in running:  # room for two more while no operator watches
        await exit_pod(api, k_namespace, f"{name}-1", 0)
    await asyncio.sleep(2)
    operator_process()

    async def converged() -> None:
        seen = list((await states(api, k_namespace, names)).values())
        assert seen.count("Running") == 2 and seen.count("Succeeded") == 2, seen
        assert sum((s or "").startswith("Queued: 1st in line") for s in seen) == 1, seen

    await until(converged, timeout=90)
    for name in names:
        pods = await pods_of(api, k_namespace, name)
        assert len(pods) == 1, (name, [p.metadata.name for p in pods])


async def test_admission_refuses_a_queue_that_is_not_there_naming_the_field(
    api: client.ApiClient, operator: object, namespace: str
) -> None:
    result = await kubectl_apply(headless("lost", queue="nowhere"), namespace=namespace)
    assert result.code != 0
    assert 'spec.queue: no LocalQueue "nowhere" (from spec.queue) in namespace' in result.err
    listed = await client.CustomObjectsApi(api).list_namespaced_custom_object(
        GROUP, VERSION, namespace, "sessions"
    )
    assert listed["items"] == []


async def test_a_resume_is_refused_when_the_queue_is_gone(
    api: client.ApiClient, operator: object, namespace: str, queues: Queues
) -> None:
    await queues.cluster([namespace], cpu=1)
    await run("kubectl", "create", "rolebinding", "dana-edits", "--clusterrole=edit",
              "--user=dana", "-n", namespace)  # fmt: skip
    made = await kubectl_apply(headless("later"), namespace=namespace, user="dana")
    assert made.code == 0, made.err
    await until(lambda: _phases(api, namespace, ["later"], "Running"))

    async def suspend(value: bool) -> Any:
        body = json.dumps({"spec": {"suspend": value}})
        return await command("kubectl", "--as=dana", "patch", "session", "later", "-n",
                             namespace, "--type=merge", "-p", body)  # fmt: skip

    assert (await suspend(True)).code == 0
    await until(lambda: _phases(api, namespace, ["later"], "Suspended"))
    await client.CustomObjectsApi(api).delete_namespaced_custom_object(
        KUEUE, KV, namespace, "localqueues", QUEUE
    )
    resumed = await suspend(False)
    assert resumed.code != 0
    assert f'spec.queue: no LocalQueue "{QUEUE}" (from spec.queue)' in resumed.err, resumed.err
    assert (await get(api, namespace, "later"))["spec"]["suspend"] is True


async def test_a_queued_group_cannot_change_size_while_it_runs(
    api: client.ApiClient, operator: object, namespace: str, queues: Queues
) -> None:
    await queues.cluster([namespace], cpu=4)
    await apply(namespace, headless("pair", replicas=2))
    await until(lambda: _phases(api, namespace, ["pair"], "Running"))
    scaled = await command("kubectl", "scale", "session", "pair", "--replicas=3", "-n", namespace)
    assert scaled.code != 0
    assert "spec.replicas: is 2: a queued session's replicas are admitted together" in scaled.err


async def test_without_kueue_admission_refuses_spec_queue_and_says_why(
    api: client.ApiClient, operator: object, namespace: str
) -> None:
    """Last in this file: it takes Kueue's LocalQueue API away, then puts Kueue back."""
    os.kill(_kueue_pid(), signal.SIGKILL)
    try:
        await run("kubectl", "delete", "crd", "localqueues.kueue.x-k8s.io", within=60)
        result = await kubectl_apply(headless("hopeful"), namespace=namespace)
        assert result.code != 0
        assert (
            f'spec.queue: queue "{QUEUE}" (from spec.queue) needs Kueue, which is not '
            "installed in this cluster" in result.err
        ), result.err
        # Without a queue, a session is made and runs as ever.
        plain = headless("plain")
        del plain["spec"]["queue"]
        await apply(namespace, plain)
        await until(lambda: _phases(api, namespace, ["plain"], "Running"))
    finally:
        up = await asyncio.create_subprocess_exec(str(ROOT / "hack" / "kueue" / "up.sh"))
        assert await up.wait() == 0
