"""Helpers shared by the tests: polling with deadlines, never fixed sleeps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

SKAHA_KEYS = frozenset(
    {
        "id",
        "userid",
        "image",
        "type",
        "status",
        "name",
        "startTime",
        "expiryTime",
        "connectURL",
        "requestedRAM",
        "requestedCPUCores",
        "requestedGPUCores",
        "ramInUse",
        "gpuRAMInUse",
        "cpuCoresInUse",
        "gpuUtilization",
    }
)
"""The 16 keys of a Skaha session record, which the clients and scripts rely on."""


async def eventually(
    probe: Callable[[], Awaitable[T]], *, timeout: float = 30.0, interval: float = 0.2
) -> T:
    """Await `probe` until it returns without raising AssertionError; return its value.

    The last AssertionError is re-raised at the deadline, so a failing test says
    what it was waiting for.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await probe()
        except AssertionError:
            if time.monotonic() >= deadline:
                raise
        await asyncio.sleep(interval)


async def gone(read: Callable[[], Awaitable[object]], *, within: float = 30.0) -> None:
    """Wait until `read` answers 404 Not Found: the object is really gone."""
    from kubernetes_asyncio.client.rest import ApiException

    async def probe() -> None:
        try:
            obj = await read()
        except ApiException as e:
            if e.status == 404:
                return
            raise
        raise AssertionError(f"still there: {getattr(obj, 'metadata', obj)}")

    await eventually(probe, timeout=within)


@dataclass(frozen=True)
class Result:
    """What a command printed and how it exited."""

    code: int
    out: str
    err: str


async def command(
    *argv: str,
    stdin: str | None = None,
    within: float = 30.0,
    env: dict[str, str] | None = None,
) -> Result:
    """Run a command (kubectl, say) without blocking the event loop."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else None,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(
        proc.communicate(stdin.encode() if stdin is not None else None), within
    )
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


async def run(
    *argv: str, stdin: str | None = None, within: float = 30.0, env: dict[str, str] | None = None
) -> str:
    """Run a command that must succeed; return what it printed."""
    result = await command(*argv, stdin=stdin, within=within, env=env)
    assert result.code == 0, f"{argv} failed ({result.code}): {result.err}"
    return result.out


async def kubectl_apply(
    manifest: dict[str, object],
    *,
    namespace: str | None = None,
    user: str | None = None,
    groups: tuple[str, ...] = (),
    dry_run: bool = False,
) -> Result:
    """`kubectl apply --server-side` of one manifest, as a user would run it."""
    import yaml

    argv = ["kubectl", "apply", "--server-side", "-f", "-"]
    if namespace:
        argv += ["-n", namespace]
    if user:
        argv += [f"--as={user}", *(f"--as-group={g}" for g in groups)]
    if dry_run:
        argv.append("--dry-run=server")
    return await command(*argv, stdin=yaml.safe_dump(manifest))


async def cores_available() -> int:
    """The cluster's CPU cores: the simulated topology's 128 (4 x 16 + 2 x 32) and the
    real node's own, where hack/node/up.sh started one."""
    real = await run(
        "kubectl",
        "get",
        "nodes",
        "-l",
        "type=real",
        "-o",
        "jsonpath={.items[*].status.capacity.cpu}",
    )
    return 4 * 16 + 2 * 32 + sum(int(c) for c in real.split())


async def service_account_token(api: Any, namespace: str, name: str) -> str:
    """A new ServiceAccount's token (10 minutes), as any pod in the namespace has one."""
    from kubernetes_asyncio import client

    core = client.CoreV1Api(api)
    await core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    made = await core.create_namespaced_service_account_token(
        name, namespace, {"spec": {"expirationSeconds": 600}}
    )
    token: str = made.status.token
    return token


async def present(read: Callable[[], Awaitable[T]], *, within: float = 30.0) -> T:
    """Wait until `read` finds the object (404 Not Found means: not yet); return it."""
    from kubernetes_asyncio.client.rest import ApiException

    async def probe() -> T:
        try:
            return await read()
        except ApiException as e:
            if e.status == 404:
                raise AssertionError("not there yet") from e
            raise

    return await eventually(probe, timeout=within)


async def exit_pod(api: object, namespace: str, pod: str, code: int) -> None:
    """End a simulated pod's containers with `code`, as a real process exiting would.

    kwok reads the annotation sim.kabin.dev/exit-code. Its stage queue can miss an
    update that lands while it is busy with the same pod, so the exit is signalled
    again (with a fresh annotation) until the pod has really finished.
    """
    from kubernetes_asyncio import client

    core = client.CoreV1Api(api)
    for attempt in range(5):
        await core.patch_namespaced_pod(
            pod,
            namespace,
            {
                "metadata": {
                    "annotations": {
                        "sim.kabin.dev/exit-code": str(code),
                        "sim.kabin.dev/exit-signal": str(attempt),
                    }
                }
            },
        )

        async def finished() -> None:
            from kubernetes_asyncio.client.rest import ApiException

            try:
                status = (await core.read_namespaced_pod(pod, namespace)).status
            except ApiException as e:
                if e.status == 404:
                    return  # it finished, and its session's operator removed it
                raise
            if status.phase in ("Succeeded", "Failed"):
                return
            # A restarting container (restartPolicy Always) crash-loops instead.
            waiting = [cs.state.waiting for cs in status.container_statuses or []]
            assert any(w is not None and w.reason == "CrashLoopBackOff" for w in waiting), (
                status.phase
            )

        try:
            await eventually(finished, timeout=3)
            return
        except AssertionError:
            continue
    raise AssertionError(f"pod {namespace}/{pod} did not exit with {code}")


def manifest(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A kabin.dev manifest; spec keys set to None are left out (to test their absence)."""
    return {
        "apiVersion": "kabin.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": {k: v for k, v in spec.items() if v is not None},
    }


def free_port() -> int:
    """A TCP port free on this machine now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def scrape(port: int) -> str:
    """A local process's /metrics; AssertionError (so `eventually` retries) until it
    serves them."""
    import aiohttp

    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/metrics") as response,
        ):
            assert response.status == 200, response.status
            return await response.text()
    except aiohttp.ClientConnectionError as e:
        raise AssertionError(f"metrics not served yet: {e}") from e


async def metric(port: int, name: str, **labels: str) -> float:
    """The sum of a metric's samples on a local process's /metrics, over those with
    `labels` (0 when there are none)."""
    from prometheus_client.parser import text_string_to_metric_families

    return sum(
        sample.value
        for family in text_string_to_metric_families(await scrape(port))
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def go_tool(name: str) -> str:
    """The path of helm or promtool, built once from the Go module proxy."""
    import subprocess
    from pathlib import Path

    build = Path(__file__).resolve().parents[1] / "hack" / "tools" / "build.sh"
    built = subprocess.run([str(build), name], capture_output=True, text=True, check=True)
    return built.stdout.strip()


def apply_now(*docs: dict[str, Any]) -> None:
    """`kubectl apply --server-side` of these objects, for sync fixtures."""
    import subprocess

    import yaml

    subprocess.run(
        ["kubectl", "apply", "--server-side", "-f", "-"],
        input=yaml.safe_dump_all(docs),
        text=True,
        capture_output=True,
        check=True,
    )
