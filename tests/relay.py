"""A local TCP relay that adds round-trip time between a client and the API server, as
a cluster across a network would: for the chaos tests (200 ms) and the client
benchmark. Connections go to loopback only."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
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
