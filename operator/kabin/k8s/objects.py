"""Reads and writes of the objects kabin owns, as plain JSON dicts.

Writes are idempotent: creates tolerate "already exists" (a restart may repeat
them), deletes tolerate "not found", Services and Ingresses are server-side
applied with one field manager, and status is patched only by the caller that
computed a difference.
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.rest import ApiException

from kabin.api.meta import GROUP, VERSION

FIELD_MANAGER = "kabin"
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"


async def _json(response: Any) -> Any:
    return json.loads(await response.read())


async def get_session(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    """The Session as stored, or None once it is gone."""
    try:
        body: dict[str, Any] = await _json(
            await client.CustomObjectsApi(api).get_namespaced_custom_object(
                GROUP, VERSION, namespace, "sessions", name, _preload_content=False
            )
        )
    except ApiException as e:
        if e.status == 404:
            return None
        raise
    return body


async def patch_session_status(
    api: client.ApiClient, namespace: str, name: str, status: dict[str, Any]
) -> None:
    """Merge-patch the Session's status (None values remove fields)."""
    custom: Any = client.CustomObjectsApi(api)  # its stub lacks _content_type; the code has it
    await custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, "sessions", name, {"status": status}, _content_type=MERGE
    )


async def list_owned(
    api: client.ApiClient, kind: str, namespace: str, selector: str
) -> list[dict[str, Any]]:
    """Pods, Services or Ingresses in `namespace` matching the label `selector`."""
    call: Any
    if kind == "Pod":
        call = client.CoreV1Api(api).list_namespaced_pod
    elif kind == "Service":
        call = client.CoreV1Api(api).list_namespaced_service
    else:
        call = client.NetworkingV1Api(api).list_namespaced_ingress
    body = await _json(await call(namespace, label_selector=selector, _preload_content=False))
    items: list[dict[str, Any]] = body.get("items", [])
    return items


async def create_pod(api: client.ApiClient, pod: dict[str, Any]) -> bool:
    """Create a pod; False when it already exists (a repeated create after a restart)."""
    try:
        core: Any = client.CoreV1Api(api)  # takes plain dicts as well as models
        await core.create_namespaced_pod(
            pod["metadata"]["namespace"], pod, field_manager=FIELD_MANAGER
        )
    except ApiException as e:
        if e.status == 409:
            return False
        raise
    return True


async def delete_pod(api: client.ApiClient, namespace: str, name: str) -> bool:
    """Delete a pod; False when it was already gone."""
    try:
        await client.CoreV1Api(api).delete_namespaced_pod(name, namespace)
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    return True


async def apply(api: client.ApiClient, obj: dict[str, Any]) -> None:
    """Server-side apply a Service or an Ingress with kabin's field manager."""
    name, namespace = obj["metadata"]["name"], obj["metadata"]["namespace"]
    args: dict[str, Any] = {"field_manager": FIELD_MANAGER, "force": True, "_content_type": APPLY}
    core: Any = client.CoreV1Api(api)
    networking: Any = client.NetworkingV1Api(api)
    if obj["kind"] == "Service":
        await core.patch_namespaced_service(name, namespace, obj, **args)
    elif obj["kind"] == "Ingress":
        await networking.patch_namespaced_ingress(name, namespace, obj, **args)
    else:
        raise ValueError(f"kabin does not apply {obj['kind']} objects")


async def delete_owned(api: client.ApiClient, kind: str, namespace: str, name: str) -> None:
    """Delete a Service or an Ingress that should no longer exist."""
    try:
        if kind == "Service":
            await client.CoreV1Api(api).delete_namespaced_service(name, namespace)
        else:
            await client.NetworkingV1Api(api).delete_namespaced_ingress(name, namespace)
    except ApiException as e:
        if e.status != 404:
            raise
