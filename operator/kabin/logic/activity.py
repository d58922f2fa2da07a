"""Activity signals, read from what the agent samples: pure parsers and decisions.

The agent (issue 6) samples each source and asks these functions whether the
session was active, and since when. A missing source (no Jupyter, no GPU) is
simply not asked. Nothing here reads files, sockets or the clock.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kabin.api.meta import parse_time
from kabin.api.names import ACTIVITY_SOURCE_ANNOTATION, USAGE_ANNOTATION

# /proc/net/tcp state codes (include/net/tcp_states.h).
TCP_ESTABLISHED = "01"


def established_connections(proc_net_tcp: str, port: int) -> int:
    """Established TCP connections to local `port`, from /proc/net/tcp or /proc/net/tcp6.

    Each data line reads `sl local_address rem_address st ...`, with addresses as
    HEX_IP:HEX_PORT; the listening socket itself is not counted (state 0A).
    """
    count = 0
    for line in proc_net_tcp.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4 or ":" not in fields[1]:
            continue
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        if local_port == port and fields[3] == TCP_ESTABLISHED:
            count += 1
    return count


def _time(text: str | None) -> datetime | None:
    return parse_time(text) if text else None


@dataclass(frozen=True)
class Seen:
    """What one signal says: was the session active, and when last."""

    source: str
    active: bool
    last: datetime | None = None


def jupyter(status: dict[str, Any], kernels: list[dict[str, Any]], *, now: datetime) -> Seen:
    """Jupyter Server's view: a busy kernel is activity now; otherwise the server's own
    `last_activity` (`/api/status`), which moves with every request a user makes."""
    if any(k.get("execution_state") == "busy" for k in kernels):
        return Seen("jupyter", True, now)
    last = _time(status.get("last_activity"))
    return Seen("jupyter", last is not None, last)


def code_server(healthz: dict[str, Any]) -> Seen:
    """VS Code (code-server) `/healthz`: `lastHeartbeat` in epoch milliseconds, which the
    editor's front end renews while someone has it open."""
    from datetime import UTC

    beat = healthz.get("lastHeartbeat")
    if not beat:
        return Seen("vscode", False)
    return Seen("vscode", True, datetime.fromtimestamp(int(beat) / 1000, UTC))


def cpu(
    *,
    usage_before_usec: int,
    usage_now_usec: int,
    seconds: float,
    threshold_cores: float,
    now: datetime,
) -> Seen:
    """The session's processes, from cgroup `cpu.stat` usage_usec sampled `seconds` apart:
    active when they used more than `threshold_cores` on average (a build, a training run)."""
    if seconds <= 0:
        return Seen("cpu", False)
    cores = (usage_now_usec - usage_before_usec) / 1e6 / seconds
    return Seen("cpu", cores > threshold_cores, now if cores > threshold_cores else None)


def gpu(*, utilization_percent: list[int], threshold_percent: int, now: datetime) -> Seen:
    """NVML utilization of the session's GPUs: active when any is above the threshold."""
    busy = any(u > threshold_percent for u in utilization_percent)
    return Seen("gpu", busy, now if busy else None)


def latest(seen: list[Seen]) -> Seen | None:
    """The most recent activity over all signals, naming the signal that saw it."""
    active = [s for s in seen if s.active and s.last is not None]
    return max(active, key=lambda s: s.last or datetime.min) if active else None


def process_times(stat: str) -> tuple[int, int]:
    """(CPU clock ticks, resident pages) of one process, from its /proc/<pid>/stat.

    The ticks are its own (utime, stime: fields 14, 15) and those of its children it
    has waited for (cutime, cstime: 16, 17), so a build's short-lived compilers
    count once they end: summed over a pod's processes (where PID 1, the pause
    process, reaps orphans) the total only grows. The command name (field 2) may
    hold spaces and parentheses, so fields are counted after its closing
    parenthesis; rss is field 24 (proc(5)).
    """
    fields = stat.rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]), int(fields[21])


@dataclass(frozen=True)
class Measured:
    """Resources the session uses now, as `status.usage` reports them."""

    cpu_cores: float
    memory_bytes: int
    gpu_utilization: float | None = None
    gpu_memory_bytes: int | None = None

    def report(self) -> dict[str, Any]:
        """The `status.usage` fields, rounded so that an idle session's report stays put."""
        mib = 1 << 20
        out: dict[str, Any] = {
            "cpuCores": round(self.cpu_cores, 1),
            "memory": f"{round(self.memory_bytes / mib / 64) * 64}Mi",
        }
        if self.gpu_utilization is not None:
            out["gpuUtilization"] = float(round(self.gpu_utilization / 5) * 5)
        if self.gpu_memory_bytes is not None:
            out["gpuMemory"] = f"{round(self.gpu_memory_bytes / mib / 64) * 64}Mi"
        return out


@dataclass
class Reporter:
    """What the agent writes, decided from its samples: new activity, at most once per
    `interval` seconds, and usage when it moved, at most once per `usage_interval`.

    Activity is new when a signal saw it after the agent started and after that
    signal's previous sample (a Jupyter server's `last_activity` that did not move
    is no activity). Activity seen while a write is held back by the interval is
    kept and written when the interval has passed, so none is lost.
    """

    started: datetime
    interval: float
    usage_interval: float
    previous: dict[str, datetime] | None = None
    pending: Seen | None = None
    reported: datetime | None = None
    written: datetime | None = None
    usage: Measured | None = None  # as last reported
    usage_written: datetime | None = None

    def activity(self, seen: list[Seen], now: datetime) -> Seen | None:
        """The activity to write now, if any; call `wrote` once it is written."""
        previous = self.previous if self.previous is not None else {}
        fresh = []
        for s in seen:
            if s.active and s.last is not None:
                floor = max(self.started, previous.get(s.source, self.started))
                if s.last > floor:
                    fresh.append(s)
                previous[s.source] = max(s.last, previous.get(s.source, s.last))
        self.previous = previous
        newest = latest([*fresh, *([self.pending] if self.pending else [])])
        if newest is None or newest.last is None:
            return None
        if self.reported is not None and newest.last <= self.reported:
            return None
        self.pending = newest
        if self.written is not None and (now - self.written).total_seconds() < self.interval:
            return None
        return newest

    def wrote(self, seen: Seen, now: datetime) -> None:
        """`seen` is in the Lease now."""
        self.reported, self.written, self.pending = seen.last, now, None

    def usage_report(self, usage: Measured, now: datetime) -> dict[str, Any] | None:
        """The usage to write now: when it moved by more than a step (0.25 cores, 128Mi,
        10 % of GPU) since the last report, at most once per `usage_interval`; a value
        sitting on a rounding boundary does not flip back and forth."""
        if self.usage is not None and not _moved(self.usage, usage):
            return None
        if (
            self.usage_written is not None
            and (now - self.usage_written).total_seconds() < self.usage_interval
        ):
            return None
        self.usage, self.usage_written = usage, now
        return usage.report()


def _moved(before: Measured, now: Measured) -> bool:
    mib = 1 << 20
    steps = [
        abs(now.cpu_cores - before.cpu_cores) >= 0.25,
        abs(now.memory_bytes - before.memory_bytes) >= 128 * mib,
        abs((now.gpu_utilization or 0) - (before.gpu_utilization or 0)) >= 10,
        abs((now.gpu_memory_bytes or 0) - (before.gpu_memory_bytes or 0)) >= 128 * mib,
    ]
    return any(steps)


@dataclass(frozen=True)
class Recorded:
    """What the session's activity Lease says: the last activity and the latest usage."""

    time: datetime | None
    source: str | None
    usage: dict[str, Any] | None
    since: datetime | None = None  # when the Lease was made: the idle clock starts no earlier


def from_lease(lease: dict[str, Any] | None) -> Recorded | None:
    """The activity an agent recorded on a Lease; None when there is no Lease."""
    import json

    if lease is None:
        return None
    annotations = lease.get("metadata", {}).get("annotations") or {}
    usage = None
    with contextlib.suppress(ValueError):
        parsed = json.loads(annotations.get(USAGE_ANNOTATION) or "null")
        usage = parsed if isinstance(parsed, dict) else None
    return Recorded(
        time=_time(lease.get("spec", {}).get("renewTime")),
        source=annotations.get(ACTIVITY_SOURCE_ANNOTATION),
        usage=usage,
        since=_time(lease.get("metadata", {}).get("creationTimestamp")),
    )
