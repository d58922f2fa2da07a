"""Prometheus metrics of the operator. Labels take few values (type, phase,
reason), never one per session."""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge, Histogram

SESSIONS = Gauge("kabin_sessions", "Sessions by phase and type.", ["phase", "type"])
RECONCILE = Histogram(
    "kabin_reconcile_duration_seconds", "Time to reconcile one Session.", ["type"]
)
TIME_TO_READY = Histogram(
    "kabin_session_ready_duration_seconds",
    "Time from a Session's creation until it is first Ready.",
    ["type"],
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800),
)
FAILURES = Counter("kabin_session_failures_total", "Sessions that failed, by reason.", ["reason"])
LEADING = Gauge(
    "kabin_leading",
    "1 while this replica reconciles (it holds the leader Lease, or runs alone); 0 on a standby.",
)
CULL_LATENESS = Histogram(
    "kabin_session_cull_lateness_seconds",
    "Time from a session's expiry until the operator ended it, by timeout mode.",
    ["mode"],
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900),
)
PENDING_OLDEST = Gauge(
    "kabin_sessions_pending_oldest_seconds",
    "How long the session Pending the longest has been Pending (0: none is).",
)
DRIVE_WAIT = Histogram(
    "kabin_drive_wait_seconds",
    "Time a session waited for its drive before it was granted (0: the drive was free).",
    buckets=(0, 1, 5, 30, 60, 300, 900, 3600, 14400),
)
DRIVE_WAITERS = Gauge(
    "kabin_drive_waiters", "Sessions waiting for a drive that another session holds."
)

SUSPENDED = Gauge("kabin_sessions_suspended", "Suspended sessions, by reason.", ["reason"])
IDLE_GPU_FREED = Counter(
    "kabin_idle_suspend_gpu_seconds_total",
    "GPU-seconds freed by sessions suspended when idle (/3600: GPU-hours): each one's GPUs "
    "times the time it stayed suspended, added at its resume or deletion.",
)

QUEUE_WAIT = Histogram(
    "kabin_queue_wait_seconds",
    "Time a session's pods waited in their Kueue queue until admitted, by LocalQueue name "
    "and session type.",
    ["queue", "type"],
    buckets=(0.5, 1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14400, 43200),
)
QUEUED = Gauge(
    "kabin_queue_sessions",
    "Sessions in Kueue queues, by LocalQueue name and state: waiting or admitted.",
    ["queue", "state"],
)

_phases: dict[tuple[str, str], tuple[str, str]] = {}  # session -> (phase, type)
_pending_since: dict[tuple[str, str], float] = {}  # session -> when it became Pending (epoch)
_waiters: dict[tuple[str, str], int] = {}  # drive -> sessions waiting for it


def _oldest_pending() -> float:
    if not _pending_since:
        return 0.0
    return time.time() - min(_pending_since.values())


PENDING_OLDEST.set_function(_oldest_pending)
DRIVE_WAITERS.set_function(lambda: sum(_waiters.values()))


def _count(
    gauge: Gauge,
    counted: dict[tuple[str, str], tuple[str, str]],
    key: tuple[str, str],
    labels: tuple[str, str] | None,
) -> None:
    """Count `key` once in `gauge`, under `labels` (None: under none), off the labels it
    was counted under before (kept in `counted`)."""
    before = counted.pop(key, None)
    if before is not None:
        gauge.labels(*before).dec()
    if labels is not None:
        counted[key] = labels
        gauge.labels(*labels).inc()


def observe_phase(
    key: tuple[str, str],
    phase: str | None,
    session_type: str,
    *,
    pending_since: float | None = None,
) -> None:
    """Count the session under its phase (None: it is gone). A Pending session counts as
    Pending since `pending_since` (its creation, when it never ran: so a restarted or
    new leader knows), else since this operator first saw it Pending."""
    _count(SESSIONS, _phases, key, None if phase is None else (phase, session_type))
    if phase is None:
        observe_queue(key, None, None)
    if phase != "Suspended":
        observe_suspended(key, None)
    if phase == "Pending":
        _pending_since.setdefault(key, pending_since or time.time())
    else:
        _pending_since.pop(key, None)


_suspended: dict[tuple[str, str], tuple[str, int, float]] = {}  # -> reason, GPUs, since


def observe_suspended(
    key: tuple[str, str], reason: str | None, gpus: int = 0, since: float | None = None
) -> None:
    """Count the session as suspended for `reason` (None: it is not, or it is gone); an
    idle one's GPUs count as freed for as long as it stayed so."""
    before = _suspended.get(key)
    if before is not None and before[0] == reason:
        return
    if before is not None:
        _suspended.pop(key)
        SUSPENDED.labels(before[0]).dec()
        if before[0] == "IdleTimeout" and before[1]:
            IDLE_GPU_FREED.inc(before[1] * max(0.0, time.time() - before[2]))
    if reason is not None:
        _suspended[key] = (reason, gpus, since or time.time())
        SUSPENDED.labels(reason).inc()


_queued: dict[tuple[str, str], tuple[str, str]] = {}  # session -> (queue, state)


def observe_queue(key: tuple[str, str], queue: str | None, state: str | None) -> None:
    """Count the session as waiting in, or admitted by, its queue (None: neither)."""
    _count(QUEUED, _queued, key, None if queue is None or state is None else (queue, state))


def observe_waiters(drive: tuple[str, str], waiting: int) -> None:
    """Count the sessions waiting for one drive (0: none, or the drive is gone)."""
    if waiting:
        _waiters[drive] = waiting
    else:
        _waiters.pop(drive, None)
