"""A stand-in for Ray's dashboard job API, one per head pod IP, for the RayJob scenario.

Fifty real Ray heads (each with its dashboard, GCS, raylet and agent processes) do not
fit on the 2-core machine the benchmark runs on alongside the control plane, and the
scenario measures the operator, not Ray: so each head pod IP gets this small server
instead, answering the three calls the operator makes (`GET /api/jobs/<id>`,
`POST /api/jobs/`, `POST /api/jobs/<id>/stop`) as Ray 2.60 does. A submitted job is
RUNNING for `job_seconds`, then SUCCEEDED. The tests run the same operator code against
real Ray (tests/integration/test_rayjob_ray.py).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Jobs:
    def __init__(self, job_seconds: float) -> None:
        self.job_seconds = job_seconds
        self.lock = threading.Lock()
        self.submitted: dict[str, float] = {}  # submission id -> when
        self.submits = 0

    def info(self, job_id: str) -> dict[str, Any] | None:
        with self.lock:
            started = self.submitted.get(job_id)
        if started is None:
            return None
        done = time.time() >= started + self.job_seconds
        info = {"submission_id": job_id, "job_id": None, "type": "SUBMISSION",
                "status": "SUCCEEDED" if done else "RUNNING", "message": "",
                "start_time": int(started * 1000)}  # fmt: skip
        if done:
            info["end_time"] = int((started + self.job_seconds) * 1000)
        return info


def _handler(jobs: _Jobs) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, code: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            job_id = self.path.removeprefix("/api/jobs/")
            info = jobs.info(job_id)
            self._reply(200, info) if info else self._reply(404, {"detail": "not found"})

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path.endswith("/stop"):
                self._reply(200, {"stopped": True})
                return
            request = json.loads(body or b"{}")
            job_id = request["submission_id"]
            with jobs.lock:
                if job_id in jobs.submitted:
                    self._reply(400, {"detail": f"Job with submission_id {job_id} already exists"})
                    return
                jobs.submitted[job_id] = time.time()
                jobs.submits += 1
            self._reply(200, {"job_id": job_id, "submission_id": job_id})

    return Handler


class FakeDashboards:
    """One server per IP, all on `port`; `serve(ip)` is idempotent."""

    def __init__(self, port: int, job_seconds: float = 2.0) -> None:
        self.port = port
        self.jobs = _Jobs(job_seconds)
        self.servers: dict[str, ThreadingHTTPServer] = {}

    def serve(self, ip: str) -> None:
        if ip in self.servers:
            return
        server = ThreadingHTTPServer((ip, self.port), _handler(self.jobs))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True, name=f"dash-{ip}").start()
        self.servers[ip] = server

    def close(self) -> None:
        for server in self.servers.values():
            server.shutdown()
            server.server_close()
        self.servers.clear()
