"""Between a client and the API server: a local TCP relay that adds round-trip time, as
a cluster across a network would (for the chaos tests, 200 ms, and the client
benchmark); and an http proxy that drops chosen watch events (for the cache tests).
Connections go to loopback only."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import yaml


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Forward bytes, each chunk `delay` seconds after it arrived, in order."""
    chunks: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def send() -> None:
        while True:
            due, chunk = await chunks.get()
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            if not chunk:
                writer.close()
                return
            writer.write(chunk)
            await writer.drain()

    sender = asyncio.create_task(send())
    while chunk := await reader.read(65536):
        chunks.put_nowait((time.monotonic() + delay, chunk))
    chunks.put_nowait((time.monotonic() + delay, b""))
    await sender


async def relay(server: str, rtt_ms: float) -> tuple[str, asyncio.Server]:
    """A local TCP relay to `server` adding `rtt_ms` of round trip; its https URL."""
    upstream = urlsplit(server)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(upstream.hostname, upstream.port)
        delay = rtt_ms / 2000
        try:
            await asyncio.gather(
                _pipe(reader, up_writer, delay),
                _pipe(up_reader, writer, delay),
                return_exceptions=True,
            )
        except asyncio.CancelledError:  # the benchmark is over: drop the connection quietly
            up_writer.close()
            writer.close()

    listener = await asyncio.start_server(handle, upstream.hostname, 0)
    port = listener.sockets[0].getsockname()[1]
    return f"https://{upstream.hostname}:{port}", listener


def kubeconfig_through(url: str) -> str:
    """A copy of $KUBECONFIG whose clusters are reached at `url`."""
    with open(os.environ["KUBECONFIG"]) as f:
        config = yaml.safe_load(f)
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = url
    with tempfile.NamedTemporaryFile("w", suffix=".kubeconfig", delete=False) as copy:
        yaml.safe_dump(config, copy)
    return copy.name


class Outage:
    """Turns a `filtering_proxy` off and on, as an API server restart would look to its
    clients: while it is down, open watches break and every request gets 503; when it
    comes back, each watch that resumes from a resourceVersion is told 410 Expired once
    per collection (its history was compacted meanwhile), so the client must list again."""

    def __init__(self) -> None:
        self.down = False
        self.expire = False
        self.expired: set[str] = set()
        self.watches: set[asyncio.Task[Any]] = set()

    def cut(self) -> None:
        self.down = True
        for task in list(self.watches):
            task.cancel()

    def restore(self) -> None:
        self.down, self.expire = False, True
        self.expired.clear()


EXPIRED = {
    "type": "ERROR",
    "object": {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": "too old resource version",
        "reason": "Expired",
        "code": 410,
    },
}


async def filtering_proxy(
    kubeconfig: str, drop: Callable[[dict[str, Any]], bool], outage: Outage | None = None
) -> tuple[str, Callable[[], Awaitable[None]]]:
    """A plain-http proxy to the API server of `kubeconfig`, authenticated as its user,
    that forwards every request and answer except the watch events `drop` picks: a
    client behind it misses exactly those events, as one whose watch lost them would;
    and that `outage` turns off and on. Its URL, and a function that stops it."""
    from aiohttp import ClientSession, ClientTimeout, TCPConnector, web
    from kubernetes_asyncio import client, config

    conf = client.Configuration()
    await config.load_kube_config(config_file=kubeconfig, client_configuration=conf)
    tls = ssl.create_default_context(cafile=conf.ssl_ca_cert)
    tls.load_cert_chain(conf.cert_file, conf.key_file)
    upstream = ClientSession(
        base_url=conf.host,
        connector=TCPConnector(ssl=tls),
        timeout=ClientTimeout(total=None),
        auto_decompress=False,
    )
    hop = {"host", "content-length", "transfer-encoding", "connection"}

    async def forward(request: web.Request) -> web.StreamResponse:
        watching = request.query.get("watch") in ("true", "1")
        if outage is not None:
            if outage.down:
                return web.Response(status=503, text="the API server is down")
            resuming = watching and outage.expire and request.query.get("resourceVersion")
            if resuming and request.path not in outage.expired:
                outage.expired.add(request.path)
                return web.Response(text=json.dumps(EXPIRED) + "\n")
            if watching:
                task = asyncio.current_task()
                assert task is not None
                outage.watches.add(task)
                task.add_done_callback(outage.watches.discard)
        body = await request.read()
        skip = hop if body else {*hop, "content-type"}
        headers = {k: v for k, v in request.headers.items() if k.lower() not in skip}
        async with upstream.request(
            request.method, request.rel_url, headers=headers, data=body or None
        ) as answer:
            response = web.StreamResponse(status=answer.status)
            for key, value in answer.headers.items():
                if key.lower() not in hop:
                    response.headers[key] = value
            await response.prepare(request)
            if watching:
                while line := await answer.content.readline():
                    if not drop(json.loads(line)):
                        await response.write(line)
            else:
                async for chunk in answer.content.iter_any():
                    await response.write(chunk)
            await response.write_eof()
            return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]

    async def stop() -> None:
        await runner.cleanup()
        await upstream.close()

    return f"http://127.0.0.1:{port}", stop


def kubeconfig_without_credentials(url: str) -> str:
    """A kubeconfig for a proxy at `url` that authenticates on its own."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "proxy", "cluster": {"server": url}}],
        "users": [{"name": "proxy", "user": {}}],
        "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "proxy"}}],
        "current-context": "proxy",
    }
    with tempfile.NamedTemporaryFile("w", suffix=".kubeconfig", delete=False) as copy:
        yaml.safe_dump(config, copy)
    return copy.name
