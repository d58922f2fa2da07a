"""Each pure step of a Session's status on its own, as tables: the clock (start, renew,
activity, expiry), the phase, the endpoints, and the Scheduled and Ready conditions."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from kabin.api.environment import EnvironmentConfigSpec
from kabin.api.session import Endpoint, Renewal, SessionSpec, SessionStatus
from kabin.logic import resolve
from kabin.logic.activity import Recorded
from kabin.logic.status.conditions import Conditions
from kabin.logic.status.endpoints import connect_url, endpoints
from kabin.logic.status.model import DriveView, Observed
from kabin.logic.status.phase import verdict
from kabin.logic.status.pods import Pods
from kabin.logic.status.timeouts import clock
from tests.unit.test_status import NOW, OWNER, SETTINGS, pod

SHELL = EnvironmentConfigSpec.model_validate(
    {
        "image": "sh:1",
        "interfaces": [{"name": "ssh", "port": 22}, {"name": "http", "port": 80, "path": "/app"}],
        "timeouts": {"default": 60, "mode": "absolute"},
    }
)
IDLE = EnvironmentConfigSpec.model_validate({"image": "nb:1", "timeouts": {"default": 60}})


def observed(
    spec: dict[str, Any],
    *,
    env: EnvironmentConfigSpec | None = SHELL,
    previous: SessionStatus | None = None,
    pods: list[dict[str, Any]] | None = None,
    renew: str | None = None,
    activity: Recorded | None = None,
    deleting: bool = False,
    services: dict[str, Any] | None = None,
) -> Observed:
    parsed = SessionSpec.model_validate({"environment": "e", **spec})
    return Observed(
        spec=parsed,
        owner=OWNER,
        resolved=resolve.resolve(parsed, env),
        generation=1,
        previous=previous or SessionStatus(),
        pods=pods or [],
        services=services or {},
        renew=renew,
        activity=activity,
        deleting=deleting,
    )


BEFORE = NOW - timedelta(seconds=20)


@pytest.mark.parametrize(
    ("env", "previous", "renew", "activity", "running", "start", "expiry"),
    [
        pytest.param(SHELL, None, None, None, False, None, None, id="not-started"),
        pytest.param(SHELL, None, None, None, True, NOW, NOW + timedelta(seconds=60), id="starts-now"),
        pytest.param(SHELL, SessionStatus(start_time=BEFORE), "r", None, True, BEFORE, NOW + timedelta(seconds=60), id="renewed-now"),
        pytest.param(
            SHELL,
            SessionStatus(start_time=BEFORE, renewal=Renewal(token="r", time=BEFORE)),
            "r", None, True, BEFORE, BEFORE + timedelta(seconds=60), id="same-renew",
        ),
        pytest.param(IDLE, SessionStatus(start_time=BEFORE), None, None, True, BEFORE, None, id="idle-without-lease"),
        pytest.param(
            IDLE, SessionStatus(start_time=BEFORE), None, Recorded(NOW - timedelta(seconds=5), "cpu", None),
            True, BEFORE, NOW + timedelta(seconds=55), id="idle-from-activity",
        ),
    ],
)  # fmt: skip
def test_clock(
    env: EnvironmentConfigSpec,
    previous: SessionStatus | None,
    renew: str | None,
    activity: Recorded | None,
    running: bool,
    start: Any,
    expiry: Any,
) -> None:
    kind = "ssh" if env is SHELL else "notebook"
    times = clock(
        observed({"type": kind}, env=env, previous=previous, renew=renew, activity=activity),
        now=NOW,
        running=running,
    )
    assert (times.start, times.expiry) == (start, expiry)


@pytest.mark.parametrize(
    ("spec", "previous", "pods", "deleting", "phase", "reason"),
    [
        pytest.param({"type": "ssh"}, None, [], False, "Pending", None, id="no-pods"),
        pytest.param({"type": "ssh"}, None, [pod(1)], False, "Running", None, id="running"),
        pytest.param({"type": "ssh"}, None, [pod(1)], True, "Terminating", None, id="deleting"),
        pytest.param({"type": "headless", "image": "x"}, None, [pod(1, "Succeeded", exit_code=0)], False, "Succeeded", "Completed", id="done"),
        pytest.param({"type": "headless", "image": "x"}, None, [pod(1, "Failed", exit_code=3)], False, "Failed", "ReplicaFailed", id="failed"),
        pytest.param({"type": "ssh"}, None, [pod(1, "Pending", waiting="CrashLoopBackOff")], False, "Failed", "CrashLoopBackOff", id="crash-loop"),
        pytest.param({"type": "ssh"}, None, [pod(1, "Pending", waiting="ErrImagePull")], False, "Failed", "ErrImagePull", id="pull-past-grace"),
        pytest.param({"type": "ssh"}, None, [pod(1, "Pending", waiting="ErrImagePull", age=5)], False, "Pending", None, id="pull-in-grace"),
        pytest.param(
            {"type": "ssh"}, SessionStatus(phase="Running", start_time=NOW - timedelta(seconds=61)),
            [pod(1)], False, "Expired", "Timeout", id="expired",
        ),
        pytest.param(
            {"type": "ssh"}, SessionStatus(phase="Expired", reason="Timeout"), [pod(1)], False,
            "Expired", "Timeout", id="terminal-stays",
        ),
    ],
)  # fmt: skip
def test_phase(
    spec: dict[str, Any],
    previous: SessionStatus | None,
    pods: list[dict[str, Any]],
    deleting: bool,
    phase: str,
    reason: str | None,
) -> None:
    seen = observed(spec, previous=previous, pods=pods, deleting=deleting)
    found = Pods.of(pods, seen.spec.replicas)
    times = clock(seen, now=NOW, running=bool(found.running))
    where = verdict(seen, found, times, now=NOW, settings=SETTINGS)
    assert (where.phase, where.reason) == (phase, reason)


SSH_SERVICE = {"s-ssh": {"spec": {"ports": [{"name": "ssh", "port": 22, "nodePort": 30022}]}}}


@pytest.mark.parametrize(
    ("phase", "gates", "services", "want"),
    [
        pytest.param("Pending", {}, {}, [("ssh", "ssh -p 22 alice@ssh.example", False), ("http", "https://h.example/session/ssh/ns/s/app", False)], id="not-running"),
        pytest.param("Running", {"ssh": True}, SSH_SERVICE, [("ssh", "ssh -p 30022 alice@ssh.example", True), ("http", "https://h.example/session/ssh/ns/s/app", False)], id="ssh-answers"),
        pytest.param("Running", {"ssh": True, "http": True}, {}, [("ssh", "ssh -p 22 alice@ssh.example", True), ("http", "https://h.example/session/ssh/ns/s/app", True)], id="both"),
    ],
)  # fmt: skip
def test_endpoints(
    phase: str, gates: dict[str, bool], services: dict[str, Any], want: list[tuple[str, str, bool]]
) -> None:
    # An interface that answers in a pod that is not Ready (another gate closed, or the
    # kubelet not there yet) has no endpoint behind its Service: not ready either.
    unready = endpoints(observed({"type": "ssh"}, services=services), phase=phase,
                        head=pod(1, gates=gates, ready=False), settings=SETTINGS)  # fmt: skip
    assert not any(e.ready for e in unready)
    seen = observed({"type": "ssh"}, services=services)
    head = pod(1, gates=gates)
    found = endpoints(seen, phase=phase, head=head, settings=SETTINGS)
    assert [(e.name, e.url, e.ready) for e in found] == want
    assert connect_url(found) == "https://h.example/session/ssh/ns/s/app"
    assert endpoints(observed({"type": "headless", "image": "x"}), phase=phase, head=head, settings=SETTINGS) == []  # fmt: skip


MAKE = Conditions(previous=SessionStatus(), now=NOW, generation=1)


@pytest.mark.parametrize(
    ("pods", "phase", "status", "reason"),
    [
        pytest.param([pod(1)], "Running", "True", "Scheduled", id="placed"),
        pytest.param([pod(1, "Pending", scheduled=("Unschedulable", "0/6 nodes: no GPU"))], "Pending", "False", "Unschedulable", id="scheduler-says-no"),
        pytest.param([], "Pending", "False", "Pending", id="not-yet"),
        pytest.param([], "Expired", "False", "Expired", id="ended"),
    ],
)  # fmt: skip
def test_scheduled_condition(
    pods: list[dict[str, Any]], phase: str, status: str, reason: str
) -> None:
    made = MAKE.scheduled(Pods.of(pods, 1), phase=phase, replicas=1)
    assert (made.status, made.reason) == (status, reason)


UP = Endpoint(name="ssh", url="u", ready=True)
DOWN = Endpoint(name="ssh", url="u", ready=False)


@pytest.mark.parametrize(
    ("phase", "ready_pods", "endpoints_", "drive", "status", "reason", "message"),
    [
        pytest.param("Running", 1, [UP], None, "True", "Ready", "1/1 replicas ready, every interface answers", id="ready"),
        pytest.param("Running", 1, [DOWN], None, "False", "NotReady", "1/1 replicas ready; waiting for ssh", id="interface-down"),
        pytest.param("Running", 1, [UP], DriveView("d", False, "Waiting", "w"), "False", "NotReady", "1/1 replicas ready", id="drive-not-granted"),
        pytest.param("Running", 0, [], None, "False", "NotReady", "0/1 replicas ready", id="pod-not-ready"),
        pytest.param("Failed", 0, [], None, "False", "Failed", "boom", id="ended"),
    ],
)  # fmt: skip
def test_ready_condition(
    phase: str,
    ready_pods: int,
    endpoints_: list[Endpoint],
    drive: DriveView | None,
    status: str,
    reason: str,
    message: str,
) -> None:
    made = MAKE.ready(
        phase=phase,
        message="boom",
        ready_pods=ready_pods,
        replicas=1,
        endpoints=endpoints_,
        drive=drive,
    )
    assert (made.status, made.reason, made.message) == (status, reason, message)
