"""The only code that talks to the API server (with `kabin.client`, kabin's client library,
which other layers use to act as a user). The types other layers name (`ApiClient`,
`ApiException`, the exceptions a request may raise) are re-exported here.

One async client (kubernetes_asyncio) per process, configured in-cluster or
from a kubeconfig; typed reads and writes of kabin's kinds return the models of
`kabin.api`.
"""

from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.rest import ApiException

from kabin.k8s.client import close_shared, connect, shared
from kabin.k8s.errors import API_FAILURES
from kabin.k8s.kinds import get_drive, get_environment

__all__ = [
    "API_FAILURES",
    "ApiClient",
    "ApiException",
    "close_shared",
    "connect",
    "get_drive",
    "get_environment",
    "shared",
]
