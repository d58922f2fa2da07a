"""Benchmark: Skaha's REST API through `kabin gateway` versus the same operations
straight on the API server.

Runs against the cluster in $KUBECONFIG with the operator running (every create
passes its admission webhooks). It starts a gateway process that signs in one user
from a static token file, and compares, side by side in one run:

- listing the user's sessions when they have COUNT (1,000): `GET /skaha/v1/session`
  (records parsed) versus a LIST of their Sessions in their namespace (objects parsed);
- creating CREATES (200) headless sessions one after another: `POST /skaha/v1/session`
  versus a create of the same Session.

Both sides act as the same user (the direct side impersonates them with the
kubeconfig's credentials, as the gateway does), and the two sides alternate request
by request, so the operator's background work weighs on both alike. It prints p50 and
p99 latency of each and their ratios, then deletes the user's namespace.

    python benchmarks/gateway.py [--count 1000] [--lists 40] [--creates 200]

This is a script, not a timed test: the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config

IMAGE = "images.canfar.net/skaha/terminal:1.1.1"


def start_gateway(tokens: Path, template: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = {
        **os.environ,
        "KABIN_GATEWAY_NAMESPACE_TEMPLATE": template,
        "KABIN_GATEWAY_PROVISION_NAMESPACES": "true",
    }
    out = log.open("wb")
    cmd = [sys.executable, "-m", "kabin", "gateway", "--port", "0", "--token-file", str(tokens)]
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    for _ in range(600):
        found = re.search(r"serving (http://\S+)/skaha", log.read_text())
        if found:
            return proc, found.group(1)
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"the gateway did not start:\n{log.read_text()}")


def quantiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1000, p99 * 1000


def manifest(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "kabin.dev/v1alpha1",
        "kind": "Session",
        "metadata": {"name": name, "namespace": namespace, "annotations": {"kabin.dev/name": "b"}},
        "spec": {"type": "headless", "image": IMAGE, "command": ["sleep"], "args": ["3600"]},
    }


async def main(count: int, lists: int, creates: int) -> None:
    user = f"bench-{uuid.uuid4().hex[:5]}"
    token = secrets.token_urlsafe(16)
    namespace = f"kabin-{user}"
    tmp = Path(tempfile.mkdtemp(prefix="kabin-gateway-bench-"))
    (tmp / "tokens.csv").write_text(f"{token},{user},{user}\n")
    proc, url = start_gateway(tmp / "tokens.csv", "kabin-{user}", tmp / "gateway.log")
    base = f"{url}/skaha/v1/session"
    auth = {"Authorization": f"Bearer {token}"}
    kube = await config.new_client_from_config()
    kube.set_default_header("Impersonate-User", user)
    custom = client.CustomObjectsApi(kube)
    admin = await config.new_client_from_config()
    try:
        async with aiohttp.ClientSession(headers=auth) as http:
            async with http.get(base) as first:  # makes the user's namespace
                assert first.status == 200, await first.text()

            # -- fill the namespace with COUNT sessions, then wait for the operator to settle
            started = time.perf_counter()
            slots = asyncio.Semaphore(32)

            async def fill(i: int) -> None:
                async with slots:
                    await custom.create_namespaced_custom_object(
                        "kabin.dev", "v1alpha1", namespace, "sessions",
                        manifest(namespace, f"fill-{i:05d}"),
                    )  # fmt: skip

            await asyncio.gather(*(fill(i) for i in range(count)))
            print(f"made {count} sessions in {time.perf_counter() - started:.1f} s", flush=True)
            while True:
                listed = await custom.list_namespaced_custom_object(
                    "kabin.dev", "v1alpha1", namespace, "sessions"
                )
                # Every session has its status (Running, or Pending where the simulated
                # nodes' 110 pods each are full): the operator's first pass is done.
                phases = [(s.get("status") or {}).get("phase") for s in listed["items"]]
                if None not in phases or time.perf_counter() - started > 600:
                    break
                await asyncio.sleep(2)
            print(
                f"the operator gave each a phase after {time.perf_counter() - started:.1f} s",
                flush=True,
            )

            async def direct_list() -> int:
                response = await custom.list_namespaced_custom_object(
                    "kabin.dev", "v1alpha1", namespace, "sessions", _preload_content=False
                )
                return len(json.loads(await response.read())["items"])

            async def gateway_list() -> int:
                async with http.get(base) as answer:
                    return len(json.loads(await answer.read()))

            list_times: dict[str, list[float]] = {"direct": [], "gateway": []}
            for _ in range(lists):
                for side, call in (("direct", direct_list), ("gateway", gateway_list)):
                    t = time.perf_counter()
                    n = await call()
                    list_times[side].append(time.perf_counter() - t)
                    assert n >= count, (side, n)

            create_times: dict[str, list[float]] = {"direct": [], "gateway": []}
            for i in range(creates):
                t = time.perf_counter()
                await custom.create_namespaced_custom_object(
                    "kabin.dev", "v1alpha1", namespace, "sessions",
                    manifest(namespace, f"direct-{i:05d}"),
                )  # fmt: skip
                create_times["direct"].append(time.perf_counter() - t)
                t = time.perf_counter()
                params = {"name": f"gw-{i}", "image": IMAGE, "cmd": "sleep", "args": "3600"}
                async with http.post(base, params=params) as answer:
                    assert answer.status == 200, await answer.text()
                create_times["gateway"].append(time.perf_counter() - t)

        print()
        print(f"{'operation':<34}{'direct p50':>11}{'gateway p50':>13}{'ratio':>7}"
              f"{'direct p99':>12}{'gateway p99':>13}{'ratio':>7}  goal")  # fmt: skip
        for label, times, goal in (
            (f"list {count} sessions (x{lists})", list_times, 1.5),
            (f"create a session (x{creates})", create_times, 1.3),
        ):
            d50, d99 = quantiles(times["direct"])
            g50, g99 = quantiles(times["gateway"])
            print(
                f"{label:<34}{d50:>9.1f}ms{g50:>11.1f}ms{g50 / d50:>6.2f}x"
                f"{d99:>10.1f}ms{g99:>11.1f}ms{g99 / d99:>6.2f}x  {goal}x"
            )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        await kube.close()
        await client.CoreV1Api(admin).delete_namespace(namespace, propagation_policy="Background")
        await admin.close()
        print(f"\ndeleted namespace {namespace}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="sessions to list")
    parser.add_argument("--lists", type=int, default=40, help="lists on each side")
    parser.add_argument("--creates", type=int, default=200, help="creates on each side")
    args = parser.parse_args()
    asyncio.run(main(args.count, args.lists, args.creates))
