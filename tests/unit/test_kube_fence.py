"""The write fence of the API layer, against a real HTTP server on loopback: once it
shuts, no byte of a write leaves the process, even when it shuts between the first
check and the send (a leader frozen in between)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from kubernetes import client

from ray_operator.kube import KubeApi, LostLeadership


class Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[str]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        Recorder.seen.append(f"{self.command} {self.path}")
        body = json.dumps({"metadata": {"name": "x"}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    Recorder.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class Fence:
    """Open for the first `open_checks` checks, shut afterwards."""

    def __init__(self, open_checks: int) -> None:
        self.checks = 0
        self.open_checks = open_checks

    def __call__(self) -> None:
        self.checks += 1
        if self.checks > self.open_checks:
            raise LostLeadership("lease lost")


def api(url: str, fence: Fence) -> KubeApi:
    cfg = client.Configuration()
    cfg.host = url
    return KubeApi(client.ApiClient(cfg), timeout=(2, 5), fence=fence)


def test_an_open_fence_lets_writes_through(server):
    api(server, Fence(open_checks=100)).request("POST", "/api/v1/namespaces/ns/pods", {})
    assert Recorder.seen == ["POST /api/v1/namespaces/ns/pods"]


def test_a_shut_fence_refuses_before_anything_is_sent(server):
    with pytest.raises(LostLeadership):
        api(server, Fence(open_checks=0)).request("POST", "/api/v1/namespaces/ns/pods", {})
    assert Recorder.seen == []


def test_a_fence_that_shuts_after_the_first_check_still_stops_the_bytes(server):
    """The first check passed; the process 'froze' before sending: the connection's own
    check right before the socket write refuses it."""
    with pytest.raises(LostLeadership):
        api(server, Fence(open_checks=1)).request("PUT", "/api/v1/namespaces/ns/pods/x", {})
    assert Recorder.seen == []


def test_reads_and_the_lease_are_never_fenced(server):
    kube = api(server, Fence(open_checks=0))
    kube.request("GET", "/api/v1/namespaces/ns/pods")
    kube.request("PUT", "/apis/coordination.k8s.io/v1/namespaces/ns/leases/l", {})
    assert Recorder.seen == [
        "GET /api/v1/namespaces/ns/pods",
        "PUT /apis/coordination.k8s.io/v1/namespaces/ns/leases/l",
    ]
