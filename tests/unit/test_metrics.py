"""The operator's derived gauges: how long the oldest session has been Pending."""

from __future__ import annotations

import time

from prometheus_client import REGISTRY

from kabin.handlers import metrics


def _oldest() -> float:
    return REGISTRY.get_sample_value("kabin_sessions_pending_oldest_seconds") or 0.0


def test_a_session_that_never_ran_is_pending_since_its_creation() -> None:
    """So a new leader, or a restarted operator, reports the true age at once."""
    key = ("unit", "old")
    metrics.observe_phase(key, "Pending", "notebook", pending_since=time.time() - 1200)
    try:
        assert 1199 <= _oldest() <= 1260
        metrics.observe_phase(key, "Running", "notebook")
        assert _oldest() < 1199
    finally:
        metrics.observe_phase(key, None, "")


def test_suspended_sessions_by_reason_and_the_gpu_hours_idle_suspends_freed() -> None:
    def suspended(reason: str) -> float:
        return REGISTRY.get_sample_value("kabin_sessions_suspended", {"reason": reason}) or 0.0

    def freed() -> float:
        return REGISTRY.get_sample_value("kabin_idle_suspend_gpu_seconds_total") or 0.0

    idle, user = ("ns", "gpu-lab"), ("ns", "cpu-lab")
    before_idle, before_user, before_freed = suspended("IdleTimeout"), suspended("User"), freed()
    metrics.observe_phase(idle, "Suspended", "notebook")
    metrics.observe_suspended(idle, "IdleTimeout", gpus=2, since=time.time() - 1800)
    metrics.observe_phase(user, "Suspended", "notebook")
    metrics.observe_suspended(user, "User", gpus=0)
    metrics.observe_suspended(idle, "IdleTimeout", gpus=2)  # the next reconcile: no change
    assert suspended("IdleTimeout") == before_idle + 1
    assert suspended("User") == before_user + 1
    metrics.observe_phase(
        idle, "Pending", "notebook"
    )  # resumed: 2 GPUs x half an hour, in GPU-seconds
    assert abs(freed() - before_freed - 3600) < 30
    assert suspended("IdleTimeout") == before_idle
    metrics.observe_phase(user, None, "")  # deleted while suspended
    assert suspended("User") == before_user
    assert abs(freed() - before_freed - 3600) < 30  # no GPUs, and not idle


def test_queued_sessions_waiting_then_admitted_and_how_long_they_waited() -> None:
    from datetime import UTC, datetime, timedelta

    from kabin.api.meta import Condition
    from kabin.api.session import SessionSpec, SessionStatus
    from kabin.handlers.sessions import _record_queue

    def gauge(state: str) -> float:
        labels = {"queue": "unit-q", "state": state}
        return REGISTRY.get_sample_value("kabin_queue_sessions", labels) or 0.0

    def waited() -> tuple[float, float]:
        labels = {"queue": "unit-q", "type": "headless"}
        total = REGISTRY.get_sample_value("kabin_queue_wait_seconds_sum", labels) or 0.0
        count = REGISTRY.get_sample_value("kabin_queue_wait_seconds_count", labels) or 0.0
        return total, count

    now = datetime(2026, 1, 1, tzinfo=UTC)
    spec = SessionSpec.model_validate({"type": "headless", "image": "x", "queue": "unit-q"})
    waiting = SessionStatus(
        phase="Pending",
        queue="unit-q",
        queued_at=now,
        conditions=[Condition(type="Queued", status="True", reason="Queued", message="1st")],
    )
    admitted = SessionStatus(
        phase="Running",
        queue="unit-q",
        queued_at=now,
        admitted_at=now + timedelta(seconds=90),
        conditions=[Condition(type="Queued", status="False", reason="Admitted", message="in")],
    )
    key = ("unit", "queued")
    before = waited()
    _record_queue(key, spec, SessionStatus(), waiting)
    assert (gauge("waiting"), gauge("admitted")) == (1, 0)
    _record_queue(key, spec, waiting, admitted)
    assert (gauge("waiting"), gauge("admitted")) == (0, 1)
    _record_queue(key, spec, admitted, admitted)  # the next reconcile: counted once
    assert waited() == (before[0] + 90, before[1] + 1)
    metrics.observe_phase(key, None, "")  # deleted
    assert (gauge("waiting"), gauge("admitted")) == (0, 0)
