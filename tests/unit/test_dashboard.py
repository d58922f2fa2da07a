"""The dashboard's pure decisions: a session's row (reason, resources, access buttons
only for answering interfaces), pages, form choices, which field a refusal names,
drives; and the event-stream framing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes_asyncio.client.rest import ApiException

from kabin.client.errors import AlreadyExists, Invalid, KabinError, from_api
from kabin.gateway import users
from kabin.gateway.dashboard import views
from kabin.gateway.dashboard.live import event
from kabin.gateway.identity import Identity


def session(
    *,
    phase: str = "Running",
    conditions: list[dict[str, str]] | None = None,
    endpoints: list[dict[str, Any]] | None = None,
    **status: Any,
) -> dict[str, Any]:
    return {
        "metadata": {"name": "lab", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"type": "notebook", "environment": "notebook", "user": "alice"},
        "status": {
            "phase": phase,
            "conditions": conditions or [],
            "endpoints": endpoints or [],
            **status,
        },
    }


DRIVE_HELD = {
    "type": "DriveReady",
    "status": "False",
    "message": 'Drive "d" is held by session "x"',
}
UNSCHEDULED = {
    "type": "Scheduled",
    "status": "False",
    "message": "0/6 nodes: Insufficient nvidia.com/gpu",
}
NOT_READY = {
    "type": "Ready",
    "status": "False",
    "message": "1/1 replicas ready; waiting for jupyterlab",
}
READY = {"type": "Ready", "status": "True", "message": "1/1 replicas ready"}


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        pytest.param(session(phase="Pending", conditions=[DRIVE_HELD, NOT_READY]), 'held by session "x"', id="drive"),
        pytest.param(session(phase="Pending", conditions=[UNSCHEDULED, NOT_READY]), "Insufficient nvidia.com/gpu", id="scheduler"),
        pytest.param(session(conditions=[NOT_READY]), "waiting for jupyterlab", id="interface"),
        pytest.param(session(conditions=[READY]), "", id="ready"),
        pytest.param(session(phase="Expired", message="idle for 2 hours"), "idle for 2 hours", id="ended"),
        pytest.param(session(phase="Pending"), "waiting for the operator", id="new"),
    ],
)  # fmt: skip
def test_reason(obj: dict[str, Any], reason: str) -> None:
    assert reason in views.reason_of(obj)
    if not reason:
        assert views.reason_of(obj) == ""


@pytest.mark.parametrize(
    ("endpoints", "access"),
    [
        pytest.param([{"name": "jupyterlab", "url": "https://h/l", "ready": False}], [], id="closed-gate"),
        pytest.param(
            [{"name": "jupyterlab", "url": "https://h/l", "ready": True}],
            [views.Access("JupyterLab", "https://h/l")],
            id="open-gate",
        ),
        pytest.param(
            [
                {"name": "vscode", "url": "https://h/v", "ready": True},
                {"name": "ssh", "url": "ssh -p 30022 alice@h", "ready": True},
                {"name": "desktop", "url": "https://h/d", "ready": False},
            ],
            [views.Access("VS Code", "https://h/v"), views.Access("SSH", "ssh -p 30022 alice@h", copy=True)],
            id="several",
        ),
    ],
)  # fmt: skip
def test_access_buttons_only_for_answering_interfaces(
    endpoints: list[dict[str, Any]], access: list[views.Access]
) -> None:
    assert views.row(session(endpoints=endpoints)).access == access


def test_no_access_once_ended() -> None:
    ended = session(phase="Expired", endpoints=[{"name": "ssh", "url": "x", "ready": True}])
    assert views.row(ended).access == [] and not views.row(ended).active


def test_row_facts() -> None:
    obj = session(
        requested={"cpu": "2", "memory": "4Gi", "gpu": 1},
        drive="alice-home",
        expiryTime="2026-01-01T02:00:00Z",
        timeoutMode="idle",
        lastActivityTime="2026-01-01T00:30:00Z",
        lastActivitySource="jupyter",
    )
    obj["metadata"]["annotations"] = {"kabin.dev/name": "my lab"}
    shown = views.row(obj)
    assert (shown.id, shown.name, shown.resources) == ("lab", "my lab", "2 CPU · 4 GiB · 1 GPU")
    assert (shown.drive, shown.timeout_mode, shown.activity_source) == (
        "alice-home",
        "idle",
        "jupyter",
    )
    assert (
        views.resources_of(session(requested={"cpu": "500m", "memory": "1536Mi"}))
        == "0.5 CPU · 1.5 GiB"
    )


def test_pages_of_a_thousand_sessions() -> None:
    objs = []
    for i in range(1000):
        obj = session()
        obj["metadata"] = {
            "name": f"s{i:04d}",
            "creationTimestamp": f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z",
        }
        objs.append(obj)
    first, pages = views.page(objs, 1)
    assert pages == 20 and len(first) == 50 and first[0].id == "s0999"  # newest first
    last, _ = views.page(objs, 99)  # past the end: the last page
    assert last[-1].id == "s0000"


ENVIRONMENTS = [
    {
        "metadata": {"name": "pytorch"},
        "spec": {
            "displayName": "PyTorch",
            "image": "x",
            "sessionTypes": ["notebook", "headless"],
            "resources": {"default": {"cpu": "8"}, "max": {"cpu": "32", "gpu": 8}},
            "timeouts": {"default": 3600, "max": 43200},
        },
    },
    {"metadata": {"name": "shell"}, "spec": {"image": "y", "sessionTypes": ["ssh"], "timeouts": {"mode": "absolute"}}},
]  # fmt: skip


def test_choices_are_labelled_with_display_names() -> None:
    found = views.choices(ENVIRONMENTS)
    assert [(c.value, c.label, c.timeout_mode) for c in found] == [
        ("pytorch/notebook", "PyTorch: notebook", "idle"),
        ("pytorch/headless", "PyTorch: headless", "absolute"),
        ("shell/ssh", "shell", "absolute"),
    ]
    assert found[0].most == {"cpu": "32", "gpu": 8} and found[0].timeout_max == 43200
    assert "Idle" in views.timeout_line(found[0]) and "Absolute" in views.timeout_line(found[2])


def _refused(message: str, **status: Any) -> KabinError:
    error: Any = ApiException(status=422, reason="Unprocessable Entity")
    error.body = json.dumps({"kind": "Status", "code": 422, "message": message, **status})
    return from_api(error)


@pytest.mark.parametrize(
    ("error", "field"),
    [
        (
            Invalid(
                'spec.resources.cpu: 64 exceeds the maximum of 32 set by EnvironmentConfig "x"'
            ),
            "cpu",
        ),
        (Invalid("cores: 'x' is not a number"), "cpu"),
        (Invalid("name: 'Bad' must be lowercase letters"), "name"),
        (AlreadyExists("a session named 'lab' already exists", field="name"), "name"),
        (
            _refused(
                'admission webhook "session-fits.kabin.dev" denied the request: '
                'spec.drive: Drive "nope" does not exist'
            ),
            "drive",
        ),
        (
            _refused(
                'admission webhook "session-fits.kabin.dev" denied the request: '
                "spec.timeout: 999999 exceeds the maximum of 86400"
            ),
            "timeout",
        ),
        (
            _refused(
                'Session.kabin.dev "x" is invalid: spec.resources.memory: Invalid value',
                details={"causes": [{"field": "spec.resources.memory"}]},
            ),
            "memory",
        ),
        (Invalid("something else entirely"), "form"),
        (KabinError("the cpu is on fire"), "form"),  # words in the message do not count
    ],
)
def test_refusals_carry_the_field_they_name(error: KabinError, field: str) -> None:
    assert views.form_field(error.field) == field


def test_drives_the_user_may_pick_by_admissions_rule() -> None:
    drives = [
        {"metadata": {"name": "b"}, "spec": {"size": "1Gi", "access": "shared", "owner": "bob"}},
        {"metadata": {"name": "mine"}, "spec": {"size": "1Gi", "access": "private", "owner": "alice"},
         "status": {"holder": {"session": "lab"}, "waiting": [{"session": "two"}]}},
        {"metadata": {"name": "bobs"}, "spec": {"size": "1Gi", "access": "private", "owner": "bob"}},
    ]  # fmt: skip
    alice, admins = Identity("alice", ("kabin:users",)), ("kabin:admins",)
    usable = views.drive_rows([d for d in drives if users.may_use(d, alice, admins)])
    assert [d.name for d in usable] == ["b", "mine"]
    assert usable[1].in_use and usable[1].holder == "lab" and usable[1].waiting == ["two"]
    admin = Identity("root", ("kabin:admins",))
    assert [d["metadata"]["name"] for d in drives if users.may_use(d, admin, admins)] == [
        "b", "mine", "bobs",
    ]  # fmt: skip


def test_server_sent_event_framing() -> None:
    assert event("sessions", "<a>\n<b>") == b"event: sessions\ndata: <a>\ndata: <b>\n\n"
    assert event("sessions", "") == b"event: sessions\ndata: \n\n"
