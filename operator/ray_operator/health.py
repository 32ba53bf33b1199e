"""Liveness: is the operator still making progress? Served at `/healthz`.

A process can be alive and useless: a watch on a connection that a NAT silently
dropped, an event loop stuck behind a blocking call, a pass that never returns. Each
part of the operator records progress here (`beat`) and declares how long it may go
without any (its bound). `/healthz` answers 500, naming the stalled parts, once any
part has gone silent past its bound, so the kubelet restarts the pod; otherwise 200.

It is served from its own thread, so a blocked event loop still gets an answer (the
loop's own heartbeat then goes stale and the answer is 500).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

log = logging.getLogger(__name__)


class Health:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._parts: dict[str, tuple[float, float]] = {}  # name -> (last beat, bound)
        self._checks: list[Callable[[], list[str]]] = []

    def expect(self, part: str, bound: float) -> None:
        """From now on `part` must beat at least every `bound` seconds."""
        self._parts[part] = (self.clock(), bound)

    def beat(self, part: str) -> None:
        entry = self._parts.get(part)
        if entry is not None:
            self._parts[part] = (self.clock(), entry[1])

    def forget(self, part: str) -> None:
        self._parts.pop(part, None)

    def add_check(self, check: Callable[[], list[str]]) -> None:
        """A check that returns what is wrong (nothing when healthy)."""
        self._checks.append(check)

    def problems(self) -> list[str]:
        now = self.clock()
        found = [
            f"{part}: no progress for {now - last:.0f}s (bound {bound:.0f}s)"
            for part, (last, bound) in list(self._parts.items())
            if now - last > bound
        ]
        for check in self._checks:
            found += check()
        return found


def serve(health: Health, url: str) -> tuple[ThreadingHTTPServer, str]:
    """Serve `/healthz` (the path of `url`) on its host and port; port 0 picks a free
    one. Returns the server and the URL actually served."""
    parts = urlsplit(url)
    path = parts.path or "/healthz"

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != path:
                self.send_error(404)
                return
            problems = health.problems()
            body = json.dumps({"ok": not problems, "problems": problems}).encode()
            self.send_response(500 if problems else 200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:  # probes are not news
            pass

    server = ThreadingHTTPServer((parts.hostname or "0.0.0.0", parts.port or 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="healthz", daemon=True).start()
    host, port = server.server_address[:2]
    served = f"http://{host}:{port}{path}"
    log.info("liveness endpoint: %s", served)
    return server, served
