"""Reads and writes of Kueue's objects (sigs.k8s.io/kueue, API v1beta2), as plain JSON
dicts: whether Kueue is installed, its LocalQueues and ClusterQueues, the places in line
its visibility API reports, and the WorkloadPriorityClasses kabin makes by default.

Kueue is optional: every read here says "not there" (None, False, []) when its API is
not served, rather than raising.
"""

from __future__ import annotations

import functools
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.rest import ApiException

from kabin.api.names import MANAGED_BY, MANAGED_BY_LABEL
from kabin.k8s.objects import _created, _items, _read

GROUP = "kueue.x-k8s.io"
VERSION = "v1beta2"
VISIBILITY = f"/apis/visibility.{GROUP}/{VERSION}"


async def _unless_forbidden(read: Any, *args: Any, forbidden: Any) -> Any:
    """What `read` returns, or `forbidden` when this client may not (the chart grants only
    what kabin uses; without Kueue's RBAC, Kueue is as good as absent)."""
    try:
        return await read(*args)
    except ApiException as e:
        if e.status == 403:
            return forbidden
        raise


async def installed(api: client.ApiClient) -> bool:
    """Whether Kueue's API (its LocalQueues) is served (and this client may see it)."""
    custom = client.CustomObjectsApi(api)
    found = await _unless_forbidden(_read, custom.get_api_resources, GROUP, VERSION, forbidden=None)
    return found is not None and any(
        r.get("name") == "localqueues" for r in found.get("resources") or []
    )


async def local_queue(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    """A LocalQueue, or None (none of that name, or no Kueue)."""
    custom = client.CustomObjectsApi(api)
    return await _read(
        custom.get_namespaced_custom_object, GROUP, VERSION, namespace, "localqueues", name
    )


async def cluster_queues(api: client.ApiClient) -> list[dict[str, Any]]:
    """Every ClusterQueue (none without Kueue, or for one who may not list them)."""
    custom = client.CustomObjectsApi(api)
    try:
        found: list[dict[str, Any]] = await _unless_forbidden(
            _items, custom.list_cluster_custom_object, GROUP, VERSION, "clusterqueues", forbidden=[]
        )
    except ApiException as e:
        if e.status == 404:
            return []
        raise
    return found


async def pending(api: client.ApiClient, namespace: str, queue: str) -> list[dict[str, Any]] | None:
    """The workloads waiting in a LocalQueue, each with its 0-based positionInLocalQueue and
    positionInClusterQueue and its pods (ownerReferences), in order; None when the queue
    does not exist. (A subresource of Kueue's visibility API: no generated call reads it.)"""
    path = f"{VISIBILITY}/namespaces/{namespace}/localqueues/{queue}/pendingworkloads"
    get = functools.partial(
        api.call_api, path, "GET", query_params=[("limit", 1000)], auth_settings=["BearerToken"]
    )
    found = await _read(get)
    return None if found is None else list(found.get("items") or [])


def _made_by_kabin(kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
    """The head of a Kueue object kabin makes."""
    meta: dict[str, Any] = {"name": name, "labels": {MANAGED_BY_LABEL: MANAGED_BY}}
    if namespace is not None:
        meta["namespace"] = namespace
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": meta}


async def create_priority_class(
    api: client.ApiClient, name: str, value: int, description: str
) -> bool:
    """Make a WorkloadPriorityClass; False when one of that name exists (and is kept), or
    this client may not make it (the chart makes them, and grants no more)."""
    body = _made_by_kabin("WorkloadPriorityClass", name)
    body |= {"value": value, "description": description}
    custom = client.CustomObjectsApi(api)
    made: bool = await _unless_forbidden(
        _created,
        custom.create_cluster_custom_object, GROUP, VERSION, "workloadpriorityclasses", body,
        forbidden=False,
    )  # fmt: skip
    return made


async def create_local_queue(
    api: client.ApiClient, namespace: str, name: str, cluster_queue: str
) -> bool:
    """Make a LocalQueue that sends to `cluster_queue`; False when it exists (or this
    client may not make it)."""
    body = _made_by_kabin("LocalQueue", name, namespace) | {"spec": {"clusterQueue": cluster_queue}}
    custom = client.CustomObjectsApi(api)
    made: bool = await _unless_forbidden(
        _created,
        custom.create_namespaced_custom_object, GROUP, VERSION, namespace, "localqueues", body,
        forbidden=False,
    )  # fmt: skip
    return made
