"""Benchmark: the operator among many sessions and many pods that are not kabin's, this
version against an earlier one (by default the last one whose cache kopf's watches fed),
side by side in one run on one control plane.

It creates S headless sessions (each with its pod) and F foreign pods (no kabin label),
then, for each operator in turn, started among them:

- start-up: seconds from its start until it knows every session (its work queue's
  `kabin_workqueue_objects`);
- RSS once it knows them, and its CPU share of one core while idle across one resync;
- the CPU seconds it spends while another 1,000 foreign pods are created, run and are
  deleted (it should see none of them).

    make cluster-up
    .venv/bin/python benchmarks/informer.py [--sessions 10000] [--foreign 10000]
        [--churn 1000] [--baseline REV]

The earlier version is checked out (git worktree) under build/ and run from there. This
is a script, not a timed test: the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import burst  # noqa: E402  (the same operator, nodes and raw requests as the burst benchmark)

from kabin.k8s import connect  # noqa: E402

BASELINE = "97d9b4e"  # the last version before the informers
RESYNC = 30.0


def checkout(rev: str) -> Path:
    """The operator package of `rev`, checked out under build/."""
    where = ROOT / "build" / f"baseline-{rev}"
    if not where.exists():
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(where), rev],
            check=True,
            capture_output=True,
        )
    return where / "operator"


async def _foreign(
    api: object, namespace: str, count: int, concurrency: int, tag: str, app: str = "not-kabin"
) -> None:
    async def one(i: int) -> None:
        pod = {
            "metadata": {"name": f"{tag}{i:05d}", "labels": {"app": app}},
            "spec": {"containers": [{"name": "main", "image": "busybox"}]},
        }
        await burst._send(
            api, "POST", f"/api/v1/namespaces/{namespace}/pods", pod, "application/json"
        )  # type: ignore[arg-type]

    await burst._all(count, concurrency, one)


async def _count(api: object, path: str) -> int:
    """How many objects a (selected) collection has, page by page: the API server gives
    no remaining count for a selected list."""
    total, token = 0, ""
    while True:
        page = await burst._get(api, f"{path}&limit=5000" + (f"&continue={token}" if token else ""))  # type: ignore[arg-type]
        total += len(page["items"])
        token = page["metadata"].get("continue") or ""
        if not token:
            return total


async def _running(api: object, namespace: str, count: int, *, label: str) -> None:
    """Wait until `count` pods with `label` run in `namespace`."""
    path = (
        f"/api/v1/namespaces/{namespace}/pods?labelSelector={label}"
        "&fieldSelector=status.phase%3DRunning"
    )
    for _ in range(1800):
        if await _count(api, path) >= count:
            return
        await asyncio.sleep(2)
    raise TimeoutError(f"{count} pods did not run in {namespace}")


async def _gone(api: object, namespace: str, label: str) -> None:
    for _ in range(3600):
        found = await burst._get(
            api, f"/api/v1/namespaces/{namespace}/pods?labelSelector={label}&limit=1"
        )  # type: ignore[arg-type]
        if not found["items"]:
            return
        await asyncio.sleep(1)


async def measure(
    api: object, name: str, pythonpath: str | None, sessions: int, churn: int, namespace: str
) -> dict[str, float]:
    """One operator version among the sessions: its start-up, memory and idle CPU with a
    resync every RESYNC seconds; then, started again with no resync in the way, the CPU
    it spends while foreign pods come and go."""
    env = {"PYTHONPATH": pythonpath} if pythonpath else {}
    log = ROOT / "build" / f"informer-operator-{name}.log"
    operator = burst.Operator(log, env={**env, "KABIN_RESYNC_INTERVAL": str(RESYNC)})
    try:
        known = await burst.restarted(operator, sessions)
        await asyncio.sleep(5)  # the reconciles of the start-up settle
        rss = operator.rss_mb()
        _, idle_cpu = await burst.idle(operator, RESYNC)  # exactly one resync in it
    finally:
        operator.stop()
    operator = burst.Operator(log, env={**env, "KABIN_RESYNC_INTERVAL": "3600"})
    try:
        await burst.restarted(operator, sessions)
        await asyncio.sleep(10)
        _, quiet = await burst.idle(operator, 10)
        cpu = operator.cpu_seconds()
        started = time.perf_counter()
        await _foreign(api, namespace, churn, 32, f"churn-{name}-", app="not-kabin-churn")
        await _running(api, namespace, churn, label="app%3Dnot-kabin-churn")
        selected = f"/api/v1/namespaces/{namespace}/pods?labelSelector=app%3Dnot-kabin-churn"
        await burst._send(api, "DELETE", selected, None, "application/json")  # type: ignore[arg-type]
        await _gone(api, namespace, "app%3Dnot-kabin-churn")
        churn_cpu = operator.cpu_seconds() - cpu
        took = time.perf_counter() - started
        return {
            "known": known,
            "rss": rss,
            "resync": idle_cpu * RESYNC,
            "quiet": quiet,
            "churn_cpu": churn_cpu,
            "churn_s": took,
            "rss_after": operator.rss_mb(),
        }
    finally:
        operator.stop()


async def _reused(api: object, prefix: str) -> str | None:
    """A namespace an earlier run kept (--keep)."""
    found = await burst._get(api, "/api/v1/namespaces")  # type: ignore[arg-type]
    names = [
        n["metadata"]["name"] for n in found["items"] if n["metadata"]["name"].startswith(prefix)
    ]
    return names[0] if names else None


async def main(sessions: int, foreign: int, churn: int, baseline: str, keep: bool) -> None:
    api = await connect()
    old = checkout(baseline)
    await burst.apply_crds()
    nodes = await burst._nodes(api, sessions + foreign + churn)
    namespaces: list[str] = []
    operator = burst.Operator(ROOT / "build" / "informer-operator-setup.log")
    try:
        await burst._until_serving(api)
        where, others = await _reused(api, "burst-informer"), await _reused(api, "burst-foreign")
        started = time.perf_counter()
        if where is None or others is None:
            where = await burst._namespace(api, "burst-informer")
            others = await burst._namespace(api, "burst-foreign")
            print(
                f"creating {sessions} headless sessions and {foreign} foreign pods ...", flush=True
            )
            await burst._all(sessions, 32, lambda i: burst._create(api, where, "headless", i))
            await _foreign(api, others, foreign, 32, "f")
        else:
            print(f"reusing {where} and {others} (--keep of an earlier run)", flush=True)
        if not keep:
            namespaces += [where, others]
        await _running(api, where, sessions, label="kabin.dev%2Fsession")
        await _running(api, others, foreign, label="app%3Dnot-kabin")
        print(f"  all running after {time.perf_counter() - started:.0f} s", flush=True)
        operator.stop()

        results = {}
        for name, path in (("before", str(old)), ("informers", None)):
            print(f"measuring {name} ...", flush=True)
            results[name] = await measure(api, name, path, sessions, churn, others)
            print(f"  {results[name]}", flush=True)
        report(results, sessions, foreign, churn, baseline)
    finally:
        operator.stop()
        for namespace in namespaces:
            await burst._send(
                api, "DELETE", f"/api/v1/namespaces/{namespace}", None, "application/json"
            )
        cleanup = burst.Operator(ROOT / "build" / "informer-operator-cleanup.log")
        try:
            for _ in range(0 if keep else 360):
                if not await burst._leftover(api):
                    break
                await asyncio.sleep(5)
        finally:
            cleanup.stop()
        for node in nodes if not keep else []:
            await burst._send(api, "DELETE", f"/api/v1/nodes/{node}", None, "application/json")
        await api.close()


def report(
    results: dict[str, dict[str, float]], sessions: int, foreign: int, churn: int, baseline: str
) -> None:
    before, now = results["before"], results["informers"]
    print(
        f"\n{sessions:,} sessions and {foreign:,} foreign pods; before = {baseline} "
        f"(kopf's watches feed the cache), informers = this version\n"
    )
    print("| measure | before | informers | informers / before | goal |")
    print("|---|---|---|---|---|")

    def idle(r: dict[str, float]) -> float:  # at the default resync, every 300 s
        return (r["resync"] + r["quiet"] * (300 - RESYNC)) / 300 * 100

    rows = [
        ("start-up until every session is known", lambda r: r["known"], "s", "<= 20 s"),
        ("RSS once they are known", lambda r: r["rss"], "MB", "<= 300 MB"),
        ("CPU of one resync of every session", lambda r: r["resync"], "s", ""),
        ("CPU between resyncs", lambda r: r["quiet"] * 100, "% of a core", ""),
        ("idle CPU at the default resync (300 s)", idle, "% of a core", "<= 2 %"),
        (f"CPU while {churn:,} foreign pods come and go", lambda r: r["churn_cpu"], "s", "< 1 s"),
        ("RSS afterwards", lambda r: r["rss_after"], "MB", ""),
    ]
    for label, value, unit, goal in rows:
        a, b = value(before), value(now)
        ratio = f"{b / a:.2f}x" if a else "-"
        print(f"| {label} | {a:.2f} {unit} | {b:.2f} {unit} | {ratio} | {goal} |")
    print(
        f"\n(the foreign pods took {before['churn_s']:.0f} s and {now['churn_s']:.0f} s "
        "to come and go)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=10000)
    parser.add_argument("--foreign", type=int, default=10000)
    parser.add_argument("--churn", type=int, default=1000)
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument(
        "--keep", action="store_true", help="keep the sessions and pods for the next run"
    )
    args = parser.parse_args()
    asyncio.run(main(args.sessions, args.foreign, args.churn, args.baseline, args.keep))
