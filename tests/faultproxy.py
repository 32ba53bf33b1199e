"""A loopback TCP proxy that fails the way networks do, for fault-injection tests.

`FaultProxy(host, port)` listens on 127.0.0.1 and relays bytes to the target unchanged
(TLS included: point a kubeconfig at it with `kubeconfig_via`). Its mode can be switched
while connections are open:

- `forward()`: relay new connections normally;
- `blackhole_existing()`: every connection open now stops relaying in both directions
  for good, sockets kept open (no FIN, no RST), as after a lost NAT or load-balancer
  entry; connections made afterwards relay normally;
- `blackhole_all()`: the same for existing connections, and new ones are accepted (the
  handshake completes) but never relayed;
- `refuse()`: new connections are refused (nothing listens); open ones carry on.

One thread runs a selector loop over every socket. Mode switches run on that thread
and return only once applied, so nothing is relayed on a blackholed connection after
the call returns.
"""

from __future__ import annotations

import contextlib
import errno
import queue
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

LOOPBACK = "127.0.0.1"
THREAD_PREFIX = "faultproxy"
CHUNK = 64 * 1024
CALL_TIMEOUT = 10.0


class _Conn:
    """One proxied connection: the accepted client socket and its upstream socket."""

    def __init__(self, client: socket.socket, upstream: socket.socket | None) -> None:
        self.client = client
        self.upstream = upstream
        self.connecting = upstream is not None
        self.stalled = upstream is None
        self.closed = False
        self.pending: dict[socket.socket, bytearray] = {client: bytearray()}
        self.eof: set[socket.socket] = set()
        if upstream is not None:
            self.pending[upstream] = bytearray()

    def peer(self, sock: socket.socket) -> socket.socket:
        assert self.upstream is not None
        return self.upstream if sock is self.client else self.client

    def sockets(self) -> list[socket.socket]:
        return [s for s in (self.client, self.upstream) if s is not None]

    def events(self, sock: socket.socket) -> int:
        """What the selector should wait for on `sock` in the current state."""
        if self.stalled or self.closed:
            return 0
        if self.connecting:
            return selectors.EVENT_WRITE if sock is self.upstream else 0
        wanted = 0
        # Read only when the peer has taken everything: TCP flow control does the rest.
        if sock not in self.eof and not self.pending[self.peer(sock)]:
            wanted |= selectors.EVENT_READ
        if self.pending[sock]:
            wanted |= selectors.EVENT_WRITE
        return wanted

    def finished(self) -> bool:
        return len(self.eof) == 2 and not any(self.pending.values())


class FaultProxy:
    """A TCP proxy from 127.0.0.1:`port` to `target_host`:`target_port`; see the module
    docstring for the modes. Counters: `accepted`, `open_connections`,
    `bytes_to_target`, `bytes_to_client`. `close()` (or leaving a `with` block) stops
    the thread and closes every socket."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.accepted = 0
        self.bytes_to_target = 0
        self.bytes_to_client = 0
        self._mode = "forward"
        self._live: set[_Conn] = set()
        self._calls: queue.SimpleQueue[tuple[Callable[[], Any], _Reply]] = queue.SimpleQueue()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._listener: socket.socket | None = self._listen(0)
        self.port: int = self._listener.getsockname()[1]
        self._stopping = False
        self._closed = False
        self._failure: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"{THREAD_PREFIX}-{self.port}", daemon=True
        )
        self._thread.start()

    # -- public API --------------------------------------------------------------------

    @property
    def url(self) -> str:
        """`https://127.0.0.1:<port>`: the proxy passes TLS through, so an API server
        URL only changes its port."""
        return f"https://{LOOPBACK}:{self.port}"

    @property
    def mode(self) -> str:
        """For new connections: "forward", "blackhole_all" or "refuse"."""
        return self._mode

    @property
    def open_connections(self) -> int:
        """Connections accepted and not yet closed. Blackholed ones count until
        `close()`: nothing reads them, so nothing notices their end."""
        return len(self._live)

    def forward(self) -> None:
        """Relay new connections normally (blackholed connections stay blackholed)."""
        self._call(lambda: self._set_mode("forward"))

    def blackhole_existing(self) -> None:
        """Stall every open connection for good; relay the ones made afterwards."""
        self._call(lambda: self._blackhole(then="forward"))

    def blackhole_all(self) -> None:
        """Stall every open connection, and accept but never relay new ones."""
        self._call(lambda: self._blackhole(then="blackhole_all"))

    def refuse(self) -> None:
        """Refuse new connections (the port stops listening); open ones carry on."""
        self._call(lambda: self._set_mode("refuse"))

    def close(self) -> None:
        """Stop the thread and close every socket, the listener included. Idempotent."""
        if self._thread.is_alive():
            self._call(self._stop)
            self._thread.join(CALL_TIMEOUT)
        self._shutdown_sockets()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- calls into the loop thread ----------------------------------------------------

    def _call(self, fn: Callable[[], Any]) -> None:
        if not self._thread.is_alive():
            raise RuntimeError(f"fault proxy on port {self.port} is closed") from self._failure
        reply = _Reply()
        self._calls.put((fn, reply))
        with contextlib.suppress(BlockingIOError):  # a wake-up is already pending
            self._wake_w.send(b"x")
        reply.wait(self._thread)

    def _run_calls(self) -> None:
        with contextlib.suppress(BlockingIOError):
            self._wake_r.recv(4096)
        while True:
            try:
                fn, reply = self._calls.get_nowait()
            except queue.Empty:
                return
            try:
                fn()
            except Exception as err:  # handed to the caller
                reply.error = err
            reply.done.set()

    def _set_mode(self, mode: str) -> None:
        if mode == "refuse":
            self._unlisten()
        elif self._listener is None:
            self._listener = self._listen(self.port)
        self._mode = mode

    def _blackhole(self, then: str) -> None:
        for conn in list(self._live):
            conn.stalled = True
            self._update(conn)
        self._set_mode(then)

    def _stop(self) -> None:
        self._stopping = True

    # -- the loop ----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping:
                for key, mask in self._selector.select():
                    self._dispatch(key.fileobj, key.data, mask)  # type: ignore[arg-type]
        except BaseException as err:  # a bug here must not hang callers
            self._failure = err
            raise
        finally:
            self._release_waiters()

    def _dispatch(self, sock: socket.socket, data: Any, mask: int) -> None:
        if sock is self._wake_r:
            self._run_calls()
        elif data == "listener":
            self._accept()
        else:
            conn: _Conn = data
            if conn.closed or conn.stalled:
                return  # changed earlier in this same batch of events
            try:
                self._serve(conn, sock, mask)
            except OSError:
                self._close_conn(conn)

    def _accept(self) -> None:
        while self._listener is not None:
            try:
                client, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. the client reset before we accepted it
            client.setblocking(False)
            self.accepted += 1
            if self._mode == "blackhole_all":
                self._add(_Conn(client, None))
                continue
            upstream = self._dial()
            if upstream is None:
                _reset(client)
            else:
                self._add(_Conn(client, upstream))

    def _dial(self) -> socket.socket | None:
        """A non-blocking connect to the target; None if it failed at once."""
        upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        upstream.setblocking(False)
        if upstream.connect_ex(self.target) in (0, errno.EINPROGRESS):
            return upstream
        upstream.close()
        return None

    def _serve(self, conn: _Conn, sock: socket.socket, mask: int) -> None:
        if conn.connecting:
            self._connected(conn)
            return
        if mask & selectors.EVENT_WRITE:
            self._flush(conn, sock)
        if mask & selectors.EVENT_READ and not conn.closed:
            self._relay(conn, sock)
        if conn.finished():
            self._close_conn(conn)
        elif not conn.closed:
            self._update(conn)

    def _connected(self, conn: _Conn) -> None:
        assert conn.upstream is not None
        err = conn.upstream.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:  # the target is down: the client sees a reset, as from a dead backend
            self._close_conn(conn, reset=True)
            return
        conn.connecting = False
        self._update(conn)

    def _relay(self, conn: _Conn, sock: socket.socket) -> None:
        try:
            data = sock.recv(CHUNK)
        except BlockingIOError:
            return
        if not data:
            conn.eof.add(sock)
            if not conn.pending[conn.peer(sock)]:
                conn.peer(sock).shutdown(socket.SHUT_WR)
            return
        conn.pending[conn.peer(sock)] += data
        self._flush(conn, conn.peer(sock))

    def _flush(self, conn: _Conn, sock: socket.socket) -> None:
        buf = conn.pending[sock]
        try:
            sent = sock.send(buf) if buf else 0
        except BlockingIOError:
            return
        del buf[:sent]
        if sock is conn.client:
            self.bytes_to_client += sent
        else:
            self.bytes_to_target += sent
        if not buf and conn.peer(sock) in conn.eof:
            sock.shutdown(socket.SHUT_WR)  # pass the half-close on once drained

    # -- bookkeeping -------------------------------------------------------------------

    def _add(self, conn: _Conn) -> None:
        self._live.add(conn)
        self._update(conn)

    def _update(self, conn: _Conn) -> None:
        for sock in conn.sockets():
            events = conn.events(sock)
            registered = sock in self._selector.get_map()
            if events and registered:
                self._selector.modify(sock, events, conn)
            elif events:
                self._selector.register(sock, events, conn)
            elif registered:
                self._selector.unregister(sock)

    def _close_conn(self, conn: _Conn, reset: bool = False) -> None:
        conn.closed = True
        self._live.discard(conn)
        for sock in conn.sockets():
            if sock in self._selector.get_map():
                self._selector.unregister(sock)
            if reset and sock is conn.client:
                _reset(sock)
            sock.close()

    def _listen(self, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        self._selector.register(sock, selectors.EVENT_READ, "listener")
        return sock

    def _unlisten(self) -> None:
        if self._listener is not None:
            self._selector.unregister(self._listener)
            self._listener.close()
            self._listener = None

    def _release_waiters(self) -> None:
        """Runs on the loop thread as it exits: answer every pending call."""
        self._stopping = True
        while True:
            try:
                _, reply = self._calls.get_nowait()
            except queue.Empty:
                return
            reply.error = RuntimeError("fault proxy closed before the call ran")
            reply.done.set()

    def _shutdown_sockets(self) -> None:
        if self._closed:
            return
        self._closed = True
        for conn in list(self._live):
            conn.closed = True
            for sock in conn.sockets():
                sock.close()
        self._live.clear()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for sock in (self._wake_r, self._wake_w):
            sock.close()
        self._selector.close()


def _reset(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER on, timeout 0) rather than a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class _Reply:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: Exception | None = None

    def wait(self, thread: threading.Thread) -> None:
        deadline = time.monotonic() + CALL_TIMEOUT
        while not self.done.wait(0.05):
            if not thread.is_alive():
                raise RuntimeError("fault proxy loop has stopped")
            if time.monotonic() > deadline:
                raise TimeoutError("fault proxy loop did not answer")
        if self.error is not None:
            raise self.error


def kubeconfig_via(proxy: FaultProxy, source: Path, dest: Path) -> Path:
    """Copy kubeconfig `source` to `dest` with every cluster's server pointing at
    `proxy` (same credentials and CA: TLS passes through). Relative file paths in
    `source` are made absolute so the copy works from any directory."""
    config = yaml.safe_load(Path(source).read_text())
    base = Path(source).resolve().parent
    for entry in config.get("clusters", []):
        entry["cluster"]["server"] = proxy.url
    for section, key in (("clusters", "cluster"), ("users", "user")):
        for entry in config.get(section, []):
            for field, value in entry[key].items():
                if field in _PATH_FIELDS and not Path(value).is_absolute():
                    entry[key][field] = str(base / value)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(yaml.safe_dump(config))
    return dest


_PATH_FIELDS = {"certificate-authority", "client-certificate", "client-key", "tokenFile"}
