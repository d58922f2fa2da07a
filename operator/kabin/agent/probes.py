"""The agent's samples of the world: interfaces answering, the signals of activity,
and usage. Each returns None (or an inactive Seen) when its source is missing, so
a session without Jupyter, ssh or a GPU is simply not asked about them. The
decisions are pure functions in `kabin.logic.activity`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp

from kabin.logic import activity
from kabin.logic.activity import Seen

SSH_BANNER = b"SSH-2.0"


@dataclass(frozen=True)
class Probe:
    """One interface of the session, as the operator describes it to the agent."""

    name: str
    port: int
    base: str = ""  # URL path the application is served under (http)
    path: str = ""  # URL path that answers 200 once it is up (http)

    @property
    def http(self) -> bool:
        return bool(self.path)


async def answers(http: aiohttp.ClientSession, host: str, iface: Probe, token: str | None) -> bool:
    """Whether an interface answers: 200 on its path (http), the SSH-2.0 banner (ssh)."""
    if iface.http:
        headers = {"Authorization": f"token {token}"} if token else {}
        try:
            async with http.get(f"http://{host}:{iface.port}{iface.path}", headers=headers) as r:
                return r.status == 200
        except (aiohttp.ClientError, TimeoutError, OSError):
            return False
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, iface.port), 2)
    except (TimeoutError, OSError):
        return False
    try:
        banner = await asyncio.wait_for(reader.readline(), 2)
        return banner.startswith(SSH_BANNER)
    except (TimeoutError, OSError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _get_json(http: aiohttp.ClientSession, url: str, token: str | None) -> Any:
    headers = {"Authorization": f"token {token}"} if token else {}
    async with http.get(url, headers=headers) as r:
        r.raise_for_status()
        return await r.json(content_type=None)


async def jupyter(
    http: aiohttp.ClientSession, host: str, iface: Probe, token: str | None, now: datetime
) -> Seen | None:
    """Jupyter Server's REST API: `/api/status` and `/api/kernels`, asked so that the
    asking itself is no activity (`no_track_activity`; the status handler tracks none)."""
    base = f"http://{host}:{iface.port}{iface.base}"
    try:
        status = await _get_json(http, f"{base}api/status", token)
        kernels = await _get_json(http, f"{base}api/kernels?no_track_activity=1", token)
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
        return None
    return activity.jupyter(status, kernels if isinstance(kernels, list) else [], now=now)


async def code_server(
    http: aiohttp.ClientSession, host: str, iface: Probe, now: datetime
) -> Seen | None:
    """code-server's `/healthz` heartbeat."""
    try:
        healthz = await _get_json(http, f"http://{host}:{iface.port}{iface.base}healthz", None)
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
        return None
    return activity.code_server(healthz)


def connections(source: str, port: int, proc: str, now: datetime) -> Seen | None:
    """Established connections to an interface's port, from /proc/net/tcp and tcp6: an
    ssh client, or a browser tab holding a desktop's or web app's WebSocket."""
    tables = []
    for name in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            tables.append(Path(proc, "net", name).read_text())
    if not tables:
        return None
    count = sum(activity.established_connections(t, port) for t in tables)
    return Seen(source, count > 0, now if count else None)


class Processes:
    """CPU time and memory of the session's processes: every process the agent can see
    (the pod shares one process namespace) except the agent itself."""

    def __init__(self, proc: str) -> None:
        self.proc = Path(proc)
        self.me = os.getpid()
        self.hz = os.sysconf("SC_CLK_TCK")
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.before: tuple[int, float] | None = None  # (ticks, monotonic time)

    def totals(self) -> tuple[int, int]:
        """(CPU clock ticks, resident bytes) summed over the session's processes."""
        ticks = pages = 0
        for entry in self.proc.iterdir():
            if not entry.name.isdigit() or int(entry.name) == self.me:
                continue
            with contextlib.suppress(OSError, IndexError, ValueError):
                t, p = activity.process_times((entry / "stat").read_text())
                ticks, pages = ticks + t, pages + p
        return ticks, pages * self.page

    def sample(self, *, threshold: float, now: datetime, clock: float) -> tuple[Seen, float, int]:
        """(what the CPU signal says, cores used since the last sample, resident bytes)."""
        ticks, rss = self.totals()
        before, self.before = self.before, (ticks, clock)
        if before is None:
            return Seen("cpu", False), 0.0, rss
        seconds = clock - before[1]
        ticks = max(ticks, before[0])  # a process that ended unreaped takes its time along
        usec = 1_000_000 // self.hz
        seen = activity.cpu(
            usage_before_usec=before[0] * usec,
            usage_now_usec=ticks * usec,
            seconds=seconds,
            threshold_cores=threshold,
            now=now,
        )
        cores = (ticks - before[0]) / self.hz / seconds if seconds > 0 else 0.0
        return seen, cores, rss


def nvml(nvml_module: ModuleType | Any | None = None) -> tuple[list[int], int] | None:
    """(utilization percent per GPU, GPU memory used in bytes) of the GPUs this
    container sees, through NVML (`nvidia-ml-py`); None without NVML or a GPU."""
    module: Any = nvml_module
    if module is None:
        try:
            import pynvml

            module = pynvml
        except ImportError:
            return None
    error: type[Exception] = getattr(module, "NVMLError", Exception)
    try:
        module.nvmlInit()
    except error:  # NVMLError_LibraryNotFound, _DriverNotLoaded...: no GPU here
        return None
    try:
        count = module.nvmlDeviceGetCount()
        if count == 0:
            return None
        utilization, used = [], 0
        for index in range(count):
            handle = module.nvmlDeviceGetHandleByIndex(index)
            utilization.append(int(module.nvmlDeviceGetUtilizationRates(handle).gpu))
            used += int(module.nvmlDeviceGetMemoryInfo(handle).used)
        return utilization, used
    except error:
        return None
    finally:
        with contextlib.suppress(error):
            module.nvmlShutdown()
