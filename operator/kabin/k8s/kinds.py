"""Typed reads of kabin's own kinds."""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.rest import ApiException

from kabin.api.drive import Drive
from kabin.api.environment import EnvironmentConfig
from kabin.api.meta import GROUP, VERSION


async def _get(api: client.ApiClient, plural: str, name: str, namespace: str | None) -> Any:
    objects = client.CustomObjectsApi(api)
    try:
        if namespace is None:
            return await objects.get_cluster_custom_object(GROUP, VERSION, plural, name)
        return await objects.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
    except ApiException as e:
        if e.status == 404:
            return None
        raise


async def get_environment(api: client.ApiClient, name: str) -> EnvironmentConfig | None:
    """The EnvironmentConfig `name`, or None when there is none."""
    raw = await _get(api, "environmentconfigs", name, None)
    return None if raw is None else EnvironmentConfig.model_validate(raw)


async def get_drive(api: client.ApiClient, namespace: str, name: str) -> Drive | None:
    """The Drive `name` in `namespace`, or None when there is none."""
    raw = await _get(api, "drives", name, namespace)
    return None if raw is None else Drive.model_validate(raw)
