"""Queues, as tables: which queue and priority a session gets, the labels that put its
pods in line, what a person reads of its place, when it queued and was admitted, what
a preemption does, and what admission refuses."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kabin.api.environment import EnvironmentConfigSpec
from kabin.api.session import SessionSpec, SessionStatus
from kabin.logic import pod as pod_builder
from kabin.logic import resolve, status
from kabin.logic.admission import check_group_change, check_queue
from kabin.logic.status.queue import Place, evicted, ordinal, waiting

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
OWNER = resolve.Owner(name="s", namespace="ns", uid="0123456789ab", user="alice")
DEFAULTS = resolve.QueueDefaults(
    queue=None, interactive="kabin-interactive", headless="kabin-headless"
)
SETTINGS = status.StatusSettings(host="h", ssh_host="h", image_pull_grace=30)
ENV = EnvironmentConfigSpec.model_validate(
    {"image": "nb:1", "queueing": {"queue": "teaching", "priorityClasses": {"notebook": "class"}}}
)


def spec(**fields: Any) -> SessionSpec:
    return SessionSpec.model_validate({"type": "headless", "image": "busybox", **fields})


@pytest.mark.parametrize(
    ("fields", "env", "default", "want"),
    [
        ({}, None, None, (None, None)),  # no queue anywhere: not queued
        ({}, None, "kabin", ("kabin", "kabin-headless")),
        ({"type": "notebook"}, None, "kabin", ("kabin", "kabin-interactive")),
        ({"queue": "mine"}, None, "kabin", ("mine", "kabin-headless")),
        ({"type": "notebook", "environment": "e"}, ENV, "kabin", ("teaching", "class")),
        ({"environment": "e"}, ENV, None, ("teaching", "kabin-headless")),
        ({"environment": "e", "queue": "mine"}, ENV, None, ("mine", "kabin-headless")),
    ],
)
def test_the_queue_is_the_sessions_then_its_environments_then_the_operators(
    fields: dict[str, Any], env: EnvironmentConfigSpec | None, default: str | None, want: Any
) -> None:
    defaults = resolve.QueueDefaults(default, "kabin-interactive", "kabin-headless")
    assert resolve.queueing(spec(**fields), env, defaults) == want


def _pod(replicas: int, group: str | None = "g", **fields: Any) -> dict[str, Any]:
    asked = spec(queue="q", replicas=replicas, **fields)
    return pod_builder.build_pod(
        owner=OWNER,
        spec=asked,
        resolved=resolve.resolve(asked, None, DEFAULTS),
        replica=1,
        replicas=replicas,
        group=group,
    )


def test_a_queued_pod_names_its_queue_and_priority_and_a_group_only_with_replicas() -> None:
    one = _pod(1)
    assert one["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "q"
    assert one["metadata"]["labels"]["kueue.x-k8s.io/priority-class"] == "kabin-headless"
    assert "kueue.x-k8s.io/pod-group-name" not in one["metadata"]["labels"]
    assert "annotations" not in one["metadata"]
    three = _pod(3)
    assert three["metadata"]["labels"]["kueue.x-k8s.io/pod-group-name"] == "g"
    assert three["metadata"]["annotations"] == {
        "kueue.x-k8s.io/pod-group-total-count": "3",
        "kueue.x-k8s.io/retriable-in-group": "false",
    }


def _grouped(group: str, count: str = "3", queue: str = "q", **meta: Any) -> dict[str, Any]:
    labels = {"kueue.x-k8s.io/pod-group-name": group, "kueue.x-k8s.io/queue-name": queue}
    notes = {"kueue.x-k8s.io/pod-group-total-count": count}
    return {"metadata": {"labels": labels, "annotations": notes, **meta}}


def test_a_pod_group_is_that_of_matching_live_pods_else_new_for_each_start() -> None:
    def group(pods: list[dict[str, Any]], version: str = "7") -> str | None:
        return pod_builder.pod_group(OWNER, version=version, pods=pods, replicas=3, queue="q")

    assert group([_grouped("old")]) == "old"  # a replica made again joins its group
    going = _grouped("gone", deletionTimestamp="x")
    fresh = group([going])
    assert fresh is not None and fresh.startswith("s-") and fresh != "gone"
    assert group([], version="8") not in (fresh, None)  # each start (a write between) is new
    assert group([]) == fresh  # and the same for the same Session version: no two groups
    # A group of another size or queue (changed under it) is let go first: nothing is made.
    assert group([_grouped("old", count="2")]) is None
    assert group([_grouped("old", queue="other")]) is None
    long = resolve.Owner(name="x" * 253, namespace="ns", uid="0123456789ab")
    name = pod_builder.pod_group(long, version="9" * 20, pods=[], replicas=3, queue="q")
    assert name is not None and re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name)
    assert len(name) <= 63


@pytest.mark.parametrize(
    ("n", "word"),
    [(1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th"), (12, "12th"), (13, "13th"),
     (21, "21st"), (102, "102nd"), (111, "111th")],
)  # fmt: skip
def test_ordinals(n: int, word: str) -> None:
    assert ordinal(n) == word


def test_the_place_says_where_and_what_for() -> None:
    gpu = resolve.resolve(spec(resources={"gpu": 2, "cpu": "4"}), None)
    assert (
        waiting("team-a", Place(3, 7, "shared"), gpu, 1)
        == "3rd in line for 2 GPUs, 4 CPU in queue team-a (7th in ClusterQueue shared)"
    )
    cpu = resolve.resolve(spec(resources={"cpu": "1", "memory": "2Gi"}), None)
    assert waiting("q", None, cpu, 3) == "waiting in queue q for 3 pods of 1 CPU, 2Gi memory"
    gone = Place(problem='no LocalQueue "q" in namespace ns')
    assert waiting("q", gone, cpu, 1).endswith('(no LocalQueue "q" in namespace ns)')


def _queued_pod(
    *, gated: bool, created: datetime = NOW - timedelta(seconds=30), **more: Any
) -> Any:
    labels = {"kueue.x-k8s.io/managed": "true", **more.pop("labels", {})}
    return {
        "metadata": {"name": "s-1", "uid": "p1", "labels": labels,
                     "creationTimestamp": created.isoformat()},
        "spec": {"schedulingGates": [{"name": "kueue.x-k8s.io/admission"}]} if gated else
        {"nodeName": "n"},
        "status": {"phase": "Pending" if gated else "Running", **more},
    }  # fmt: skip


def _compute(pods: list[Any], previous: SessionStatus | None = None, **observed: Any) -> Any:
    asked = spec(queue="q", resources={"cpu": "1"}, **observed.pop("fields", {}))
    settings = observed.pop("settings", SETTINGS)
    seen = status.Observed(
        spec=asked,
        owner=OWNER,
        resolved=resolve.resolve(asked, None, DEFAULTS),
        generation=1,
        previous=previous or SessionStatus(),
        pods=pods,
        services={},
        **observed,
    )
    return status.compute(seen, now=NOW, settings=settings)


def _queued(outcome: Any) -> Any:
    return next(c for c in outcome.status.conditions if c.type == "Queued")


def test_waiting_then_admitted_keeps_when_it_queued_and_records_when_it_was_admitted() -> None:
    made = NOW - timedelta(seconds=30)
    waits = _compute([_queued_pod(gated=True, created=made)], place=Place(2, 5, "cq"))
    assert waits.status.phase == "Pending"
    assert (_queued(waits).status, _queued(waits).reason) == ("True", "Queued")
    assert waits.status.message == "2nd in line for 1 CPU in queue q (5th in ClusterQueue cq)"
    assert waits.status.queued_at == made and waits.status.admitted_at is None
    assert waits.status.place_in_line == 2
    labels = {"kueue.x-k8s.io/cluster-queue-name": "cq"}
    ran = _compute([_queued_pod(gated=False, created=made, labels=labels)], waits.status)
    assert (_queued(ran).status, _queued(ran).reason) == ("False", "Admitted")
    assert _queued(ran).message == "admitted by queue q (ClusterQueue cq)"
    assert ran.status.queued_at == made and ran.status.admitted_at == NOW
    assert ran.status.place_in_line is None
    # Admitted at once (never seen waiting): it queued when its pod was made.
    fast = _compute([_queued_pod(gated=False, created=made)])
    assert fast.status.queued_at == made and fast.status.admitted_at == NOW


def test_pods_kueue_does_not_manage_say_so_instead_of_admitted() -> None:
    pod = _queued_pod(gated=False)
    pod["metadata"]["labels"] = {}
    outcome = _compute([pod])
    assert (_queued(outcome).status, _queued(outcome).reason) == ("False", "NotManaged")


EVICTED = {
    "conditions": [
        {"type": "TerminationTarget", "status": "True", "reason": "WorkloadEvictedDueToPreempted",
         "message": "Preempted to accommodate a higher priority Workload"}
    ]
}  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "setting", "phase", "suspend", "reason"),
    [
        ({"type": "notebook"}, "Requeue", "Pending", "Preempted", None),
        ({}, "Requeue", "Pending", None, "Requeued"),
        ({}, "Fail", "Failed", None, "Preempted"),
    ],
)
def test_a_preemption_suspends_a_notebook_and_requeues_or_fails_a_headless_run(
    fields: dict[str, Any], setting: str, phase: str, suspend: str | None, reason: str | None
) -> None:
    pod = _queued_pod(gated=False, **EVICTED)
    settings = status.StatusSettings(host="h", ssh_host="h", image_pull_grace=30,
                                     preempted_headless=setting)  # fmt: skip
    outcome = _compute([pod], fields=fields, settings=settings)
    assert outcome.status.phase == phase
    assert outcome.suspend == suspend
    assert outcome.status.reason == reason
    assert outcome.preempted == "p1"
    # Acted on (kabin.dev/preempted records it): the same pod is not acted on again.
    again = _compute([pod], fields=fields, settings=settings, preempted="p1")
    assert again.preempted is None and again.suspend is None


def test_an_eviction_seen_only_in_an_event_is_acted_on_too() -> None:
    outcome = _compute([], fields={"type": "notebook"}, evicted=("p9", "preempted"))
    assert outcome.suspend == "Preempted" and outcome.preempted == "p9"


def test_a_group_is_preempted_once_however_many_pods_and_its_ends_end_no_run() -> None:
    pods = []
    for replica in (1, 2):
        pod = _queued_pod(gated=False, labels={"kueue.x-k8s.io/pod-group-name": "g1"}, **EVICTED)
        pod["metadata"]["name"], pod["metadata"]["uid"] = f"s-{replica}", f"p{replica}"
        pod["status"]["phase"] = "Failed"  # a real kubelet stops it: exit 143
        pods.append(pod)
    first = _compute(pods, fields={"replicas": 2})
    assert first.preempted == "g1" and first.status.phase == "Pending"
    # Recorded: the rest of the group's pods are the same preemption, and their Failed
    # phase is not the run's end.
    again = _compute(pods[1:], fields={"replicas": 2}, preempted="g1")
    assert again.preempted is None and again.status.phase == "Pending"


def test_only_kueues_eviction_counts() -> None:
    other = {
        "conditions": [{"type": "TerminationTarget", "status": "True", "reason": "NotAdmitted"}]
    }
    assert evicted([_queued_pod(gated=False, **other)]) is None
    assert evicted([_queued_pod(gated=False, **EVICTED)]) == (
        "p1",
        "Preempted to accommodate a higher priority Workload",
    )


def test_admission_names_the_field_and_where_the_queue_came_from() -> None:
    missing = check_queue(spec=spec(queue="q"), environment=None, queue="q", namespace="ns",
                          kueue=True, exists=False)  # fmt: skip
    assert str(missing) == (
        'spec.queue: no LocalQueue "q" (from spec.queue) in namespace "ns"; name one that '
        "exists (kubectl get localqueues)"
    )
    no_kueue = check_queue(spec=spec(environment="e"), environment=ENV, queue="teaching",
                           namespace="ns", kueue=False, exists=False)  # fmt: skip
    assert str(no_kueue).startswith(
        'spec.environment: queue "teaching" (from its EnvironmentConfig "e" (queueing.queue)) '
        "needs Kueue, which is not installed"
    )
    assert check_queue(spec=spec(queue="q"), environment=None, queue="q", namespace="ns",
                       kueue=True, exists=True) is None  # fmt: skip


def test_a_queued_groups_size_changes_only_while_suspended() -> None:
    two, three = spec(replicas=2), spec(replicas=3)
    assert check_group_change(two, three, queued=True) is not None
    assert check_group_change(two, three, queued=False) is None
    paused = spec(replicas=2, suspend=True)
    assert check_group_change(paused, spec(replicas=3, suspend=True), queued=True) is None
