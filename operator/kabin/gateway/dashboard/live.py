"""The sessions page, live: one server-sent-events stream per open page, fed by a
watch of the user's Sessions (as the user), so that a change shows within moments and
nothing polls.

The stream sends the page's session list, re-rendered, as an `sessions` event after
each burst of changes (a burst is gathered for 50 ms), and a comment every 15 s so
that proxies keep the connection open. htmx's SSE extension swaps it in.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aiohttp import web

from kabin.gateway.dashboard import pages
from kabin.gateway.identity import TooMany, Unauthenticated
from kabin.k8s import ApiException, objects

log = logging.getLogger("kabin.gateway")
KEEPALIVE = 15.0
GATHER = 0.05
WATCH_SECONDS = 290


class Streams:
    """The live streams held open, by user and in all: one user's tabs (or a script's
    flood) cannot take the connections everyone else's pages need."""

    RETRY_AFTER = 30

    def __init__(self, per_user: int, total: int) -> None:
        self.per_user, self.total = per_user, total
        self._by_user: collections.Counter[str] = collections.Counter()

    @contextlib.contextmanager
    def hold(self, user: str) -> Iterator[None]:
        """Count one stream of `user` while it is open; TooMany past a limit."""
        if self._by_user[user] >= self.per_user:
            raise TooMany(
                f"{self.per_user} live pages are open for you already; close one",
                self.RETRY_AFTER,
            )
        if sum(self._by_user.values()) >= self.total:
            raise TooMany("the gateway holds as many live pages as it may", self.RETRY_AFTER)
        self._by_user[user] += 1
        try:
            yield
        finally:
            self._by_user[user] -= 1
            if self._by_user[user] <= 0:
                del self._by_user[user]


STREAMS = web.AppKey("streams", Streams)


def event(name: str, html: str) -> bytes:
    """One server-sent event; each line of the data gets its own `data:` field."""
    data = "".join(f"data: {line}\n" for line in html.splitlines() or [""])
    return f"event: {name}\n{data}\n".encode()


class _Follower:
    """Keeps a user's Sessions (in their namespace, created by them) up to date from a
    watch, as the user: list, then watch from there; list again when the watch ends or
    its version is too old. `changed` is set after every change."""

    def __init__(
        self,
        api: Any,
        namespace: str,
        user: str,
        signed_in: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.api, self.namespace, self.user = api, namespace, user
        self.signed_in = signed_in  # checks the token again before each watch
        self.known: dict[str, dict[str, Any]] = {}
        self.changed = asyncio.Event()
        self.ended = False

    def _keep(self, obj: dict[str, Any]) -> None:
        if obj["spec"].get("user") == self.user:
            self.known[obj["metadata"]["name"]] = obj

    async def _once(self) -> None:
        items, version = await objects.list_custom_versioned(self.api, "sessions", self.namespace)
        self.known.clear()
        for obj in items:
            self._keep(obj)
        self.changed.set()
        async for kind, obj in objects.watch_namespace(
            self.api, "sessions", self.namespace, since=version, seconds=WATCH_SECONDS
        ):
            if kind == "DELETED":
                self.known.pop(obj["metadata"]["name"], None)
            else:
                self._keep(obj)
            self.changed.set()

    async def run(self) -> None:
        while True:
            try:
                if self.signed_in is not None:
                    await self.signed_in()  # a token revoked or expired ends the stream
                await self._once()
            except Unauthenticated:
                self.ended = True
                self.changed.set()
                return
            except asyncio.CancelledError:
                raise
            except ApiException as e:
                if e.status != 410:  # 410: the version is too old; list again at once
                    log.warning("live sessions of %s: %s", self.user, e.reason)
                    await asyncio.sleep(1)
            except Exception as e:  # a broken connection: start again in a moment
                log.warning("live sessions of %s: %s", self.user, e)
                await asyncio.sleep(1)


async def stream(request: web.Request) -> web.StreamResponse:
    """The event stream of the sessions page; 429 with Retry-After over the limits."""
    visitor = request[pages.VISITOR]
    try:
        with request.app[STREAMS].hold(visitor.identity.user):
            return await _stream(request)
    except TooMany as e:
        raise e.response() from None


async def _stream(request: web.Request) -> web.StreamResponse:
    visitor, sessions, kube = pages._user(request)
    board = request.app[pages.DASHBOARD]
    number = pages._page_number(request)
    token = request.get(pages.TOKEN)
    follower = _Follower(
        kube.as_user(visitor.identity, watching=True),
        sessions.namespace,
        visitor.identity.user,
        signed_in=(lambda: board.authenticate(token, request.remote or ""))
        if token and not kube.settings.trust_proxy_headers
        else None,
    )
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    task = asyncio.create_task(follower.run())
    sent = None
    try:
        while True:
            try:
                async with asyncio.timeout(KEEPALIVE):
                    await follower.changed.wait()
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            await asyncio.sleep(GATHER)
            follower.changed.clear()
            if follower.ended:
                await response.write(b"event: signed-out\ndata: \n\n")
                break
            html = pages.sessions_fragment(board, visitor, list(follower.known.values()), number)
            if html != sent:
                await response.write(event("sessions", html))
                sent = html
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return response
