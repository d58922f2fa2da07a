"""Failures reach the user, once: a permanent failure (a quota's refusal, a missing
environment) is written to the Session's status with the API server's message and one
Event, logged once, and retried with backoff until it passes. And every example and
session type runs in a namespace that enforces the restricted Pod Security Standard."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client

from kabin.api.environment import SESSION_TYPES
from tests.support import eventually, kubectl_apply, manifest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
GROUP, VERSION = "kabin.dev", "v1alpha1"


async def session(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    custom = client.CustomObjectsApi(api)
    obj: dict[str, Any] = await custom.get_namespaced_custom_object(
        GROUP, VERSION, namespace, "sessions", name
    )
    return obj


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == kind]
    return found[0] if found else {}


async def events_about(api: client.ApiClient, namespace: str, name: str) -> list[Any]:
    found = await client.CoreV1Api(api).list_namespaced_event(namespace)
    return [e for e in found.items if e.involved_object.name == name]


async def test_a_quota_refusal_shows_in_status_within_5_s_and_is_logged_once(
    api: client.ApiClient,
    operator: object,
    namespace: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespaced_resource_quota(
        namespace,
        {"metadata": {"name": "small"}, "spec": {"hard": {"requests.cpu": "1"}}},
    )
    caplog.set_level(logging.WARNING)
    started = time.monotonic()
    spec = {"type": "headless", "image": "busybox", "resources": {"cpu": "2", "memory": "1Gi"}}
    applied = await kubectl_apply(manifest("Session", "big", spec), namespace=namespace)
    assert applied.code == 0, applied.err

    async def refused() -> dict[str, Any]:
        failed = condition(await session(api, namespace, "big"), "Failed")
        assert failed.get("status") == "True", failed
        return failed

    failed = await eventually(refused, timeout=5)
    shown_after = time.monotonic() - started
    assert failed["reason"] == "QuotaExceeded"
    assert "exceeded quota: small" in failed["message"], failed["message"]
    obj = await session(api, namespace, "big")
    assert obj["status"]["phase"] == "Pending"

    await asyncio.sleep(5)  # the operator keeps retrying, with backoff, meanwhile
    warnings = [
        r
        for r in caplog.records
        if r.levelno >= logging.WARNING and f"{namespace}/big" in r.getMessage()
    ]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    quota_events = [
        e for e in await events_about(api, namespace, "big") if e.reason == "QuotaExceeded"
    ]
    assert len(quota_events) == 1 and (quota_events[0].count or 1) == 1, quota_events

    # The quota is raised: the session gets its pod, and the failure goes away.
    await core.patch_namespaced_resource_quota(
        "small", namespace, {"spec": {"hard": {"requests.cpu": "4"}}}
    )

    async def recovered() -> None:
        obj = await session(api, namespace, "big")
        assert not condition(obj, "Failed"), obj["status"]
        assert obj["status"]["phase"] == "Running", obj["status"]

    await eventually(recovered, timeout=60)
    print(f"\nQuotaExceeded in status {shown_after:.2f} s after the create", flush=True)


RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}


async def test_every_example_and_session_type_meets_the_restricted_standard(
    api: client.ApiClient, operator: object, environments: None, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    await core.patch_namespace(namespace, {"metadata": {"labels": RESTRICTED}})
    sessions = [
        doc
        for path in sorted((ROOT / "examples").glob("session-*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]
    # Every type, each with an image-only session too.
    for kind in SESSION_TYPES:
        sessions.append(manifest("Session", f"plain-{kind}", {"type": kind, "image": "busybox"}))
    for doc in sessions:
        if doc["spec"]["type"] != "headless":  # a drive each, so that none waits for another
            name = f"d-{doc['metadata']['name']}"
            made = await kubectl_apply(
                manifest("Drive", name, {"size": "1Gi"}), namespace=namespace
            )
            assert made.code == 0, made.err
            doc["spec"]["drive"] = name
        applied = await kubectl_apply(doc, namespace=namespace)
        assert applied.code == 0, applied.err
    names = [d["metadata"]["name"] for d in sessions]

    async def all_pods_admitted() -> None:
        for name in names:
            obj = await session(api, namespace, name)
            assert not condition(obj, "Failed"), (name, condition(obj, "Failed"))
            pods = await core.list_namespaced_pod(
                namespace, label_selector=f"kabin.dev/session={name}"
            )
            wanted = obj["spec"].get("replicas", 1)
            assert len(pods.items) == wanted, (name, len(pods.items), obj.get("status"))

    await eventually(all_pods_admitted, timeout=90)


async def test_a_drive_whose_pvc_a_quota_refuses_says_so(
    api: client.ApiClient, operator: object, namespace: str
) -> None:
    await client.CoreV1Api(api).create_namespaced_resource_quota(
        namespace, {"metadata": {"name": "disk"}, "spec": {"hard": {"requests.storage": "1Gi"}}}
    )
    applied = await kubectl_apply(manifest("Drive", "big", {"size": "5Gi"}), namespace=namespace)
    assert applied.code == 0, applied.err

    async def refused() -> dict[str, Any]:
        drive = await client.CustomObjectsApi(api).get_namespaced_custom_object(
            GROUP, VERSION, namespace, "drives", "big"
        )
        failed = condition(drive, "Failed")
        assert failed.get("status") == "True", drive.get("status")
        return failed

    failed = await eventually(refused, timeout=10)
    assert failed["reason"] == "QuotaExceeded" and "exceeded quota: disk" in failed["message"]

    async def warned() -> list[Any]:
        found = [
            e for e in await events_about(api, namespace, "big") if e.reason == "QuotaExceeded"
        ]
        assert found, "no QuotaExceeded Event yet"  # Events are posted beside the status
        return found

    await eventually(warned, timeout=10)
    await asyncio.sleep(2)  # the retries that follow post no more
    events = await warned()
    assert len(events) == 1, events
