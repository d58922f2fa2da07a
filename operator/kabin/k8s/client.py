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
    _proxy_from_environment(configuration)
    api = client.ApiClient(configuration)
    # aiohttp re-reads the proxy variables and ~/.netrc on every request when it trusts
    # the environment, which kubernetes_asyncio asks for: a tenth of a busy client's or
    # operator's CPU. The proxy is resolved once above instead.
    api.rest_client.pool_manager._trust_env = False
    return api


def _proxy_from_environment(configuration: client.Configuration) -> None:
    """Use $HTTPS_PROXY (or $HTTP_PROXY) for the API server unless $NO_PROXY exempts it,
    as kubectl does."""
    import urllib.request
    from urllib.parse import urlsplit

    if configuration.proxy:
        return
    url = urlsplit(str(configuration.host))
    if not url.hostname or urllib.request.proxy_bypass(url.hostname):
        return
    proxy = urllib.request.getproxies().get(url.scheme)
    if proxy:
        configuration.proxy = proxy


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
