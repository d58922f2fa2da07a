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
