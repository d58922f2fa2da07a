"""The Session reconciler's plan: the writes that make a session's children match its
spec, decided from what was read, without reading or writing anything."""

from __future__ import annotations

from typing import Any

from kabin.api.session import SessionSpec, SessionStatus
from kabin.handlers.sessions import Plan, _Children, _Seen, _Session, plan
from kabin.logic import resolve, status
from kabin.settings import OperatorSettings


def session(view: status.DriveView | None = None, **spec: Any) -> _Session:
    parsed = SessionSpec.model_validate({"type": "headless", "image": "busybox", **spec})
    raw = {"metadata": {"name": "run", "namespace": "ns", "uid": "u1"}, "spec": spec}
    return _Session(
        api=None,
        cache=None,  # type: ignore[arg-type]
        raw=raw,
        spec=parsed,
        owner=resolve.Owner("run", "ns", "u1", "alice"),
        resolved=resolve.resolve(parsed, None),
        settings=OperatorSettings(),
        drive=view,
    )


def pod(replica: int, *, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": f"run-{replica}", "labels": {"kabin.dev/replica": str(replica)}}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-05T00:00:00Z"
    return {"metadata": meta, "status": {"phase": "Running"}}


def seen(phase: str, pods: list[dict[str, Any]]) -> _Seen:
    return _Seen(
        _Children(None, pods, [], []),
        status.Outcome(SessionStatus.model_validate({"phase": phase})),
    )


def test_missing_replicas_are_made_and_extra_ones_removed_from_the_highest() -> None:
    todo = plan(
        session(replicas=3), seen("Running", [pod(1), pod(2), pod(4), pod(5, deleting=True)])
    )
    assert sorted(todo.create) == [3]
    assert todo.create[3]["metadata"]["name"] == "run-3"
    assert list(todo.remove) == [4], "one being deleted already is left alone"
    assert todo.existing == [1, 2, 4, 5]
    assert todo.access == [] and not todo.token, "a headless run has no agent"


def test_a_session_at_its_size_plans_nothing() -> None:
    todo = plan(session(replicas=2), seen("Running", [pod(1), pod(2)]))
    assert todo == Plan(existing=[1, 2])


def test_an_expired_session_frees_its_pods_and_a_finished_run_keeps_them() -> None:
    assert [p["metadata"]["name"] for p in plan(session(), seen("Expired", [pod(1)])).free] == [
        "run-1"
    ]
    assert plan(session(), seen("Succeeded", [pod(1)])) == Plan()
    assert plan(session(), seen("Failed", [pod(1)])) == Plan(), "its logs stay"


def test_pods_wait_for_the_drive_to_be_granted() -> None:
    waiting = status.DriveView("data", False)
    assert plan(session(waiting, drive="data"), seen("Pending", [])) == Plan()
    granted = status.DriveView("data", True)
    todo = plan(session(granted, drive="data"), seen("Pending", []))
    volumes = todo.create[1]["spec"]["volumes"]
    assert {"name": "drive", "persistentVolumeClaim": {"claimName": "drive-data"}} in volumes
