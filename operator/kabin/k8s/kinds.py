"""Typed reads of kabin's own kinds."""

from __future__ import annotations

from kubernetes_asyncio import client

from kabin.api.drive import Drive
from kabin.api.environment import EnvironmentConfig
from kabin.k8s.objects import get_custom


async def get_environment(api: client.ApiClient, name: str) -> EnvironmentConfig | None:
    """The EnvironmentConfig `name`, or None when there is none."""
    raw = await get_custom(api, "environmentconfigs", None, name)
    return None if raw is None else EnvironmentConfig.model_validate(raw)


async def get_drive(api: client.ApiClient, namespace: str, name: str) -> Drive | None:
    """The Drive `name` in `namespace`, or None when there is none."""
    raw = await get_custom(api, "drives", namespace, name)
    return None if raw is None else Drive.model_validate(raw)
