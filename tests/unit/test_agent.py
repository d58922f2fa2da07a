"""The agent's parts that need no cluster: NVML without a GPU and with a fake NVML,
process CPU time from real /proc files, ssh connections from a proc tree, and what
the agent decides to write (activity at most once per interval, usage when it moves)."""

from __future__ import annotations

import os
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from kabin.agent import probes
from kabin.api import names
from kabin.logic import activity
from kabin.logic.activity import Measured, Reporter, Seen

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


class FakeNVMLError(Exception):
    pass


def fake_nvml(utilization: list[int], used: list[int], *, fail_init: bool = False) -> Any:
    """A stand-in for `pynvml` with the calls the probe makes, as nvidia-ml-py names them."""
    calls: list[str] = []

    def init() -> None:
        calls.append("init")
        if fail_init:
            raise FakeNVMLError("NVML Shared Library Not Found")

    return SimpleNamespace(
        NVMLError=FakeNVMLError,
        calls=calls,
        nvmlInit=init,
        nvmlShutdown=lambda: calls.append("shutdown"),
        nvmlDeviceGetCount=lambda: len(utilization),
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetUtilizationRates=lambda h: SimpleNamespace(gpu=utilization[h], memory=0),
        nvmlDeviceGetMemoryInfo=lambda h: SimpleNamespace(used=used[h], total=80 << 30),
    )


def test_nvml_without_a_gpu_is_skipped_cleanly() -> None:
    if Path("/dev/nvidiactl").exists():
        pytest.skip("this machine has a GPU")
    assert probes.nvml() is None  # the real nvidia-ml-py: no library, no driver


def test_nvml_reads_every_visible_gpu() -> None:
    nvml = fake_nvml([87, 3], [10 << 30, 1 << 30])
    assert probes.nvml(nvml) == ([87, 3], 11 << 30)
    assert nvml.calls == ["init", "shutdown"]


def test_nvml_failing_to_start_is_no_gpu() -> None:
    assert probes.nvml(fake_nvml([50], [1], fail_init=True)) is None
    assert probes.nvml(fake_nvml([], [])) is None, "no device visible"


def test_process_times_parse_this_process() -> None:
    before = activity.process_times(Path("/proc/self/stat").read_text())
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass  # burn CPU in this process
    ticks, pages = activity.process_times(Path(f"/proc/{os.getpid()}/stat").read_text())
    hz = os.sysconf("SC_CLK_TCK")
    assert (ticks - before[0]) / hz >= 0.2
    assert pages * os.sysconf("SC_PAGE_SIZE") > 1 << 20, "some resident memory"


def test_process_names_with_spaces_and_parentheses() -> None:
    stat = (
        "42 (my (odd) name) S " + " ".join(["0"] * 10) + " 150 50 " + " ".join(["0"] * 8) + " 256 0"
    )
    assert activity.process_times(stat) == (200, 256)


def test_ssh_probe_reads_a_proc_tree(tmp_path: Path) -> None:
    (tmp_path / "net").mkdir()
    assert probes.connections("ssh", 2222, str(tmp_path), NOW) is None, "no tables: no signal"
    (tmp_path / "net" / "tcp").write_text(
        "  sl  local_address rem_address   st\n"
        "   1: 0100007F:08AE 0100007F:D2F0 01 00000000:00000000\n"
    )
    assert probes.connections("ssh", 2222, str(tmp_path), NOW) == Seen("ssh", True, NOW)
    assert probes.connections("desktop", 22, str(tmp_path), NOW) == Seen("desktop", False, None)


async def test_ssh_readiness_needs_the_banner() -> None:
    import asyncio

    import aiohttp

    def greeting(banner: bytes) -> Any:
        async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(banner)
            await writer.drain()
            writer.close()

        return greet

    for banner, ok in ((b"SSH-2.0-OpenSSH_9.2\r\n", True), (b"HTTP/1.1 400 Bad\r\n", False)):
        server = await asyncio.start_server(greeting(banner), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server, aiohttp.ClientSession() as http:
            iface = probes.Probe("ssh", port)
            assert await probes.answers(http, "127.0.0.1", iface, None) is ok
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    async with aiohttp.ClientSession() as http:
        assert not await probes.answers(http, "127.0.0.1", probes.Probe("ssh", closed), None)


def reporter(interval: float = 60) -> Reporter:
    return Reporter(started=NOW, interval=interval, usage_interval=300)


def test_a_server_idle_since_before_the_agent_is_no_activity() -> None:
    r = reporter()
    old = Seen("jupyter", True, NOW - timedelta(minutes=5))
    assert r.activity([old], NOW + timedelta(seconds=1)) is None
    assert r.activity([old], NOW + timedelta(seconds=2)) is None


def test_new_activity_is_written_at_most_once_per_interval_and_never_lost() -> None:
    r = reporter(interval=60)
    first = Seen("jupyter", True, NOW + timedelta(seconds=1))
    assert r.activity([first], NOW + timedelta(seconds=1)) == first
    r.wrote(first, NOW + timedelta(seconds=1))
    again = Seen("ssh", True, NOW + timedelta(seconds=10))
    assert r.activity([again], NOW + timedelta(seconds=10)) is None, "within the interval"
    # The ssh client left; its activity is still written once the interval has passed.
    assert r.activity([Seen("ssh", False)], NOW + timedelta(seconds=61)) == again
    r.wrote(again, NOW + timedelta(seconds=61))
    assert r.activity([Seen("ssh", False)], NOW + timedelta(seconds=200)) is None


def test_a_timestamp_that_does_not_move_is_written_once() -> None:
    r = reporter(interval=1)
    beat = Seen("vscode", True, NOW + timedelta(seconds=5))
    assert r.activity([beat], NOW + timedelta(seconds=5)) == beat
    r.wrote(beat, NOW + timedelta(seconds=5))
    assert r.activity([beat], NOW + timedelta(seconds=30)) is None


def test_usage_is_reported_when_it_moves_at_most_once_per_interval() -> None:
    r = reporter()
    idle = Measured(cpu_cores=0.01, memory_bytes=300 << 20)
    assert r.usage_report(idle, NOW) == {"cpuCores": 0.0, "memory": "320Mi"}
    assert (
        r.usage_report(
            Measured(cpu_cores=0.02, memory_bytes=301 << 20), NOW + timedelta(minutes=10)
        )
        is None
    ), "an idle session's usage stays put: no writes"
    busy = Measured(
        cpu_cores=3.97, memory_bytes=8 << 30, gpu_utilization=91, gpu_memory_bytes=20 << 30
    )
    assert r.usage_report(busy, NOW + timedelta(seconds=30)) is None, "too soon"
    assert r.usage_report(busy, NOW + timedelta(minutes=11)) == {
        "cpuCores": 4.0,
        "memory": "8192Mi",
        "gpuUtilization": 90.0,
        "gpuMemory": "20480Mi",
    }


def test_the_lease_is_read_back_as_recorded_activity() -> None:
    recorded = activity.from_lease(
        {
            "metadata": {
                "annotations": {
                    names.ACTIVITY_SOURCE_ANNOTATION: "gpu",
                    names.USAGE_ANNOTATION: '{"cpuCores": 1.0}',
                }
            },
            "spec": {"renewTime": "2026-01-01T12:00:00.250000Z"},
        }
    )
    assert recorded == activity.Recorded(
        time=NOW + timedelta(milliseconds=250), source="gpu", usage={"cpuCores": 1.0}
    )
    assert activity.from_lease(None) is None
    broken = activity.from_lease({"metadata": {"annotations": {names.USAGE_ANNOTATION: "{"}}})
    assert broken == activity.Recorded(time=None, source=None, usage=None)


def test_usage_on_a_rounding_boundary_is_not_rewritten() -> None:
    r = reporter()
    assert r.usage_report(Measured(cpu_cores=0.149, memory_bytes=500 << 20), NOW) is not None
    later = NOW + timedelta(minutes=30)
    assert r.usage_report(Measured(cpu_cores=0.151, memory_bytes=530 << 20), later) is None


def test_a_finished_childs_cpu_time_still_counts() -> None:
    import subprocess
    import sys

    before = activity.process_times(Path("/proc/self/stat").read_text())[0]
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import time\nt=time.process_time()+0.3\nwhile time.process_time()<t: pass",
        ],
        check=True,
    )
    after = activity.process_times(Path("/proc/self/stat").read_text())[0]
    assert (after - before) / os.sysconf("SC_CLK_TCK") >= 0.2, "the child's time, once reaped"


def test_the_agent_probes_quickly_until_every_interface_has_answered() -> None:
    """Someone waits for the button while an interface starts: probes every quarter
    second until each has answered once, then at the probe interval."""
    from kabin.agent import STARTING_PROBE_INTERVAL, Agent
    from kabin.settings import AgentSettings

    settings = AgentSettings(
        session="s",
        namespace="n",
        pod="s-1",
        interfaces='[{"name": "jupyterlab", "port": 8888, "path": "/lab"}, '
        '{"name": "ssh", "port": 2222}]',
    )
    agent = Agent(settings, api=None)  # type: ignore[arg-type]
    assert agent.pause() == STARTING_PROBE_INTERVAL < settings.probe_interval
    agent.gates["jupyterlab"] = True
    assert agent.pause() == STARTING_PROBE_INTERVAL
    agent.gates["ssh"] = True
    assert agent.pause() == settings.probe_interval
    agent.gates["ssh"] = False  # it stopped answering: watch for it to come back
    assert agent.pause() == STARTING_PROBE_INTERVAL
