"""Helpers shared by the tests: polling with deadlines, never fixed sleeps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]], *, timeout: float = 30.0, interval: float = 0.2
) -> T:
    """Await `probe` until it returns without raising AssertionError; return its value.

    The last AssertionError is re-raised at the deadline, so a failing test says
    what it was waiting for.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await probe()
        except AssertionError:
            if time.monotonic() >= deadline:
                raise
        await asyncio.sleep(interval)


async def gone(read: Callable[[], Awaitable[object]], *, within: float = 30.0) -> None:
    """Wait until `read` answers 404 Not Found: the object is really gone."""
    from kubernetes_asyncio.client.rest import ApiException

    async def probe() -> None:
        try:
            obj = await read()
        except ApiException as e:
            if e.status == 404:
                return
            raise
        raise AssertionError(f"still there: {getattr(obj, 'metadata', obj)}")

    await eventually(probe, timeout=within)


async def run(*argv: str, within: float = 30.0) -> str:
    """Run a command (kubectl, say) without blocking the event loop; return stdout."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), within)
    assert proc.returncode == 0, f"{argv} failed ({proc.returncode}): {err.decode()}"
    return out.decode()
