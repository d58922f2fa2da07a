"""Benchmark: a class's burst through a Kueue queue, sessions against bare pods.

N headless sessions (1 CPU each) against a ClusterQueue of Q CPUs, and, side by side in
the same run, N bare pods (1 CPU each) in the same kind of queue: Kueue's pod
integration without kabin. Each pod runs for `--run-for` once it runs (the simulated
kubelet ends it), so the queue drains Q at a time. For each it prints:

- the time until the last create was answered (sessions pass two admission webhooks),
  and from the first create until the last one was admitted (its scheduling gate
  removed), with its ratio to the bare pods';
- the p50 and p95 of the time from admission until Ready (the session's Ready condition;
  the pod's), kabin's overhead after Kueue let it in;
- the order admitted against the order created: the share of pairs admitted in the
  order they were created (1.0: first come, first served), and the largest jump.

It starts its own operator, like burst.py, so run it on a control plane with Kueue and
no other kabin operator:

    make cluster-up
    .venv/bin/python benchmarks/queued.py [--count 500] [--quota 100]

This is a script, not a timed test: the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client

sys.path.insert(0, str(Path(__file__).resolve().parent))
from burst import (
    ROOT,
    Operator,
    _all,
    _leftover,
    _namespace,
    _nodes,
    _send,
    _until_serving,
    _watch,
    apply_crds,
    teardown,
)

from kabin.k8s import connect

GATE = "kueue.x-k8s.io/admission"
KUEUE = "/apis/kueue.x-k8s.io/v1beta2"


@dataclass
class Arm:
    name: str
    count: int
    created: dict[str, float] = field(default_factory=dict)  # name -> when its create returned
    admitted: dict[str, float] = field(default_factory=dict)  # name -> gate seen removed
    ready: dict[str, float] = field(default_factory=dict)
    started: float = 0.0


async def _queue(api: client.ApiClient, namespaces: list[str], quota: int) -> str:
    name = f"burst-cq-{int(time.time())}"
    flavor = {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor",
              "metadata": {"name": "burst-flavor"}}  # fmt: skip
    try:
        await _send(api, "POST", f"{KUEUE}/resourceflavors", flavor, "application/json")
    except RuntimeError as e:
        if ": 409 " not in str(e):
            raise
    cq = {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "ClusterQueue",
        "metadata": {"name": name},
        "spec": {
            "namespaceSelector": {"matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "In", "values": namespaces}
            ]},
            "queueingStrategy": "BestEffortFIFO",
            "resourceGroups": [{"coveredResources": ["cpu", "memory"], "flavors": [
                {"name": "burst-flavor", "resources": [
                    {"name": "cpu", "nominalQuota": str(quota)},
                    {"name": "memory", "nominalQuota": "100Ti"},
                ]}
            ]}],
        },
    }  # fmt: skip
    await _send(api, "POST", f"{KUEUE}/clusterqueues", cq, "application/json")
    for namespace in namespaces:
        local = {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "LocalQueue",
                 "metadata": {"name": "q", "namespace": namespace},
                 "spec": {"clusterQueue": name}}  # fmt: skip
        await _send(
            api, "POST", f"{KUEUE}/namespaces/{namespace}/localqueues", local, "application/json"
        )
    return name


def _gated(pod: dict[str, Any]) -> bool:
    return any(g.get("name") == GATE for g in (pod.get("spec") or {}).get("schedulingGates") or [])


def _is_ready(obj: dict[str, Any]) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


async def run_arm(
    api: client.ApiClient, arm: Arm, namespace: str, sessions: bool, run_for: str
) -> None:
    """Create the burst; watch its pods (admission, and their end) and Ready."""
    core = client.CoreV1Api(api)
    owner_of = (lambda pod: pod["metadata"]["labels"].get("kabin.dev/session")) if sessions else (
        lambda pod: pod["metadata"]["name"]
    )  # fmt: skip
    ended: set[str] = set()
    patches: set[asyncio.Task[Any]] = set()

    def on_pod(pod: dict[str, Any]) -> None:
        who = owner_of(pod)
        if who is None:
            return
        if not _gated(pod) and who not in arm.admitted and who in arm.created:
            arm.admitted[who] = time.monotonic()
        if not sessions and _is_ready(pod) and who not in arm.ready:
            arm.ready[who] = time.monotonic()
        running = (pod.get("status") or {}).get("phase") == "Running"
        if running and pod["metadata"]["name"] not in ended:
            ended.add(pod["metadata"]["name"])
            notes = {"sim.kabin.dev/exit-code": "0", "sim.kabin.dev/run-for": run_for}
            task: asyncio.Task[Any] = asyncio.ensure_future(
                core.patch_namespaced_pod(
                    pod["metadata"]["name"], namespace, {"metadata": {"annotations": notes}}
                )
            )
            patches.add(task)
            task.add_done_callback(patches.discard)

    def on_session(obj: dict[str, Any]) -> None:
        who = obj["metadata"]["name"]
        if _is_ready(obj) and who not in arm.ready:
            arm.ready[who] = time.monotonic()

    watches = [asyncio.create_task(_watch(api, f"/api/v1/namespaces/{namespace}/pods", on_pod))]
    if sessions:
        path = f"/apis/kabin.dev/v1alpha1/namespaces/{namespace}/sessions"
        watches.append(asyncio.create_task(_watch(api, path, on_session)))
    await asyncio.sleep(1)

    async def create(i: int) -> None:
        name = f"run-{i:04d}"
        if sessions:
            body = {"apiVersion": "kabin.dev/v1alpha1", "kind": "Session",
                    "metadata": {"name": name},
                    "spec": {"type": "headless", "image": "busybox", "queue": "q",
                             "resources": {"cpu": "1"}}}  # fmt: skip
            path = f"/apis/kabin.dev/v1alpha1/namespaces/{namespace}/sessions"
        else:
            body = {"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "labels": {"kueue.x-k8s.io/queue-name": "q"}},
                    "spec": {"restartPolicy": "Never", "containers": [
                        {"name": "main", "image": "busybox",
                         "resources": {"requests": {"cpu": "1"}}}]}}  # fmt: skip
            path = f"/api/v1/namespaces/{namespace}/pods"
        await _send(api, "POST", path, body, "application/json")
        arm.created[name] = time.monotonic()

    arm.started = time.monotonic()
    await _all(arm.count, 8, create)
    deadline = time.monotonic() + 1800
    while len(arm.ready) < arm.count and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(1)
    for watch in watches:
        watch.cancel()


def _in_order(arm: Arm) -> tuple[float, int]:
    """Share of pairs admitted in creation order, and the largest jump (places)."""
    by_created = sorted(arm.admitted, key=lambda n: arm.created[n])
    rank = {n: i for i, n in enumerate(sorted(arm.admitted, key=lambda n: arm.admitted[n]))}
    ranks = [rank[n] for n in by_created]
    pairs = ordered = 0
    for i in range(len(ranks)):
        for j in range(i + 1, len(ranks)):
            pairs += 1
            ordered += ranks[i] < ranks[j]
    jump = max((abs(r - i) for i, r in enumerate(ranks)), default=0)
    return (ordered / pairs if pairs else 1.0), jump


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def report(arms: list[Arm]) -> None:
    base = arms[0]
    base_all = max(base.admitted.values(), default=base.started) - base.started
    print(f"\n{'':34} {'created':>8} {'admitted':>9} {'all in':>8} {'ratio':>6} "
          f"{'ready p50':>10} {'p95':>6} {'in order':>9} {'max jump':>9}")  # fmt: skip
    for arm in arms:
        last = max(arm.admitted.values(), default=arm.started) - arm.started
        after = [arm.ready[n] - arm.admitted[n] for n in arm.ready if n in arm.admitted]
        order, jump = _in_order(arm)
        made = max(arm.created.values(), default=arm.started) - arm.started
        print(
            f"{arm.name:34} {made:>7.1f}s {len(arm.admitted):>5}/{arm.count:<3} {last:>7.1f}s "
            f"{last / base_all:>5.2f}x {_pct(after, 50):>9.2f}s {_pct(after, 95):>5.2f}s "
            f"{order:>9.3f} {jump:>9}"
        )


async def main(count: int, quota: int, run_for: str, poll: float) -> None:
    api = await connect()
    await apply_crds()
    env = {"KABIN_QUEUE_POLL_INTERVAL": str(poll)}
    operator = Operator(ROOT / "build" / "queue-operator.log", env=env)
    namespaces: list[str] = []
    nodes: list[str] = []
    queue = ""
    try:
        while leftover := await _leftover(api):
            print(f"waiting for {', '.join(leftover)} to go", flush=True)
            await asyncio.sleep(10)
        nodes = await _nodes(api, 2 * quota)
        await _until_serving(api)
        namespaces = [await _namespace(api, "burst-qpods"), await _namespace(api, "burst-qsess")]
        queue = await _queue(api, namespaces, quota)
        await asyncio.sleep(2)
        arms = [Arm("bare pods in a queue", count), Arm("headless sessions in a queue", count)]
        for arm, namespace, sessions in zip(arms, namespaces, (False, True), strict=True):
            print(f"{arm.name}: {count} against {quota} CPUs ...", flush=True)
            await run_arm(api, arm, namespace, sessions, run_for)
            print(f"  {len(arm.ready)}/{count} Ready", flush=True)
        report(arms)
    finally:
        also = (f"{KUEUE}/clusterqueues/{queue}",) if queue else ()
        await teardown(api, namespaces, operator, nodes, also)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--quota", type=int, default=100)
    parser.add_argument("--run-for", default="3s", help="how long each pod runs (a Go duration)")
    parser.add_argument(
        "--poll", type=float, default=2, help="the operator's queue_poll_interval (seconds)"
    )
    args = parser.parse_args()
    asyncio.run(main(args.count, args.quota, args.run_for, args.poll))
