"""The plain concurrent client of the ceiling: POSTs N pods as fast as the API server
takes them. It runs in a process of its own (like the operator), on asyncio + aiohttp
with one TLS connection per in-flight request, so the client is as lean as Python gets
and the harness's watch thread is not slowed by it."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import ssl
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Target:
    server: str  # https://127.0.0.1:port
    ca_cert: str
    client_cert: str
    client_key: str


async def _post_all(
    target: Target, namespace: str, body: dict[str, Any], count: int, concurrency: int
) -> dict[str, Any]:
    import aiohttp

    ctx = ssl.create_default_context(cafile=target.ca_cert)
    ctx.load_cert_chain(target.client_cert, target.client_key)
    url = f"{target.server}/api/v1/namespaces/{namespace}/pods"
    data = json.dumps(body).encode()
    todo = iter(range(count))
    errors: list[str] = []
    ok = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal ok
        for _ in todo:
            for attempt in range(5):
                async with session.post(
                    url, data=data, headers={"Content-Type": "application/json"}
                ) as resp:
                    await resp.read()
                    if resp.status == 201:
                        ok += 1
                        break
                    if resp.status != 429 or attempt == 4:
                        errors.append(f"{resp.status}")
                        break
                await asyncio.sleep(0.05)

    connector = aiohttp.TCPConnector(ssl=ctx, limit=concurrency)
    started, cpu = time.monotonic(), time.process_time()
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return {"ok": ok, "errors": errors[:20], "n_errors": len(errors), "started": started,
            "seconds": time.monotonic() - started,
            "client_cpu_s": time.process_time() - cpu}  # fmt: skip


def _child(conn: Any, target: Target, namespace: str, body: dict, count: int, conc: int) -> None:
    try:
        conn.send(asyncio.run(_post_all(target, namespace, body, count, conc)))
    except BaseException as err:
        conn.send({"ok": 0, "errors": [repr(err)], "n_errors": 1, "seconds": 0.0})
    finally:
        conn.close()


class LoadGen:
    """Start the POSTs in a child process; `result()` waits for it."""

    def __init__(
        self, target: Target, namespace: str, body: dict[str, Any], count: int, concurrency: int
    ) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._parent, child = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(
            target=_child,
            args=(child, target, namespace, body, count, concurrency),
            daemon=True,
            name="bench-loadgen",
        )

    def start(self) -> LoadGen:
        self._proc.start()
        return self

    def result(self, timeout: float = 3600) -> dict[str, Any]:
        if not self._parent.poll(timeout):
            self._proc.kill()
            raise TimeoutError("load generator did not finish")
        out = self._parent.recv()
        self._proc.join(10)
        return out
