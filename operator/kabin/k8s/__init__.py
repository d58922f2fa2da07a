"""The only code that talks to the API server.

One async client (kubernetes_asyncio) per process, configured in-cluster or
from a kubeconfig; typed reads and writes of kabin's kinds return the models of
`kabin.api`.
"""

from kabin.k8s.client import close_shared, connect, shared
from kabin.k8s.kinds import get_drive, get_environment

__all__ = ["close_shared", "connect", "get_drive", "get_environment", "shared"]
