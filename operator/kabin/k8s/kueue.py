"""Reads and writes of Kueue's objects (sigs.k8s.io/kueue, API v1beta2), as plain JSON
dicts: whether Kueue is installed, its LocalQueues and ClusterQueues, the places in line
its visibility API reports, and the WorkloadPriorityClasses kabin makes by default.

Kueue is optional: every read here says "not there" (None, False, []) when its API is
not served, rather than raising.
"""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.rest import ApiException

from kabin.k8s.objects import _json

GROUP = "kueue.x-k8s.io"
VERSION = "v1beta2"
API = f"/apis/{GROUP}/{VERSION}"
VISIBILITY = f"/apis/visibility.{GROUP}/{VERSION}"


async def _get(api: client.ApiClient, path: str, **query: Any) -> dict[str, Any] | None:
    """GET a path as JSON; None for 404 (no such object, or the API is not served)."""
    try:
        response = await api.call_api(
            path,
            "GET",
            query_params=list(query.items()),
            auth_settings=["BearerToken"],
            _preload_content=False,
        )
        body: dict[str, Any] = await _json(response)
    except ApiException as e:
        if e.status == 404:
            return None
        raise
    return body


async def installed(api: client.ApiClient) -> bool:
    """Whether Kueue's API (its LocalQueues) is served (and this client may see it)."""
    try:
        found = await _get(api, API)
    except ApiException as e:
        if e.status == 403:
            return False
        raise
    return found is not None and any(
        r.get("name") == "localqueues" for r in found.get("resources") or []
    )


async def local_queue(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    """A LocalQueue, or None (none of that name, or no Kueue)."""
    return await _get(api, f"{API}/namespaces/{namespace}/localqueues/{name}")


async def cluster_queues(api: client.ApiClient) -> list[dict[str, Any]]:
    """Every ClusterQueue (none without Kueue, or for one who may not list them)."""
    try:
        found = await _get(api, f"{API}/clusterqueues")
    except ApiException as e:
        if e.status == 403:
            return []
        raise
    return list((found or {}).get("items") or [])


async def pending(api: client.ApiClient, namespace: str, queue: str) -> list[dict[str, Any]] | None:
    """The workloads waiting in a LocalQueue, each with its 0-based positionInLocalQueue and
    positionInClusterQueue and its pods (ownerReferences), in order; None when the queue
    does not exist."""
    found = await _get(
        api, f"{VISIBILITY}/namespaces/{namespace}/localqueues/{queue}/pendingworkloads", limit=1000
    )
    return None if found is None else list(found.get("items") or [])


async def _create(api: client.ApiClient, path: str, body: dict[str, Any]) -> bool:
    """POST an object; False when it exists already (or this client may not make it: the
    chart makes them, and grants no more)."""
    try:
        await api.call_api(
            path,
            "POST",
            body=body,
            auth_settings=["BearerToken"],
            header_params={"Content-Type": "application/json"},
            _preload_content=False,
        )
    except ApiException as e:
        if e.status in (403, 409):
            return False
        raise
    return True


def _made_by_kabin(kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
    """The head of a Kueue object kabin makes."""
    meta: dict[str, Any] = {"name": name, "labels": {"app.kubernetes.io/managed-by": "kabin"}}
    if namespace is not None:
        meta["namespace"] = namespace
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": meta}


async def create_priority_class(
    api: client.ApiClient, name: str, value: int, description: str
) -> bool:
    """Make a WorkloadPriorityClass; False when one of that name exists (and is kept)."""
    body = _made_by_kabin("WorkloadPriorityClass", name)
    body |= {"value": value, "description": description}
    return await _create(api, f"{API}/workloadpriorityclasses", body)


async def create_local_queue(
    api: client.ApiClient, namespace: str, name: str, cluster_queue: str
) -> bool:
    """Make a LocalQueue that sends to `cluster_queue`; False when it exists."""
    body = _made_by_kabin("LocalQueue", name, namespace) | {"spec": {"clusterQueue": cluster_queue}}
    return await _create(api, f"{API}/namespaces/{namespace}/localqueues", body)
