"""kabin: a Kubernetes operator for interactive and batch compute sessions.

Sessions run in pods with the CPU, memory and GPUs they asked for, keep their
files on a drive that only one running session may hold, and end when idle or
when their time is up. See DESIGN.md for the picture and README.md to start.
"""

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kabin.client import AsyncSession, Session

__all__ = ["AsyncSession", "Session", "__version__"]


def __getattr__(name: str) -> Any:
    """`from kabin import Session, AsyncSession`, imported on first use so that
    `import kabin` (the operator, the CLI) stays light."""
    if name in ("Session", "AsyncSession"):
        from kabin import client

        return getattr(client, name)
    raise AttributeError(f"module 'kabin' has no attribute {name!r}")
