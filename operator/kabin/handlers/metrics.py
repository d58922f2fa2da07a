"""Prometheus metrics of the operator. Labels take few values (type, phase,
reason), never one per session."""

from __future__ import annotations

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

_phases: dict[tuple[str, str], tuple[str, str]] = {}  # session -> (phase, type)


def observe_phase(key: tuple[str, str], phase: str | None, session_type: str) -> None:
    """Count the session under its phase (None: it is gone)."""
    before = _phases.pop(key, None)
    if before is not None:
        SESSIONS.labels(*before).dec()
    if phase is not None:
        _phases[key] = (phase, session_type)
        SESSIONS.labels(phase, session_type).inc()
