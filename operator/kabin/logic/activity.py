"""Activity signals, read from what the agent samples: pure parsers and decisions.

The agent (issue 6) samples each source and asks these functions whether the
session was active, and since when. A missing source (no Jupyter, no GPU) is
simply not asked. Nothing here reads files, sockets or the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

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
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


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
