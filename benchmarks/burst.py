"""Benchmark: a burst of sessions against a burst of bare pods, on one control plane.

A class pressing "start" at once, or a sweep of headless runs. In one run, side by side:

- N bare pods -> Ready (the floor: the API server, the scheduler and the kubelets);
- N bare pods each with a new PVC of the default StorageClass -> Ready (the floor of
  interactive sessions, whose drives are new claims too);
- N headless Sessions -> Ready;
- N interactive Sessions (JupyterLab, each student with their own home drive) -> Ready,
  their readiness gates opened as each pod's agent would once it runs;
- then the operator idle across two resyncs, with every session still there.

For each it prints the time until the client's last create was answered (sessions pass
two admission webhooks, pods none), the time until all are Ready and its ratio to the
bare pods, the p50
of each object's Ready, the operator's overhead per session (a session's Ready minus
its last pod's Ready, both as seen by this script's watches), and the API requests
the run caused: all of them from the API server's /metrics, and the operator's own
from its /metrics (`kabin_api_requests_total`), reads and writes per session.

It starts its own operator (`kabin operator`, all namespaces, serving the admission
webhooks), so run it on a control plane with no other kabin operator:

    make cluster-up
    .venv/bin/python benchmarks/burst.py [--count 1000] [--concurrency 32]
        [--runs pods,pvcpods,headless,interactive]

Simulated nodes big enough for the burst are added first and removed at the end. This
is a script, not a timed test: the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from prometheus_client.parser import text_string_to_metric_families

from kabin.k8s import connect

ROOT = Path(__file__).resolve().parents[1]
GATE = "kabin.dev/jupyterlab-ready"
RESYNC = 10.0
READS = ("get", "list")
WRITES = ("create", "update", "patch", "delete")
Requests = Counter[tuple[str, str]]


@dataclass
class Run:
    """What one burst measured."""

    name: str
    count: int
    seconds: float = 0.0
    created: float = 0.0  # seconds until the client's last create was answered
    ready: dict[str, float] = field(default_factory=dict)  # object -> Ready, s after start
    overhead: list[float] = field(default_factory=list)  # session Ready - its pods' Ready
    apiserver: Requests = field(default_factory=Counter)
    operator: Requests = field(default_factory=Counter)
    complete: bool = True


# -- the API server, raw (no model objects: this script shares the CPUs it measures) --


async def _get(api: client.ApiClient, path: str) -> Any:
    response = await api.rest_client.request(
        "GET", api.configuration.host + path, _preload_content=False
    )
    return json.loads(await response.read())


async def _send(api: client.ApiClient, method: str, path: str, body: Any, kind: str) -> None:
    response = await api.rest_client.request(
        method,
        api.configuration.host + path,
        headers={"Content-Type": kind},
        body=body,
        _preload_content=False,
    )
    if response.status >= 300:
        raise RuntimeError(f"{method} {path}: {response.status} {await response.text()}")
    response.release()


async def _watch(
    api: client.ApiClient, path: str, on: Callable[[dict[str, Any]], Awaitable[None] | None]
) -> None:
    """Call `on` with every object of a collection, then with every change; forever."""
    listed = await _get(api, path)
    for item in listed["items"]:
        await _maybe(on(item))
    version = listed["metadata"]["resourceVersion"]
    while True:
        response = await api.rest_client.request(
            "GET",
            api.configuration.host + path,
            query_params=[("watch", "true"), ("resourceVersion", version)],
            _preload_content=False,
            _request_timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
        )
        while line := await response.content.readline():
            event = json.loads(line)
            if event["type"] in ("ADDED", "MODIFIED"):
                version = event["object"]["metadata"]["resourceVersion"]
                await _maybe(on(event["object"]))


async def _maybe(result: Awaitable[None] | None) -> None:
    if result is not None:
        await result


def _count(text: str, metric: str) -> Requests:
    """Requests by (verb, resource[/subresource]) in Prometheus text: the API server's
    `apiserver_request_total` or the operator's `kabin_api_requests_total`."""
    counts: Requests = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == metric:
                labels = sample.labels
                name = labels["resource"]
                if labels.get("subresource"):
                    name += "/" + labels["subresource"]
                counts[(labels["verb"].lower(), name)] += int(sample.value)
    return counts


async def _apiserver(api: client.ApiClient) -> Requests:
    response = await api.rest_client.request(
        "GET", api.configuration.host + "/metrics", _preload_content=False
    )
    return _count(await response.text(), "apiserver_request_total")


# -- the operator under test ---------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Operator:
    """`kabin operator` as a process: its metrics, CPU time and memory."""

    def __init__(self, log: Path, env: dict[str, str] | None = None) -> None:
        self.port = _free_port()
        env = {
            **os.environ,
            "KABIN_METRICS_PORT": str(self.port),
            "KABIN_RESYNC_INTERVAL": str(RESYNC),
            **(env or {}),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kabin", "operator"],
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )

    async def requests(self) -> Requests:
        url = f"http://127.0.0.1:{self.port}/metrics"
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            return _count(await response.text(), "kabin_api_requests_total")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def profile(self, out: Path) -> subprocess.Popen[bytes]:
        """Sample the operator's stacks with py-spy until interrupted (collapsed stacks)."""
        return subprocess.Popen(
            [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(self.proc.pid),
             "--format", "raw", "--rate", "50", "--output", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# -- the bursts -------------------------------------------------------------------------


async def _nodes(api: client.ApiClient, count: int) -> list[str]:
    """Simulated nodes with room for the whole burst (kwok manages every node)."""
    names = [f"burst-{i}" for i in range(max(2, count // 400 + 1))]
    for name in names:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": {"type": "kwok", "kubernetes.io/hostname": name}},
            "status": {
                "capacity": {"cpu": "2000", "memory": "8Ti", "pods": "1000"},
                "allocatable": {"cpu": "2000", "memory": "8Ti", "pods": "1000"},
            },
        }
        try:
            await _send(api, "POST", "/api/v1/nodes", node, "application/json")
        except RuntimeError as e:
            if ": 409 " not in str(e):  # one an interrupted run left is as good
                raise
    return names


async def _namespace(api: client.ApiClient, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:5]}"
    body = {"metadata": {"name": name}}
    await _send(api, "POST", "/api/v1/namespaces", body, "application/json")
    return name


async def _all(count: int, concurrency: int, make: Callable[[int], Awaitable[None]]) -> None:
    limit = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with limit:
            await make(i)

    await asyncio.gather(*(one(i) for i in range(count)))


def _ready(obj: dict[str, Any]) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


async def burst(
    api: client.ApiClient,
    operator: Operator,
    run: Run,
    concurrency: int,
    kind: str,
    profile: Path | None = None,
    within: float = 900,
) -> str:
    """Create `run.count` objects of `kind` (pods, headless, interactive) in a fresh
    namespace and wait until all are Ready; the namespace."""
    namespace = await _namespace(api, f"burst-{kind}")
    pods_ready: dict[str, float] = {}
    sessions_ready: dict[str, float] = {}
    gated: set[str] = set()
    done = asyncio.Event()
    start = 0.0

    async def pod_seen(pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        if _ready(pod) and name not in pods_ready:
            pods_ready[name] = time.perf_counter() - start
            if kind in ("pods", "pvcpods") and len(pods_ready) == run.count:
                done.set()
        running = (pod.get("status") or {}).get("phase") == "Running"
        if kind == "interactive" and running and name not in gated:
            gated.add(name)  # what the pod's agent does once JupyterLab answers
            status = {"status": {"conditions": [{"type": GATE, "status": "True"}]}}
            path = f"/api/v1/namespaces/{namespace}/pods/{name}/status"
            await _send(api, "PATCH", path, status, "application/strategic-merge-patch+json")

    def session_seen(obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        if _ready(obj) and name not in sessions_ready:
            sessions_ready[name] = time.perf_counter() - start
            if len(sessions_ready) == run.count:
                done.set()

    watches = [asyncio.create_task(_watch(api, f"/api/v1/namespaces/{namespace}/pods", pod_seen))]
    if kind not in ("pods", "pvcpods"):
        path = f"/apis/kabin.dev/v1alpha1/namespaces/{namespace}/sessions"
        watches.append(asyncio.create_task(_watch(api, path, session_seen)))
    await asyncio.sleep(0.5)  # the watches are open
    before_api, before_op = await _apiserver(api), await operator.requests()
    profiler = operator.profile(profile) if profile and kind not in ("pods", "pvcpods") else None
    start = time.perf_counter()
    await _all(run.count, concurrency, lambda i: _create(api, namespace, kind, i))
    run.created = time.perf_counter() - start
    try:
        await asyncio.wait_for(done.wait(), within)
    except TimeoutError:
        run.complete = False
    run.seconds = time.perf_counter() - start
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)  # py-spy writes its file and exits
        await asyncio.to_thread(profiler.wait)
    await asyncio.sleep(2)  # what the operator still does after the last Ready
    run.apiserver = await _apiserver(api) - before_api
    run.operator = await operator.requests() - before_op
    for task in watches:
        task.cancel()
    if kind in ("pods", "pvcpods"):
        run.ready = pods_ready
    else:
        run.ready = sessions_ready
        for name, at in sessions_ready.items():
            mine = [t for pod, t in pods_ready.items() if pod.rsplit("-", 1)[0] == name]
            if mine:
                run.overhead.append(at - max(mine))
    return namespace


async def _create(api: client.ApiClient, namespace: str, kind: str, i: int) -> None:
    resources = {"cpu": "100m", "memory": "128Mi"}
    if kind in ("pods", "pvcpods"):
        pod: dict[str, Any] = {
            "metadata": {"name": f"p{i:05d}-1"},
            "spec": {
                "containers": [
                    {"name": "main", "image": "busybox", "resources": {"requests": resources}}
                ]
            },
        }
        if kind == "pvcpods":  # the floor of interactive sessions: each with a new claim
            claim = {
                "metadata": {"name": f"data-{i:05d}"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "10Gi"}},
                },
            }
            path = f"/api/v1/namespaces/{namespace}/persistentvolumeclaims"
            await _send(api, "POST", path, claim, "application/json")
            pod["spec"]["volumes"] = [
                {"name": "data", "persistentVolumeClaim": {"claimName": f"data-{i:05d}"}}
            ]
        path = f"/api/v1/namespaces/{namespace}/pods"
        await _send(api, "POST", path, pod, "application/json")
        return
    spec: dict[str, Any] = {"resources": {"cpu": "0.1", "memory": "128Mi"}}
    if kind == "headless":
        spec |= {"type": "headless", "image": "busybox"}
    else:  # a student of the class, with their own home drive
        spec |= {"type": "notebook", "environment": "notebook", "user": f"student-{i:05d}"}
    session = {
        "apiVersion": "kabin.dev/v1alpha1",
        "kind": "Session",
        "metadata": {"name": f"s{i:05d}"},
        "spec": spec,
    }
    path = f"/apis/kabin.dev/v1alpha1/namespaces/{namespace}/sessions"
    await _send(api, "POST", path, session, "application/json")


async def restarted(operator: Operator, sessions: int) -> float:
    """Seconds until a fresh operator knows every session (its cache loaded, its watches
    delivered them)."""
    start = time.perf_counter()
    while time.perf_counter() - start < 600:
        await asyncio.sleep(0.5)
        url = f"http://127.0.0.1:{operator.port}/metrics"
        try:
            async with aiohttp.ClientSession() as http, http.get(url) as response:
                text = await response.text()
        except aiohttp.ClientError:
            continue  # not serving metrics yet
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                known = sample.name == "kabin_workqueue_objects" and sample.labels["queue"]
                if known == "session" and sample.value >= sessions:
                    return time.perf_counter() - start
    return float("nan")


async def idle(operator: Operator, seconds: float) -> tuple[Requests, float]:
    """The operator's requests and CPU share (of one core) over `seconds` of quiet."""
    before, cpu = await operator.requests(), operator.cpu_seconds()
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    used = (operator.cpu_seconds() - cpu) / (time.perf_counter() - started)
    return await operator.requests() - before, used


# -- the table --------------------------------------------------------------------------


def _p50(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _split(counts: Requests) -> tuple[int, int]:
    reads = sum(n for (verb, _), n in counts.items() if verb in READS)
    writes = sum(n for (verb, _), n in counts.items() if verb in WRITES)
    return reads, writes


def report(runs: list[Run], idle_requests: Requests, idle_cpu: float, rss: float) -> None:
    base = next((r for r in runs if r.name == "bare pods"), None)
    print()
    print(
        "| run | N | created | all Ready | vs bare pods | p50 Ready | p50 operator overhead "
        "| operator reads / session | operator writes / session |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    floor = next((r for r in runs if r.name.startswith("bare pods, each")), None)
    for run in runs:
        ratio = f"{run.seconds / base.seconds:.2f}x" if base else "-"
        if run.name.startswith("interactive") and floor is not None:
            ratio += f" ({run.seconds / floor.seconds:.2f}x the pods with new PVCs)"
        overhead = f"{_p50(run.overhead) * 1000:.0f} ms" if run.overhead else "-"
        reads, writes = _split(run.operator)
        per = (
            (f"{reads / run.count:.2f}", f"{writes / run.count:.2f}")
            if not run.name.startswith("bare pods")
            else ("-", "-")
        )
        took = f"{run.seconds:.1f} s" if run.complete else f"not all in {run.seconds:.0f} s"
        print(
            f"| {run.name} | {run.count} | {run.created:.1f} s | {took} | {ratio} "
            f"| {_p50(list(run.ready.values())):.1f} s | {overhead} | {per[0]} | {per[1]} |"
        )
    reads, writes = _split(idle_requests)
    print()
    print(
        f"Idle for {2 * RESYNC:.0f} s (two resyncs) with "
        f"{sum(r.count for r in runs if not r.name.startswith('bare pods'))} sessions: "
        f"{reads} reads, {writes} writes by the operator; "
        f"CPU {idle_cpu * 100:.1f} % of a core; RSS {rss:.0f} MB"
    )
    for run in runs:
        print(f"\nAPI requests during '{run.name}' (all clients, from the API server):")
        for (verb, resource), n in run.apiserver.most_common(12):
            print(f"  {verb:7} {resource:32} {n:7}  ({n / run.count:.2f} per object)")
        if not run.name.startswith("bare pods"):
            print("  of which the operator's:")
            for (verb, resource), n in sorted(run.operator.items()):
                print(f"  {verb:7} {resource:32} {n:7}  ({n / run.count:.2f} per session)")


def hot(profile: Path, top: int = 15) -> None:
    """Where the operator's time went in a py-spy profile: the share of samples under each
    frame (inclusive), the busiest first."""
    inclusive: Counter[str] = Counter()
    total = 0
    for line in profile.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        total += int(n)
        for frame in set(stack.split(";")):
            inclusive[frame.split(" (")[0] + " (" + frame.rsplit("/", 1)[-1]] += int(n)
    print(f"\nprofile {profile.name}: {total} samples; frames by share of samples:")
    for frame, n in inclusive.most_common(top):
        print(f"  {n / total:6.1%}  {frame}")


async def main(count: int, concurrency: int, kinds: list[str], profile: bool) -> None:
    api = await connect()
    log = ROOT / "build" / "burst-operator.log"
    await apply_crds()
    operator = Operator(log)
    namespaces: list[str] = []
    nodes: list[str] = []
    try:
        # An earlier run's, still being deleted: their drives' finalizers need the operator.
        while leftover := await _leftover(api):
            print(f"waiting for {', '.join(leftover)} to go", flush=True)
            await asyncio.sleep(10)
        nodes = await _nodes(api, count * len(kinds))  # every run's pods stay to the end
        await _until_serving(api)
        runs = []
        names = {
            "pods": "bare pods",
            "pvcpods": "bare pods, each with a new PVC",
            "headless": "headless sessions",
        }
        for kind in kinds:
            run = Run(names.get(kind, "interactive sessions"), count)
            print(f"{run.name}: {count} ...", flush=True)
            out = ROOT / "build" / f"burst-profile-{kind}.txt" if profile else None
            namespaces.append(await burst(api, operator, run, concurrency, kind, out))
            runs.append(run)
            ready = len(run.ready)
            print(f"  {ready}/{count} Ready in {run.seconds:.1f} s", flush=True)
        await asyncio.sleep(3)
        idle_requests, idle_cpu = await idle(operator, 2 * RESYNC)
        rss = operator.rss_mb()
        report(runs, idle_requests, idle_cpu, rss)
        operator.stop()
        operator = Operator(log)
        sessions = sum(r.count for r in runs if not r.name.startswith("bare pods"))
        took = await restarted(operator, sessions)
        print(f"\nRestarted among them: every session known again {took:.1f} s after the start")
        for kind in kinds if profile else []:
            out = ROOT / "build" / f"burst-profile-{kind}.txt"
            if out.exists():
                hot(out)
    finally:
        await teardown(api, namespaces, operator, nodes)


async def teardown(
    api: client.ApiClient,
    namespaces: list[str],
    operator: Operator,
    nodes: list[str],
    also: tuple[str, ...] = (),
) -> None:
    """The namespaces go first, with the operator (their drives' finalizers) and the
    nodes (whose simulated kubelets finish the pods) still there; then the objects at the
    paths `also`, the operator, the nodes."""
    for namespace in namespaces:
        await _send(api, "DELETE", f"/api/v1/namespaces/{namespace}", None, "application/json")
    for _ in range(360):
        if not await _leftover(api):
            break
        await asyncio.sleep(5)
    for path in also:
        await _send(api, "DELETE", path, None, "application/json")
    operator.stop()
    for node in nodes:
        await _send(api, "DELETE", f"/api/v1/nodes/{node}", None, "application/json")
    await api.close()


async def apply_crds() -> None:
    """kabin's CRDs and the notebook environment, applied as an administrator would."""
    (ROOT / "build").mkdir(exist_ok=True)
    for args in (
        ["-k", str(ROOT / "crds")],
        ["-f", str(ROOT / "examples" / "envcfg-notebook.yaml")],
    ):
        applied = await asyncio.create_subprocess_exec(
            "kubectl", "apply", "--server-side", *args, stdout=asyncio.subprocess.DEVNULL
        )
        assert await applied.wait() == 0, f"kubectl apply {args} failed"
        await asyncio.sleep(2)  # the CRDs are established


async def _leftover(api: client.ApiClient) -> list[str]:
    """Namespaces of earlier, interrupted runs."""
    found = await _get(api, "/api/v1/namespaces")
    return [
        n["metadata"]["name"] for n in found["items"] if n["metadata"]["name"].startswith("burst-")
    ]


async def _until_serving(api: client.ApiClient) -> None:
    """Wait until the operator admits and reconciles: one session becomes Running."""
    namespace = await _namespace(api, "burst-warmup")
    session = {
        "apiVersion": "kabin.dev/v1alpha1",
        "kind": "Session",
        "metadata": {"name": "warmup"},
        "spec": {"type": "headless", "image": "busybox"},
    }
    path = f"/apis/kabin.dev/v1alpha1/namespaces/{namespace}/sessions"
    for _ in range(300):
        try:
            await _send(api, "POST", path, session, "application/json")
            break
        except RuntimeError:
            await asyncio.sleep(0.2)  # its webhooks are not registered yet
    for _ in range(300):
        obj = await _get(api, f"{path}/warmup")
        if (obj.get("status") or {}).get("phase") == "Running":
            break
        await asyncio.sleep(0.2)
    await _send(api, "DELETE", f"/api/v1/namespaces/{namespace}", None, "application/json")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--runs", default="pods,pvcpods,headless,interactive")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the operator with py-spy during each session burst, into "
        "build/burst-profile-KIND.txt (collapsed stacks)",
    )
    args = parser.parse_args()
    asyncio.run(main(args.count, args.concurrency, args.runs.split(","), args.profile))
