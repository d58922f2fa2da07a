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
