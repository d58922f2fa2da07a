"""The sessions page, live: one server-sent-events stream per open page, fed by a
watch of the user's Sessions (as the user), so that a change shows within moments and
nothing polls.

The stream sends the page's session list, re-rendered, as an `sessions` event after
each burst of changes (a burst is gathered for 50 ms), and a comment every 15 s so
that proxies keep the connection open. htmx's SSE extension swaps it in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiohttp import web
from kubernetes_asyncio.client.rest import ApiException

from kabin.gateway.dashboard import pages
from kabin.k8s import objects

log = logging.getLogger("kabin.gateway")
KEEPALIVE = 15.0
GATHER = 0.05
WATCH_SECONDS = 290


def event(name: str, html: str) -> bytes:
    """One server-sent event; each line of the data gets its own `data:` field."""
    data = "".join(f"data: {line}\n" for line in html.splitlines() or [""])
    return f"event: {name}\n{data}\n".encode()


async def stream(request: web.Request) -> web.StreamResponse:
    visitor, sessions, kube = pages._user(request)
    board = request.app[pages.DASHBOARD]
    number = pages._page_number(request)
    user, namespace = visitor.identity.user, sessions.namespace
    api = kube.as_user(visitor.identity)
    known: dict[str, dict[str, Any]] = {}
    changed = asyncio.Event()

    def keep(obj: dict[str, Any]) -> None:
        if obj["spec"].get("user") == user:
            known[obj["metadata"]["name"]] = obj

    async def follow() -> None:
        """Keep `known` equal to the user's Sessions: list, then watch from there; list
        again when the watch ends or its version is too old."""
        while True:
            try:
                items, version = await objects.list_custom_versioned(api, "sessions", namespace)
                known.clear()
                for obj in items:
                    keep(obj)
                changed.set()
                async for kind, obj in objects.watch_namespace(
                    api, "sessions", namespace, since=version, seconds=WATCH_SECONDS
                ):
                    if kind == "DELETED":
                        known.pop(obj["metadata"]["name"], None)
                    else:
                        keep(obj)
                    changed.set()
            except asyncio.CancelledError:
                raise
            except ApiException as e:
                if e.status != 410:
                    log.warning("live sessions of %s: %s", user, e.reason)
                    await asyncio.sleep(1)
            except Exception as e:  # a broken connection: start again in a moment
                log.warning("live sessions of %s: %s", user, e)
                await asyncio.sleep(1)

    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    follower = asyncio.create_task(follow())
    sent = None
    try:
        while True:
            try:
                async with asyncio.timeout(KEEPALIVE):
                    await changed.wait()
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            await asyncio.sleep(GATHER)
            changed.clear()
            html = pages.sessions_fragment(board, visitor, list(known.values()), number)
            if html != sent:
                await response.write(event("sessions", html))
                sent = html
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
    return response
