"""The `kabin` command through its real entry points (the installed console script,
and `kubectl kabin`), against the real control plane and operator, as people run it."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client

from tests.conftest import session_url
from tests.support import Result, command, cores_available, eventually, exit_pod, present

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
KABIN = str(BIN / "kabin")
GROUP, VERSION = "kabin.dev", "v1alpha1"


@pytest.fixture(autouse=True)
def _terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """An 80-column terminal, and kubectl able to find the `kubectl-kabin` plugin."""
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ['PATH']}")


async def kabin(*argv: str, namespace: str | None = None, within: float = 60) -> Result:
    args = [KABIN, *argv]
    if namespace:
        args += ["-n", namespace]
    return await command(*args, within=within)


async def ok(*argv: str, namespace: str | None = None, within: float = 60) -> str:
    result = await kabin(*argv, namespace=namespace, within=within)
    assert result.code == 0, f"kabin {' '.join(argv)}: {result.code}\n{result.out}\n{result.err}"
    return result.out


async def sessions_of(api: client.ApiClient, namespace: str) -> dict[str, dict[str, Any]]:
    found = await client.CustomObjectsApi(api).list_namespaced_custom_object(
        GROUP, VERSION, namespace, "sessions"
    )
    return {s["metadata"]["name"]: s for s in found["items"]}


async def running(api: client.ApiClient, namespace: str, *names: str) -> None:
    async def probe() -> None:
        found = await sessions_of(api, namespace)
        phases = {n: (found.get(n, {}).get("status") or {}).get("phase") for n in names}
        assert set(phases.values()) == {"Running"}, phases

    await eventually(probe)


def fits_80_columns(text: str) -> None:
    too_wide = [line for line in text.splitlines() if len(line) > 80]
    assert not too_wide, too_wide


async def test_create_ls_info_and_delete(
    api: client.ApiClient, namespace: str, operator: object
) -> None:
    out = await ok(
        "create",
        "test",
        "--image",
        "busybox",
        "--env",
        "TEST=test",
        "-r",
        "2",
        namespace=namespace,
    )
    assert out.splitlines() == ["session/test-1 created", "session/test-2 created"]
    stored = await sessions_of(api, namespace)
    assert {"name": "TEST", "value": "test"} in stored["test-1"]["spec"]["env"]
    assert stored["test-1"]["spec"]["resources"] == {"cpu": 2, "memory": "4Gi"}
    await running(api, namespace, "test-1", "test-2")

    table = await ok("ls", namespace=namespace)
    fits_80_columns(table)
    header, *rows = [line for line in table.splitlines() if line.strip() and "──" not in line]
    assert header.split() == ["NAME", "TYPE", "STATUS", "QUEUE", "CPU", "RAM", "GPU", "AGE"]
    assert [r.split()[:7] for r in rows] == [
        ["test-1", "headless", "Running", "-", "2", "4G", "0"],
        ["test-2", "headless", "Running", "-", "2", "4G", "0"],
    ]
    listed = json.loads(await ok("list", "-o", "json", namespace=namespace))
    assert [s["id"] for s in listed] == ["test-1", "test-2"]
    assert [s["id"] for s in yaml.safe_load(await ok("ls", "-o", "yaml", namespace=namespace))] == [
        "test-1",
        "test-2",
    ]
    assert "test-1" not in await ok("ls", "--type", "notebook", namespace=namespace)
    assert "test-1" in await ok("ls", "--status", "Running", "-t", "headless", namespace=namespace)
    everywhere = await ok("ls", "--all-namespaces")
    assert everywhere.split()[0] == "NAMESPACE" and "test-1" in everywhere
    fits_80_columns(everywhere)  # long namespaces fold within their column
    ids = [s["id"] for s in json.loads(await ok("ls", "-A", "-o", "json"))]
    assert f"{namespace}/test-1" in ids

    described = await ok("info", "test-1", namespace=namespace)
    fits_80_columns(described)
    for text in ("test-1", "headless", "Scheduled", "Ready", "True"):
        assert text in described
    (record,) = json.loads(await ok("info", "test-1", "-o", "json", namespace=namespace))
    assert record["status"] == "Running" and record["requestedRAM"] == "4G"

    missing = await kabin("info", "nope", namespace=namespace)
    assert missing.code == 1
    assert f'session "nope" not found in namespace "{namespace}"' in missing.err

    out = await ok("delete", "test-1", "test-2", namespace=namespace)
    assert out.splitlines() == ["session/test-1 deleted", "session/test-2 deleted"]
    again = await kabin("delete", "test-1", namespace=namespace)
    assert again.code == 1 and 'session "test-1" not found' in again.err


async def test_create_wait_shows_progress_until_ready_and_the_url(
    api: client.ApiClient, namespace: str, environments: None
) -> None:
    waiting = asyncio.create_task(
        kabin("create", "nb", "-e", "notebook", "-t", "notebook", "--wait", namespace=namespace)
    )
    pod = await present(lambda: client.CoreV1Api(api).read_namespaced_pod("nb-1", namespace))
    await running(api, namespace, "nb")
    assert not waiting.done(), "--wait returned before the interface answered"
    # What the session's agent does once JupyterLab answers.
    await client.CoreV1Api(api).patch_namespaced_pod_status(
        pod.metadata.name,
        namespace,
        {"status": {"conditions": [{"type": "kabin.dev/jupyterlab-ready", "status": "True"}]}},
    )
    result = await asyncio.wait_for(waiting, 60)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    steps = ["nb: Scheduled", "nb: Drive granted", "nb: jupyterlab ready", "nb: Ready"]
    placed, granted, lab, ready = (
        next(i for i, line in enumerate(lines) if line.startswith(s)) for s in steps
    )
    # The drive and the pod may be reported by one status write, in either order.
    assert max(placed, granted) < lab < ready, lines
    url = session_url(namespace, "nb", f"/session/notebook/{namespace}/nb/lab")
    assert lines[-1] == f"nb: connect at {url}"


async def test_create_wait_fails_with_the_reason(namespace: str, operator: object) -> None:
    result = await kabin(
        "create", "bad", "--image", "registry.invalid/none:1", "--wait", namespace=namespace
    )
    assert result.code == 1
    assert "bad is Failed" in result.err and "registry.invalid/none:1" in result.err, result.err


async def test_bad_input_exits_non_zero_naming_the_problem(
    namespace: str, operator: object
) -> None:
    cores = await kabin("create", "x", "--image", "busybox", "--cores", "0", namespace=namespace)
    assert cores.code == 1 and "cores: 0 must be more than 0" in cores.err
    name = await kabin("create", "Bad_Name", "--image", "busybox", namespace=namespace)
    assert name.code == 1 and "name: 'Bad_Name' must be lowercase" in name.err
    env = await kabin("create", "x", "--image", "busybox", "--env", "NOVALUE", namespace=namespace)
    assert env.code == 2 and "--env: 'NOVALUE' is not KEY=VALUE" in env.err
    kind = await kabin("ls", "--type", "desktop-app", namespace=namespace)
    assert kind.code == 1 and "kind: 'desktop-app' is not a session type" in kind.err
    fmt = await kabin("ls", "-o", "xml", namespace=namespace)
    assert fmt.code == 2 and "xml" in fmt.err
    neither = await kabin("delete", namespace=namespace)
    assert neither.code == 2 and "give session ids or --prefix" in neither.err


async def test_logs_and_follow(api: client.ApiClient, namespace: str, operator: object) -> None:
    await ok("create", "job", "--image", "busybox", "--wait", namespace=namespace)
    logs = await ok("logs", "job", namespace=namespace)
    assert "[kabin-sim] hello from a simulated pod" in logs

    proc = await asyncio.create_subprocess_exec(
        KABIN,
        "logs",
        "-f",
        "job",
        "-n",
        namespace,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    seen: list[str] = []
    try:
        async with asyncio.timeout(30):
            while not any("hello from a simulated pod" in line for line in seen):
                line = await proc.stdout.readline()
                assert line, f"the log ended early: {seen}; {(await proc.stderr.read()).decode()}"  # type: ignore[union-attr]
                seen.append(line.decode())
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()


async def test_stats(namespace: str, operator: object) -> None:
    cores = await cores_available()  # the simulated topology's 128 and the real node's
    table = await ok("stats", namespace=namespace)
    fits_80_columns(table)
    assert "NVIDIA-H100-80GB-HBM3" in table and str(cores) in table
    stats = json.loads(await ok("stats", "-o", "json", namespace=namespace))
    assert stats["cores"]["cpuCoresAvailable"] == cores
    assert stats["gpus"]["NVIDIA-H100-80GB-HBM3"]["available"] == 16


async def test_renew(api: client.ApiClient, namespace: str, operator: object) -> None:
    await ok("create", "shell", "--image", "busybox", "--timeout", "600", namespace=namespace)
    assert await ok("renew", "shell", namespace=namespace) == "session/shell renewed\n"
    token = (await sessions_of(api, namespace))["shell"]["metadata"]["annotations"][
        "kabin.dev/renew"
    ]

    async def acted_on() -> None:
        status = (await sessions_of(api, namespace))["shell"].get("status") or {}
        assert (status.get("renewal") or {}).get("token") == token, status

    await eventually(acted_on)
    missing = await kabin("renew", "nope", namespace=namespace)
    assert missing.code == 1 and 'sessions.kabin.dev "nope" not found' in missing.err


async def test_delete_by_prefix_with_dry_run_type_and_status(
    api: client.ApiClient, namespace: str, operator: object
) -> None:
    for name in ("test-a", "test-b", "other"):
        await ok("create", name, "--image", "busybox", namespace=namespace)
    await running(api, namespace, "test-a", "test-b", "other")
    await exit_pod(api, namespace, "test-a-1", 0)

    async def succeeded() -> None:
        phase = (await sessions_of(api, namespace))["test-a"]["status"]["phase"]
        assert phase == "Succeeded", phase

    await eventually(succeeded)

    dry = await ok("delete", "--prefix", "test", "--dry-run", namespace=namespace)
    assert dry.splitlines() == [
        "session/test-a would be deleted (dry run)",
        "session/test-b would be deleted (dry run)",
    ]
    assert set(await sessions_of(api, namespace)) == {"test-a", "test-b", "other"}
    dry_names = await ok("delete", "other", "--dry-run", namespace=namespace)
    assert dry_names == "session/other would be deleted (dry run)\n"

    assert (
        await ok("delete", "-p", "test", "--type", "notebook", namespace=namespace)
        == "no session matches\n"
    )
    out = await ok("delete", "--prefix", "test", "--status", "Succeeded", namespace=namespace)
    assert out == "session/test-a deleted\n"
    out = await ok(
        "delete", "--prefix", "test", "-t", "headless", "-s", "Running", namespace=namespace
    )
    assert out == "session/test-b deleted\n"

    async def left() -> None:
        assert set(await sessions_of(api, namespace)) == {"other"}

    await eventually(left)


async def test_drives_and_envs(namespace: str, environments: None) -> None:
    assert (
        await ok(
            "drives", "create", "data", "--size", "5Gi", "--access", "private", namespace=namespace
        )
        == "drive/data created\n"
    )
    table = await ok("drives", "ls", namespace=namespace)
    fits_80_columns(table)
    row = next(line.split() for line in table.splitlines() if line.startswith("data"))
    assert row[:3] == ["data", "5Gi", "private"]
    (drive,) = json.loads(await ok("drives", "ls", "-o", "json", namespace=namespace))
    assert drive["owner"] != "<none>"  # stamped by the webhook
    again = await kabin("drives", "create", "data", namespace=namespace)
    assert (
        again.code == 1 and f'drive "data" already exists in namespace "{namespace}"' in again.err
    )
    small = await kabin("drives", "create", "tiny", "--size", "lots", namespace=namespace)
    assert small.code == 1 and "spec.size" in small.err

    envs = await ok("envs", "ls")
    fits_80_columns(envs)
    for name in ("notebook", "pytorch-gpu", "ssh", "vscode", "desktop"):
        assert name in envs
    published = {e["name"]: e for e in yaml.safe_load(await ok("envs", "ls", "-o", "yaml"))}
    assert published["pytorch-gpu"]["gpu"] == "NVIDIA-H100-80GB-HBM3"


async def test_kubectl_plugin(namespace: str, operator: object) -> None:
    await ok("create", "plugged", "--image", "busybox", namespace=namespace)
    result = await command("kubectl", "kabin", "ls", "-n", namespace, "-o", "json")
    assert result.code == 0, result.err
    assert [s["id"] for s in json.loads(result.out)] == ["plugged"]
    usage = await command("kubectl", "kabin", "--help")
    assert "kubectl kabin" in usage.out
