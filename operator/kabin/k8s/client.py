"""Connecting to the API server: in-cluster inside a pod, else a kubeconfig."""

from __future__ import annotations

import asyncio
import os

from kubernetes_asyncio import client, config


async def connect(*, kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """An API client: the pod's ServiceAccount inside a cluster, else a kubeconfig.

    The kubeconfig is `kubeconfig`, else $KUBECONFIG as it is now (not as it was
    when kubernetes_asyncio was imported), else ~/.kube/config.
    """
    configuration = client.Configuration()
    if kubeconfig is None and context is None and "KUBERNETES_SERVICE_HOST" in os.environ:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        await config.load_kube_config(
            config_file=kubeconfig or os.environ.get("KUBECONFIG") or None,
            context=context,
            client_configuration=configuration,
        )
    return client.ApiClient(configuration)


_shared: dict[asyncio.AbstractEventLoop, client.ApiClient] = {}


async def shared() -> client.ApiClient:
    """The process's one API client for the running event loop, made on first use."""
    loop = asyncio.get_running_loop()
    if loop not in _shared:
        _shared[loop] = await connect()
    return _shared[loop]


async def close_shared() -> None:
    """Close the running loop's shared client (at operator shutdown)."""
    api = _shared.pop(asyncio.get_running_loop(), None)
    if api is not None:
        await api.close()
