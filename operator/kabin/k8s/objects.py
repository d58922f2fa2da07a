"""Reads and writes of the objects kabin owns, as plain JSON dicts.

Writes are idempotent: creates tolerate "already exists" (a restart may repeat
them), deletes tolerate "not found", Services and Ingresses are server-side
applied with one field manager, and status is patched only by the caller that
computed a difference.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.rest import ApiException

from kabin.api.meta import GROUP, VERSION

log = logging.getLogger("kabin.events")

FIELD_MANAGER = "kabin"
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"


async def _body(response: Any) -> bytes:
    """The body of a raw response. Unparsed responses (`_preload_content=False`) do not
    raise on errors by themselves: raise as the parsed ones do."""
    body: bytes = await response.read()
    if response.status >= 400:
        error: Any = ApiException(status=response.status, reason=response.reason)
        error.body = body.decode(errors="replace")
        raise error
    return body


async def _json(response: Any) -> Any:
    """The JSON body of a raw response."""
    return json.loads(await _body(response))


async def _items(call: Any, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """The items a list call returns, as JSON."""
    body = await _json(await call(*args, **kwargs, _preload_content=False))
    items: list[dict[str, Any]] = body.get("items", [])
    return items


async def _created(call: Any, *args: Any, **kwargs: Any) -> bool:
    """Run a create call; False when the object already exists (a repeated create)."""
    try:
        await call(*args, **kwargs)
    except ApiException as e:
        if e.status == 409:
            return False
        raise
    return True


async def _deleted(call: Any, *args: Any) -> bool:
    """Run a delete call; False when the object was already gone."""
    try:
        await call(*args)
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    return True


async def _read(call: Any, *args: Any) -> dict[str, Any] | None:
    """What a read call returns, as JSON, or None for 404 Not Found."""
    try:
        body: dict[str, Any] = await _json(await call(*args, _preload_content=False))
    except ApiException as e:
        if e.status == 404:
            return None
        raise
    return body


async def list_page(
    api: client.ApiClient, path: str, selector: str | None = None, token: str | None = None
) -> dict[str, Any]:
    """One page (500 objects) of a collection (`/api/v1/pods`, all namespaces), as JSON;
    `token`: the previous page's `continue`."""
    query: list[tuple[str, Any]] = [("limit", 500)]
    query += [("labelSelector", selector)] if selector else []
    query += [("continue", token)] if token else []
    response = await api.call_api(
        path, "GET", query_params=query, auth_settings=["BearerToken"], _preload_content=False
    )
    page: dict[str, Any] = await _json(response)
    return page


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
    return await _items(call, namespace, label_selector=selector)


async def _made(call: Any, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
    """Run a create call; the object as created, or None when it already exists (a
    repeated create, which adopts the object)."""
    try:
        made: dict[str, Any] = await _json(await call(*args, **kwargs, _preload_content=False))
    except ApiException as e:
        if e.status == 409:
            return None
        raise
    return made


async def create_pod(api: client.ApiClient, pod: dict[str, Any]) -> dict[str, Any] | None:
    """Create a pod; the pod as created, or None when it already exists (a repeated create
    after a restart, or from a cache that has not seen it yet)."""
    core: Any = client.CoreV1Api(api)  # takes plain dicts as well as models
    return await _made(
        core.create_namespaced_pod, pod["metadata"]["namespace"], pod, field_manager=FIELD_MANAGER
    )


async def create_secret(api: client.ApiClient, secret: dict[str, Any]) -> bool:
    """Create a Secret; False when it already exists (its value is kept)."""
    core: Any = client.CoreV1Api(api)
    return await _created(core.create_namespaced_secret, secret["metadata"]["namespace"], secret)


async def delete_pod(api: client.ApiClient, namespace: str, name: str) -> bool:
    """Delete a pod; False when it was already gone."""
    return await _deleted(client.CoreV1Api(api).delete_namespaced_pod, name, namespace)


def _namespaced_patch(api: client.ApiClient, kind: str) -> Any:
    """The client method that patches one namespaced object of `kind`."""
    methods: dict[str, Any] = {
        "Service": client.CoreV1Api(api).patch_namespaced_service,
        "ServiceAccount": client.CoreV1Api(api).patch_namespaced_service_account,
        "Ingress": client.NetworkingV1Api(api).patch_namespaced_ingress,
        "Role": client.RbacAuthorizationV1Api(api).patch_namespaced_role,
        "RoleBinding": client.RbacAuthorizationV1Api(api).patch_namespaced_role_binding,
        "Lease": client.CoordinationV1Api(api).patch_namespaced_lease,
    }
    if kind not in methods:
        raise ValueError(f"kabin does not apply {kind} objects")
    return methods[kind]


async def apply(api: client.ApiClient, obj: dict[str, Any]) -> None:
    """Server-side apply a session's child (Service, Ingress, the agent's ServiceAccount,
    Role, RoleBinding, Lease) with kabin's field manager."""
    name, namespace = obj["metadata"]["name"], obj["metadata"]["namespace"]
    patch = _namespaced_patch(api, obj["kind"])
    await patch(name, namespace, obj, field_manager=FIELD_MANAGER, force=True, _content_type=APPLY)


async def get_lease(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    """A Lease as stored, or None."""
    return await _read(client.CoordinationV1Api(api).read_namespaced_lease, name, namespace)


async def patch_lease(
    api: client.ApiClient, namespace: str, name: str, body: dict[str, Any]
) -> None:
    """Merge-patch a Lease (the agent's renewals: spec.renewTime and annotations)."""
    coordination: Any = client.CoordinationV1Api(api)
    await coordination.patch_namespaced_lease(name, namespace, body, _content_type=MERGE)


async def create_lease(api: client.ApiClient, lease: dict[str, Any]) -> dict[str, Any] | None:
    """Create a Lease; the Lease as created, or None when one of that name exists."""
    coordination: Any = client.CoordinationV1Api(api)
    return await _made(coordination.create_namespaced_lease, lease["metadata"]["namespace"], lease)


async def replace_lease(api: client.ApiClient, lease: dict[str, Any]) -> dict[str, Any] | None:
    """Replace a Lease over its metadata.resourceVersion; the Lease as written, or None
    when someone wrote it since (409 Conflict)."""
    meta = lease["metadata"]
    coordination: Any = client.CoordinationV1Api(api)
    try:
        written: dict[str, Any] = await _json(
            await coordination.replace_namespaced_lease(
                meta["name"], meta["namespace"], lease, _preload_content=False
            )
        )
    except ApiException as e:
        if e.status == 409:
            return None
        raise
    return written


async def set_pod_condition(
    api: client.ApiClient, namespace: str, pod: str, condition: dict[str, Any]
) -> None:
    """Set one condition of a pod's status (a readiness gate), leaving the others: a
    strategic merge patch, which merges conditions by type."""
    core: Any = client.CoreV1Api(api)
    await core.patch_namespaced_pod_status(
        pod,
        namespace,
        {"status": {"conditions": [condition]}},
        _content_type="application/strategic-merge-patch+json",
    )


async def delete_owned(api: client.ApiClient, kind: str, namespace: str, name: str) -> None:
    """Delete a Service or an Ingress that should no longer exist."""
    call: Any = (
        client.CoreV1Api(api).delete_namespaced_service
        if kind == "Service"
        else client.NetworkingV1Api(api).delete_namespaced_ingress
    )
    await _deleted(call, name, namespace)


async def get_custom(
    api: client.ApiClient, plural: str, namespace: str | None, name: str
) -> dict[str, Any] | None:
    """One of kabin's objects as stored (cluster-scoped when `namespace` is None), or None."""
    custom = client.CustomObjectsApi(api)
    if namespace is None:
        return await _read(custom.get_cluster_custom_object, GROUP, VERSION, plural, name)
    return await _read(custom.get_namespaced_custom_object, GROUP, VERSION, namespace, plural, name)


async def list_custom(api: client.ApiClient, plural: str, namespace: str) -> list[dict[str, Any]]:
    """Every Session or Drive in a namespace."""
    custom = client.CustomObjectsApi(api)
    return await _items(custom.list_namespaced_custom_object, GROUP, VERSION, namespace, plural)


async def find_custom(
    api: client.ApiClient, plural: str, namespace: str, name: str
) -> dict[str, Any] | None:
    """One Session or Drive found by listing (a field selector on its name): for a
    caller that may list them but not get them, the gateway's public views."""
    custom = client.CustomObjectsApi(api)
    found = await _items(
        custom.list_namespaced_custom_object,
        GROUP,
        VERSION,
        namespace,
        plural,
        field_selector=f"metadata.name={name}",
    )
    return found[0] if found else None


async def create_custom(api: client.ApiClient, plural: str, obj: dict[str, Any]) -> bool:
    """Create a Session or Drive; False when it already exists."""
    custom = client.CustomObjectsApi(api)
    return await _created(
        custom.create_namespaced_custom_object,
        GROUP,
        VERSION,
        obj["metadata"]["namespace"],
        plural,
        obj,
    )


async def patch_custom(
    api: client.ApiClient,
    plural: str,
    namespace: str,
    name: str,
    body: dict[str, Any],
    *,
    status: bool = False,
    resource_version: str | None = None,
) -> dict[str, Any]:
    """Merge-patch a Session or Drive (or its status); the object as patched. With
    `resource_version`, the patch applies only if nobody changed the object since: a 409
    Conflict otherwise."""
    if resource_version is not None:
        body = {
            **body,
            "metadata": {**body.get("metadata", {}), "resourceVersion": resource_version},
        }
    custom: Any = client.CustomObjectsApi(api)
    call = (
        custom.patch_namespaced_custom_object_status
        if status
        else custom.patch_namespaced_custom_object
    )
    patched: dict[str, Any] = await _json(
        await call(
            GROUP, VERSION, namespace, plural, name, body,
            _content_type=MERGE, _preload_content=False,
        )
    )  # fmt: skip
    return patched


async def create_pvc(api: client.ApiClient, pvc: dict[str, Any]) -> dict[str, Any] | None:
    """Create a PersistentVolumeClaim; the claim as created, or None when it exists."""
    core: Any = client.CoreV1Api(api)
    namespace = pvc["metadata"]["namespace"]
    return await _made(core.create_namespaced_persistent_volume_claim, namespace, pvc)


async def patch_pvc(api: client.ApiClient, namespace: str, name: str, body: dict[str, Any]) -> None:
    """Merge-patch a PersistentVolumeClaim (its size, its owner)."""
    core: Any = client.CoreV1Api(api)
    await core.patch_namespaced_persistent_volume_claim(name, namespace, body, _content_type=MERGE)


async def delete_pvc(api: client.ApiClient, namespace: str, name: str) -> None:
    """Delete a PersistentVolumeClaim (and so its data); nothing if it is gone."""
    core = client.CoreV1Api(api)
    await _deleted(core.delete_namespaced_persistent_volume_claim, name, namespace)


async def post_event(
    api: client.ApiClient, about: dict[str, Any], type: str, reason: str, message: str
) -> None:
    """Record an Event about a kabin object (`kubectl describe` shows it). Best effort:
    a namespace being deleted refuses new Events, and nothing depends on them."""
    meta = about["metadata"]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    event = {
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": about["apiVersion"],
            "kind": about["kind"],
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
        },
        "type": type,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": FIELD_MANAGER},
        "reportingComponent": FIELD_MANAGER,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    try:
        core: Any = client.CoreV1Api(api)
        await _body(
            await core.create_namespaced_event(meta["namespace"], event, _preload_content=False)
        )
    except ApiException as e:
        log.info(
            "Event %s about %s/%s not recorded: %s",
            reason,
            meta["namespace"],
            meta["name"],
            e.reason,
        )


# Reads and writes of the Python client and the CLI (kabin.client): whole-cluster
# lists, deletes, pod logs and watches.


async def list_custom_everywhere(api: client.ApiClient, plural: str) -> list[dict[str, Any]]:
    """Every object of a kind in every namespace (or every cluster-scoped one)."""
    custom = client.CustomObjectsApi(api)
    return await _items(custom.list_cluster_custom_object, GROUP, VERSION, plural)


async def delete_custom(
    api: client.ApiClient,
    plural: str,
    namespace: str,
    name: str,
    *,
    uid: str | None = None,
    resource_version: str | None = None,
) -> bool:
    """Delete a Session or Drive (only if its uid is still `uid`, and its version still
    `resource_version`, when given: 409 otherwise); False when it was already gone."""
    custom: Any = client.CustomObjectsApi(api)
    if uid is None and resource_version is None:
        return await _deleted(
            custom.delete_namespaced_custom_object, GROUP, VERSION, namespace, plural, name
        )
    given = {"uid": uid, "resourceVersion": resource_version}
    options = {"preconditions": {k: v for k, v in given.items() if v is not None}}
    return await _deleted(
        functools.partial(custom.delete_namespaced_custom_object, body=options),
        GROUP,
        VERSION,
        namespace,
        plural,
        name,
    )


async def watch_custom(
    api: client.ApiClient, plural: str, namespace: str, name: str, *, seconds: float
) -> AsyncIterator[dict[str, Any]]:
    """The object as stored now and after each change, for at most `seconds`.

    Ends early when the object is deleted (after yielding nothing for the delete).
    """
    async for kind, obj in watch_namespace(
        api, plural, namespace, seconds=max(1, int(seconds)), name=name
    ):
        if kind == "DELETED":
            return
        yield obj


async def list_nodes(api: client.ApiClient) -> list[dict[str, Any]]:
    """Every node of the cluster."""
    return await _items(client.CoreV1Api(api).list_node)


async def list_pods_everywhere(api: client.ApiClient, selector: str) -> list[dict[str, Any]]:
    """Pods matching the label `selector` in every namespace."""
    return await _items(client.CoreV1Api(api).list_pod_for_all_namespaces, label_selector=selector)


async def list_namespaces(api: client.ApiClient) -> list[str]:
    """The names of every namespace."""
    return [item["metadata"]["name"] for item in await _items(client.CoreV1Api(api).list_namespace)]


async def read_pod_log(api: client.ApiClient, namespace: str, pod: str, container: str) -> str:
    """A container's log as text, from its start."""
    core: Any = client.CoreV1Api(api)  # its stub says str; unparsed, it is the response
    response = await core.read_namespaced_pod_log(
        pod, namespace, container=container, _preload_content=False
    )
    return (await _body(response)).decode(errors="replace")


async def follow_pod_log(
    api: client.ApiClient, namespace: str, pod: str, container: str
) -> AsyncIterator[str]:
    """A container's log line by line, from its start, following it until it ends."""
    core: Any = client.CoreV1Api(api)  # its stub says str; unparsed, it is the response
    response = await core.read_namespaced_pod_log(
        pod, namespace, container=container, follow=True, _preload_content=False
    )
    if response.status >= 400:
        await _json(response)  # raises with the API server's message
    async with response:
        async for line in response.content:
            yield line.decode(errors="replace").rstrip("\n")


# Reads and writes of the gateway (kabin.gateway): events, token reviews, and a user's
# namespace made on first use.


async def list_events(api: client.ApiClient, namespace: str) -> list[dict[str, Any]]:
    """The core/v1 Events of a namespace."""
    return await _items(client.CoreV1Api(api).list_namespaced_event, namespace)


async def review_token(api: client.ApiClient, token: str) -> dict[str, Any]:
    """The status of a TokenReview of `token`: authenticated, user (username, groups)."""
    body: Any = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token},
    }
    answer = await _json(
        await client.AuthenticationV1Api(api).create_token_review(body, _preload_content=False)
    )
    status: dict[str, Any] = answer.get("status") or {}
    return status


async def get_namespace(api: client.ApiClient, name: str) -> dict[str, Any] | None:
    """A namespace, or None when there is none."""
    return await _read(client.CoreV1Api(api).read_namespace, name)


async def create_namespace(api: client.ApiClient, namespace: dict[str, Any]) -> bool:
    """Create a namespace; False when it exists already."""
    return await _created(client.CoreV1Api(api).create_namespace, namespace)


async def patch_namespace(api: client.ApiClient, name: str, body: dict[str, Any]) -> None:
    """Merge-patch a namespace (its labels)."""
    await client.CoreV1Api(api).patch_namespace(name, body)


async def create_guard(api: client.ApiClient, obj: dict[str, Any]) -> bool:
    """Create one of a provisioned namespace's guards (NetworkPolicy, ResourceQuota,
    LimitRange); False when it exists already (an administrator's change is kept)."""
    namespace = obj["metadata"]["namespace"]
    creators: dict[str, Any] = {
        "NetworkPolicy": client.NetworkingV1Api(api).create_namespaced_network_policy,
        "ResourceQuota": client.CoreV1Api(api).create_namespaced_resource_quota,
        "LimitRange": client.CoreV1Api(api).create_namespaced_limit_range,
    }
    return await _created(creators[obj["kind"]], namespace, obj)


async def create_role_binding(api: client.ApiClient, binding: dict[str, Any]) -> bool:
    """Create a RoleBinding; False when it exists already."""
    rbac = client.RbacAuthorizationV1Api(api)
    return await _created(
        rbac.create_namespaced_role_binding, binding["metadata"]["namespace"], binding
    )


async def server_version(api: client.ApiClient) -> dict[str, Any]:
    """The API server's /version (public): whether it answers at all."""
    version: dict[str, Any] = await _json(
        await client.VersionApi(api).get_code(_preload_content=False)
    )
    return version


async def list_custom_versioned(
    api: client.ApiClient, plural: str, namespace: str
) -> tuple[list[dict[str, Any]], str]:
    """Every object of a kind in a namespace, and the list's resourceVersion to watch
    from."""
    custom = client.CustomObjectsApi(api)
    response = await custom.list_namespaced_custom_object(
        GROUP, VERSION, namespace, plural, _preload_content=False
    )
    body = await _json(response)
    return body.get("items", []), str(body["metadata"]["resourceVersion"])


async def watch_namespace(
    api: client.ApiClient,
    plural: str,
    namespace: str,
    *,
    seconds: int,
    since: str | None = None,
    name: str | None = None,
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(ADDED|MODIFIED|DELETED, object) for each change of a kind in a namespace (of one
    object, with `name`) after `since` (from the current state without it), for at most
    `seconds`. A 410 Gone (too old a version) raises ApiException."""
    custom = client.CustomObjectsApi(api)
    options: dict[str, Any] = {"timeout_seconds": seconds}
    if since is not None:
        options["resource_version"] = since
    if name is not None:
        options["field_selector"] = f"metadata.name={name}"
    stream = watch.Watch().stream(
        custom.list_namespaced_custom_object, GROUP, VERSION, namespace, plural, **options
    )
    async with stream:
        async for event in stream:
            kind = event["type"]
            if kind == "ERROR":
                error: Any = ApiException(status=event["raw_object"].get("code", 500))
                error.body = json.dumps(event["raw_object"])
                raise error
            if kind in ("ADDED", "MODIFIED", "DELETED"):
                yield kind, event["object"]
