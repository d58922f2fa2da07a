"""Benchmark: creating sessions one by one versus concurrently with `AsyncSession`.

Runs against the cluster in $KUBECONFIG (with the operator running, so that every
create passes its admission webhooks as in production). In a fresh namespace it
creates COUNT headless sessions sequentially, one `create` awaited after another,
waits for the operator to settle them, then creates COUNT more with one
`create(replicas=COUNT)`, which runs up to `concurrency` requests in flight. It
prints both times and their ratio, and deletes the namespace.

    python benchmarks/create_sessions.py [--count 200] [--concurrency 32] [--rtt MS]

`--rtt MS` routes the client through a local TCP relay that delays every chunk by
MS/2 milliseconds each way: the round trip of an API server across a network
(a notebook talking to a cloud cluster), which is where concurrency pays most. On
a local control plane with few cores, the API server's CPU bounds the ratio instead.

This is a script, not a timed test: the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from pathlib import Path

from kubernetes_asyncio import client

from kabin import AsyncSession
from kabin.k8s import connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.relay import kubeconfig_through, relay

IMAGE = "busybox"


async def settled(session: AsyncSession, prefix: str, count: int, within: float) -> float:
    """Wait until the operator has given each of the sessions a phase; seconds taken."""
    start = time.perf_counter()
    while time.perf_counter() - start < within:
        found = [s for s in await session.fetch() if s["name"].startswith(prefix)]
        if len(found) == count and all(s["status"] == "Running" for s in found):
            break
        await asyncio.sleep(1)
    return time.perf_counter() - start


async def gone(core: client.CoreV1Api, namespace: str, within: float) -> None:
    """Wait until the namespace (and so every session in it) is deleted."""
    start = time.perf_counter()
    while time.perf_counter() - start < within:
        names = [n.metadata.name for n in (await core.list_namespace()).items]
        if namespace not in names:
            return
        await asyncio.sleep(1)


async def main(count: int, concurrency: int, wait: float, rtt_ms: float) -> None:
    api = await connect()
    namespace = f"kabin-bench-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(api)
    await core.create_namespace({"metadata": {"name": namespace}})
    kubeconfig = None
    if rtt_ms:
        url, listener = await relay(api.configuration.host, rtt_ms)
        kubeconfig = kubeconfig_through(url)
        print(f"through a relay adding {rtt_ms:g} ms of round trip")
    try:
        async with AsyncSession(
            kubeconfig=kubeconfig, namespace=namespace, concurrency=concurrency
        ) as session:
            await session.fetch()  # connect before timing

            start = time.perf_counter()
            for i in range(1, count + 1):
                await session.create(f"seq-{i}", IMAGE, cores=0.1, ram=0.1)
            sequential = time.perf_counter() - start
            print(f"sequential: {count} sessions in {sequential:.2f} s", flush=True)
            took = await settled(session, "seq-", count, wait)
            print(f"  (the operator had them all Running {took:.1f} s later)")

            start = time.perf_counter()
            ids = await session.create("par", IMAGE, cores=0.1, ram=0.1, replicas=count)
            concurrent = time.perf_counter() - start
            assert len(ids) == count
            print(f"concurrent: {count} sessions in {concurrent:.2f} s (concurrency {concurrency})")
            took = await settled(session, "par-", count, wait)
            print(f"  (the operator had them all Running {took:.1f} s later)")
            print(f"ratio: {sequential / concurrent:.1f}x faster concurrently", flush=True)
    finally:
        await core.delete_namespace(namespace, propagation_policy="Background")
        await gone(core, namespace, wait)  # so that a next run does not pay for this cleanup
        await api.close()
        if kubeconfig:
            os.unlink(kubeconfig)
            listener.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--wait", type=float, default=300, help="seconds to let the operator settle each batch"
    )
    parser.add_argument(
        "--rtt", type=float, default=0, help="milliseconds of simulated network round trip"
    )
    options = parser.parse_args()
    asyncio.run(main(options.count, options.concurrency, options.wait, options.rtt))
