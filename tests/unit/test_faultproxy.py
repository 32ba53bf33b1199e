"""The fault-injection proxy against a local echo server: forwarding, the blackhole
modes, refusal, and a close that leaves no thread or port behind."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.faultproxy import THREAD_PREFIX, FaultProxy, kubeconfig_via
from tests.kubehelpers import wait_for

STALL = 0.5  # how long a blackholed read must stay silent
REPLY = 5.0  # bound on any reply that should arrive


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = False  # server_close() joins the handler threads
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="echo-server")
    thread.start()
    yield server.server_address[:2]
    server.shutdown()
    server.server_close()
    thread.join(REPLY)


@pytest.fixture
def proxy(echo: tuple[str, int]) -> Iterator[FaultProxy]:
    with FaultProxy(*echo) as p:
        yield p


def _connect(proxy: FaultProxy) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=REPLY)
    sock.settimeout(REPLY)
    return sock


def _echoes(sock: socket.socket, payload: bytes = b"ping") -> bool:
    sock.sendall(payload)
    return _received(sock, len(payload)) == payload


def _received(sock: socket.socket, size: int) -> bytes:
    got = bytearray()
    while len(got) < size and (chunk := sock.recv(65536)):
        got += chunk
    return bytes(got)


def _stalled(sock: socket.socket) -> bool:
    """Nothing comes back, neither data nor FIN nor RST, within STALL seconds."""
    sock.sendall(b"anyone?")
    sock.settimeout(STALL)
    try:
        sock.recv(1)
    except TimeoutError:
        return True
    finally:
        sock.settimeout(REPLY)
    return False


def test_forwards_both_ways_and_counts(proxy: FaultProxy):
    with _connect(proxy) as sock:
        assert _echoes(sock, b"hello")
        big = bytes(range(256)) * 4096  # 1 MiB: more than the socket buffers hold
        sender = threading.Thread(target=sock.sendall, args=(big,), name="echo-sender")
        sender.start()
        assert _received(sock, len(big)) == big
        sender.join(REPLY)
        wait_for(lambda: proxy.bytes_to_client == 5 + len(big), timeout=REPLY)
        assert proxy.bytes_to_target == 5 + len(big)
        assert proxy.accepted == 1
        assert proxy.open_connections == 1
    # the client's FIN travels to the echo server, whose FIN comes back: closed
    wait_for(lambda: proxy.open_connections == 0, timeout=REPLY, what="connection closed")


def test_half_close_passes_through(proxy: FaultProxy):
    with _connect(proxy) as sock:
        sock.sendall(b"last words")
        sock.shutdown(socket.SHUT_WR)
        got = b""
        while chunk := sock.recv(1024):
            got += chunk
        assert got == b"last words"  # then EOF: the echo server saw ours and closed


def test_blackhole_existing_stalls_old_connections_only(proxy: FaultProxy):
    old = _connect(proxy)
    assert _echoes(old)
    proxy.blackhole_existing()
    sent_before = proxy.bytes_to_target
    assert _stalled(old)
    assert proxy.bytes_to_target == sent_before  # not even the request went through
    with _connect(proxy) as new:
        assert _echoes(new)
    assert _stalled(old)  # still dead, and still open: no FIN, no RST
    assert proxy.mode == "forward"
    old.close()


def test_blackhole_all_accepts_but_never_relays(proxy: FaultProxy):
    old = _connect(proxy)
    assert _echoes(old)
    proxy.blackhole_all()
    new = _connect(proxy)  # the handshake completes
    wait_for(lambda: proxy.accepted == 2, timeout=REPLY, what="the new connection accepted")
    assert _stalled(new)
    assert _stalled(old)
    proxy.forward()
    with _connect(proxy) as later:
        assert _echoes(later)
    assert _stalled(new)  # a blackholed connection never recovers
    for sock in (old, new):
        sock.close()


def test_refuse_then_forward_on_the_same_port(proxy: FaultProxy):
    open_before = _connect(proxy)
    assert _echoes(open_before)
    proxy.refuse()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=REPLY)
    assert _echoes(open_before)  # connections already open carry on
    proxy.forward()
    with _connect(proxy) as sock:
        assert _echoes(sock)
    open_before.close()


def test_dead_target_resets_the_client():
    with socket.socket() as placeholder:  # a port nothing listens on
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    with FaultProxy("127.0.0.1", port) as proxy:
        # reset: at connect, send or recv, depending on when the RST arrives
        with pytest.raises(ConnectionError), _connect(proxy) as sock:
            sock.sendall(b"x")
            sock.recv(1)
        wait_for(lambda: proxy.accepted == 1, timeout=REPLY)
        assert proxy.open_connections == 0


def test_close_leaves_no_thread_socket_or_port(echo: tuple[str, int]):
    proxy = FaultProxy(*echo)
    client = _connect(proxy)
    assert _echoes(client)
    proxy.blackhole_all()
    held = _connect(proxy)
    wait_for(lambda: proxy.accepted == 2, timeout=REPLY)
    proxy.close()
    assert not [t.name for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=REPLY)
    for sock in (client, held):  # the proxy's ends are closed: EOF (or a reset)
        with contextlib.suppress(ConnectionResetError):
            assert sock.recv(1) == b""
        sock.close()
    proxy.close()  # idempotent
    with pytest.raises(RuntimeError):
        proxy.forward()


def test_kubeconfig_via_points_every_cluster_at_the_proxy(proxy: FaultProxy, tmp_path: Path):
    source = tmp_path / "admin.kubeconfig"
    source.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "local",
                        "cluster": {
                            "server": "https://127.0.0.1:6443",
                            "certificate-authority": "pki/ca.crt",
                        },
                    }
                ],
                "users": [{"name": "admin", "user": {"client-key": "/abs/admin.key"}}],
            }
        )
    )
    dest = kubeconfig_via(proxy, source, tmp_path / "out" / "via-proxy.kubeconfig")
    config = yaml.safe_load(dest.read_text())
    cluster = config["clusters"][0]["cluster"]
    assert cluster["server"] == f"https://127.0.0.1:{proxy.port}"
    assert cluster["certificate-authority"] == str(tmp_path / "pki" / "ca.crt")
    assert config["users"][0]["user"]["client-key"] == "/abs/admin.key"
