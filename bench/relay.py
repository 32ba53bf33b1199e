"""A TCP relay between the operator and the API server that counts the bytes each way.

The API server's own byte metrics (`apiserver_response_sizes`,
`apiserver_watch_events_sizes`) carry no user: the scheduler's, kwok's and the
controller manager's reads drown the operator's. The operator's kubeconfig points here
instead; TLS passes through untouched (the API server's certificate names 127.0.0.1,
whatever the port), HTTP/2 included, so the count is what the operator's connections
carry: TLS records, headers and bodies, watch streams and lists alike.

Run as its own process (`python -m bench.relay LISTEN_PORT UPSTREAM_HOST:PORT
STATS_PORT`), so its CPU is neither the operator's nor the harness's; a connection to
STATS_PORT answers `<bytes from the API server> <bytes to it>`.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

counts = {"down": 0, "up": 0}  # down: API server -> operator


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, way: str) -> None:
    try:
        while data := await reader.read(65536):
            counts[way] += len(data)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _serve(host: str, port: int) -> Handler:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer, "up"), _pipe(up_reader, writer, "down"))

    return client


async def main(listen: int, upstream: str, stats: int) -> None:
    host, _, port = upstream.rpartition(":")
    handler = await _serve(host, int(port))
    relay = await asyncio.start_server(handler, "127.0.0.1", listen)

    async def report(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(f"{counts['down']} {counts['up']}\n".encode())
        await w.drain()
        w.close()

    reporter = await asyncio.start_server(report, "127.0.0.1", stats)
    async with relay, reporter:
        await asyncio.gather(relay.serve_forever(), reporter.serve_forever())


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
