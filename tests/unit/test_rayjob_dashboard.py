"""The dashboard client's edges on real loopback sockets: a silent head costs one
timeout, never more; refused and unknown answers are errors; a repeated submit of the
same ID counts as submitted. (Against Ray itself: tests/integration/test_rayjob_ray.py.)"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ray_operator.rayjob.dashboard import Dashboard, DashboardError


@pytest.fixture
def server() -> Iterator[tuple[str, list, list]]:
    """A small HTTP server scripted by a list of (status, body) answers."""
    answers: list[tuple[int, object]] = []
    seen: list[tuple[str, str, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            seen.append((self.command, self.path, self.rfile.read(length)))
            status, body = answers.pop(0)
            data = json.dumps(body).encode() if not isinstance(body, bytes) else body
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", answers, seen
    httpd.shutdown()
    httpd.server_close()


def test_job_info_found_and_missing(server):
    url, answers, seen = server
    answers += [(200, {"status": "RUNNING"}), (404, {"detail": "no"})]
    dash = Dashboard(url)
    assert dash.job_info("a b") == {"status": "RUNNING"}
    assert dash.job_info("x") is None
    assert [(m, p) for m, p, _ in seen] == [("GET", "/api/jobs/a%20b"), ("GET", "/api/jobs/x")]


def test_unexpected_answers_are_errors(server):
    url, answers, _ = server
    answers += [(500, {"detail": "boom"}), (200, b"<html>")]
    with pytest.raises(DashboardError, match="HTTP 500"):
        Dashboard(url).job_info("j")
    with pytest.raises(DashboardError, match="not JSON"):
        Dashboard(url).job_info("j")


def test_submit_sends_the_request_and_a_repeat_counts_as_submitted(server):
    url, answers, seen = server
    answers += [
        (200, {"job_id": "raylet-1", "submission_id": "s1"}),
        (400, {"detail": "Job with submission_id s1 already exists. Use a different one."}),
        (400, {"detail": "bad runtime_env"}),
    ]
    dash = Dashboard(url)
    assert dash.submit({"entrypoint": "true", "submission_id": "s1"}) == "s1"
    assert json.loads(seen[0][2]) == {"entrypoint": "true", "submission_id": "s1"}
    assert dash.submit({"entrypoint": "true", "submission_id": "s1"}) == "s1"
    with pytest.raises(DashboardError, match="bad runtime_env"):
        dash.submit({"entrypoint": "true", "submission_id": "s2"})


def test_stop(server):
    url, answers, seen = server
    answers += [(200, {"stopped": True}), (404, {})]
    assert Dashboard(url).stop("j") is True
    assert Dashboard(url).stop("j") is False
    assert seen[0][:2] == ("POST", "/api/jobs/j/stop")


def test_refused_connection_is_an_error_at_once():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens once closed
    started = time.monotonic()
    with pytest.raises(DashboardError, match="refused"):
        Dashboard(f"http://127.0.0.1:{port}").job_info("j")
    assert time.monotonic() - started < 1


def test_a_silent_head_costs_one_timeout():
    """Accepts the connection (the kernel's backlog) and never answers."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        started = time.monotonic()
        with pytest.raises(DashboardError, match="timed out"):
            Dashboard(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=0.5).job_info("j")
        assert 0.4 < time.monotonic() - started < 2
