"""Connecting to the API server: in-cluster inside a pod, else a kubeconfig. Every
request a client makes is counted (`kabin_api_requests_total`), by verb, resource and
answer: the operator's read and write budget, and its API errors, in its metrics."""

from __future__ import annotations

import asyncio
import copy
import os
from typing import Any
from urllib.parse import parse_qs, urlsplit

from kubernetes_asyncio import client, config
from multidict import CIMultiDict
from prometheus_client import Counter

API_REQUESTS = Counter(
    "kabin_api_requests_total",
    "Requests to the API server from this process, by verb, resource and HTTP status "
    "(0: no answer).",
    ["verb", "resource", "code"],
)


async def connect(
    *, kubeconfig: str | None = None, context: str | None = None, pool_size: int | None = None
) -> client.ApiClient:
    """An API client: the pod's ServiceAccount inside a cluster, else a kubeconfig.

    The kubeconfig is `kubeconfig`, else $KUBECONFIG as it is now (not as it was
    when kubernetes_asyncio was imported), else ~/.kube/config. `pool_size`: the most
    connections it opens at once (kubernetes_asyncio's default: 100).
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
    if pool_size is not None:
        configuration.connection_pool_maxsize = pool_size
    api = client.ApiClient(configuration)
    # aiohttp re-reads the proxy variables and ~/.netrc on every request when it trusts
    # the environment, which kubernetes_asyncio asks for: a tenth of a busy client's or
    # operator's CPU. The proxy is resolved once above instead.
    api.rest_client.pool_manager._trust_env = False
    _count_requests(api)
    return api


def request_kind(method: str, url: str) -> tuple[str, str]:
    """The API verb and resource (with its subresource) of a request, as the API server's
    own metrics name them: ("list", "pods"), ("patch", "sessions/status")."""
    parts = urlsplit(url)
    path = parts.path.strip("/").split("/")
    rest = path[2:] if path[:1] == ["api"] else path[3:]
    if rest[:1] == ["namespaces"] and len(rest) > 2:
        rest = rest[2:]
    resource = "/".join(rest[:1] + rest[2:3])
    named = len(rest) > 1
    verbs = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
    if method != "GET":
        return verbs.get(method, method.lower()), resource
    watching = "true" in parse_qs(parts.query).get("watch", [])
    return ("get" if named else "watch" if watching else "list"), resource


class _Counting:
    """The client's connection pool, counting every request it sends and its answer.
    Wrappers of the pool (the gateway's impersonation) keep the count."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    async def request(self, *, method: str, url: str, **kwargs: Any) -> Any:
        verb, resource = request_kind(method, url)
        code = 0
        try:
            response = await self._pool.request(method=method, url=url, **kwargs)
            code = response.status
            return response
        finally:
            API_REQUESTS.labels(verb, resource, str(code)).inc()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)  # close(), closed, ...


def _count_requests(api: client.ApiClient) -> None:
    """Count every request the client sends, whatever its answer."""
    counting: Any = _Counting(api.rest_client.pool_manager)
    api.rest_client.pool_manager = counting


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


class _Impersonating:
    """Stands in for the aiohttp session of a kubernetes_asyncio REST client: the same
    pool, with a user's impersonation headers on every request."""

    def __init__(self, pool: Any, user: str, groups: tuple[str, ...]) -> None:
        self._pool = pool
        self._user = user
        self._groups = groups

    def request(self, *, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
        sent = CIMultiDict(headers or {})
        sent["Impersonate-User"] = self._user
        for group in self._groups:
            sent.add("Impersonate-Group", group)
        return self._pool.request(headers=sent, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)

    async def close(self) -> None:
        """The pool is the base client's: closing a user's view leaves it open."""


def impersonating(base: client.ApiClient, user: str, groups: tuple[str, ...]) -> client.ApiClient:
    """A client over `base`'s connection pool that acts as `user` in `groups`, as `kubectl
    --as --as-group` does: the API server's RBAC and admission judge the user."""
    view = copy.copy(base)
    view.default_headers = dict(base.default_headers)
    view.rest_client = copy.copy(base.rest_client)
    pool: Any = _Impersonating(base.rest_client.pool_manager, user, groups)
    view.rest_client.pool_manager = pool
    return view


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
