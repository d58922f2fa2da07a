"""`Session`: the blocking twin of `AsyncSession`, generated from it method by method.

Each `Session` method runs the coroutine of the `AsyncSession` method of the same
name on one event loop that lives in a background daemon thread (kr8s's design),
and waits for its result. Unlike `asyncio.run` per call, this works where a loop
already runs in the calling thread (Jupyter, IPython, async tests), and the
connection pool survives between calls. Async iterators become iterators.
Docstrings are the async ones with `await` and `async` dropped.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import re
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar

from kabin.client.session import AsyncSession, Options

P = ParamSpec("P")
R = TypeVar("R")
Y = TypeVar("Y")

_loop: asyncio.AbstractEventLoop | None = None
_lock = threading.Lock()


def background_loop() -> asyncio.AbstractEventLoop:
    """The process's one loop for blocking clients, running in a daemon thread."""
    global _loop
    with _lock:
        if _loop is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="kabin-client", daemon=True).start()
            _loop = loop
        return _loop


def run(coroutine: Coroutine[Any, Any, R]) -> R:
    """Run `coroutine` on the background loop and wait for its result (Ctrl-C cancels it)."""
    future = asyncio.run_coroutine_threadsafe(coroutine, background_loop())
    try:
        return future.result()
    except BaseException:
        future.cancel()
        raise


def _blocking_doc(doc: str | None) -> str | None:
    if doc is None:
        return None
    doc = re.sub(r"\basync (with|for)\b", r"\1", doc)
    return doc.replace("await ", "").replace("AsyncSession", "Session")


def _twin_of(call: Callable[..., Any], method: Callable[..., Any]) -> None:
    """Name, document and sign `call` as `method`'s blocking twin (for help() and IDEs)."""
    functools.update_wrapper(call, method)
    delattr(call, "__wrapped__")  # or inspect would show the coroutine's signature
    call.__qualname__ = f"Session.{method.__name__}"
    call.__doc__ = _blocking_doc(method.__doc__)
    signature = inspect.signature(method)
    returns = str(signature.return_annotation).replace("AsyncIterator", "Iterator")
    call.__signature__ = signature.replace(return_annotation=returns)  # type: ignore[attr-defined]


def blocking(
    method: Callable[Concatenate[AsyncSession, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[Session, P], R]:
    """The blocking twin of an `AsyncSession` coroutine method."""

    def call(self: Session, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return run(method(self.twin, *args, **kwargs))

    _twin_of(call, method)
    return call


def blocking_iterator(
    method: Callable[Concatenate[AsyncSession, P], AsyncIterator[Y]],
) -> Callable[Concatenate[Session, P], Iterator[Y]]:
    """The blocking twin of an `AsyncSession` async-iterator method: an iterator."""

    def call(self: Session, /, *args: P.args, **kwargs: P.kwargs) -> Iterator[Y]:
        items = method(self.twin, *args, **kwargs)

        async def step() -> tuple[bool, Y | None]:
            try:
                return True, await anext(items)
            except StopAsyncIteration:
                return False, None

        async def close() -> None:
            closing = getattr(items, "aclose", None)
            if closing is not None:
                await closing()

        try:
            while True:
                more, item = run(step())
                if not more:
                    return
                yield item  # type: ignore[misc]  # Y when `more`
        finally:
            run(close())

    _twin_of(call, method)
    return call


class Session(Options):
    """Sessions on kabin, blocking: Skaha's `Session`, on Kubernetes.

    The arguments are those of `AsyncSession`; every method is its twin's, run to
    completion on a background event loop (so it works inside Jupyter too).

    Examples:
        >>> from kabin import Session
        >>> session = Session(timeout=30, concurrency=32)
        >>> session.create(name="test", image="busybox", cmd="env", replicas=2)
        ['test-1', 'test-2']
    """

    @functools.cached_property
    def twin(self) -> AsyncSession:
        """The `AsyncSession` doing the work, built with the same arguments."""
        return AsyncSession(**self.options())

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # Skaha's methods.
    fetch = blocking(AsyncSession.fetch)
    listed = blocking(AsyncSession.listed)
    stats = blocking(AsyncSession.stats)
    info = blocking(AsyncSession.info)
    logs = blocking(AsyncSession.logs)
    create = blocking(AsyncSession.create)
    destroy = blocking(AsyncSession.destroy)
    destroy_with = blocking(AsyncSession.destroy_with)
    # kabin's additions.
    get = blocking(AsyncSession.get)
    renew = blocking(AsyncSession.renew)
    suspend = blocking(AsyncSession.suspend)
    resume = blocking(AsyncSession.resume)
    schedule = blocking(AsyncSession.schedule)
    wait = blocking(AsyncSession.wait)
    follow = blocking_iterator(AsyncSession.follow)
    drives = blocking(AsyncSession.drives)
    create_drive = blocking(AsyncSession.create_drive)
    environments = blocking(AsyncSession.environments)
    # The objects as stored.
    images = blocking(AsyncSession.images)
    session_objects = blocking(AsyncSession.session_objects)
    pod_objects = blocking(AsyncSession.pod_objects)
    environment_objects = blocking(AsyncSession.environment_objects)
    drive_objects = blocking(AsyncSession.drive_objects)
    event_objects = blocking(AsyncSession.event_objects)
    node_objects = blocking(AsyncSession.node_objects)
    create_object = blocking(AsyncSession.create_object)
    delete_drive = blocking(AsyncSession.delete_drive)
    ping = blocking(AsyncSession.ping)
    close = blocking(AsyncSession.close)
