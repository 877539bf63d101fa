"""TCP (and any connected stream socket): the socket transport and its listener.

Listening defaults to loopback; exposing a server needs an explicit ``bind="0.0.0.0"``
(or ``"::"``). Port 0 picks a free port, reported by the listener's ``port``.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any

from rpcbd.exceptions import ConnectionClosedError
from rpcbd.transports.base import ListenerBackend, Transport

__all__ = ["SocketListener", "SocketTransport", "connect_tcp", "format_host", "listen_tcp"]

#: Bytes asked of the kernel per read.
READ_SIZE = 256 * 1024


def format_host(host: str) -> str:
    """``host`` as it appears in a URL: IPv6 literals in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class SocketTransport(Transport):
    """A connected stream socket (TCP, Unix, or TLS-wrapped)."""

    def __init__(self, sock: socket.socket, description: str) -> None:
        self._sock = sock
        self.description = description
        self._aborted = False
        self._closed = False
        self._recv = sock.recv
        self._sendall = sock.sendall

    @property
    def socket(self) -> socket.socket:
        """The underlying socket."""
        return self._sock

    def read(self) -> bytes | None:
        try:
            data = self._recv(READ_SIZE)
        except OSError:
            if self._aborted:
                return None
            raise
        return data or None

    def read_nowait(self) -> bytes | None:
        try:
            data = self._recv(READ_SIZE, socket.MSG_DONTWAIT)
        except BlockingIOError:
            raise
        except OSError:
            if self._aborted:
                return None
            raise
        return data or None

    def fileno(self) -> int | None:
        if isinstance(self._sock, ssl.SSLSocket) or not hasattr(socket, "MSG_DONTWAIT"):
            return None
        return self._sock.fileno()

    def write(self, chunks: list[bytes]) -> None:
        if self._aborted:
            raise ConnectionClosedError("connection closed")
        self._sendall(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def abort(self) -> None:
        if self._aborted:
            return  # once is enough (close() and the reader's clean-up both abort)
        self._aborted = True
        # shutdown() wakes a thread blocked in recv() on this socket; close() alone would
        # not, and would free the descriptor while that thread still uses it.
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.abort()
            self._sock.close()


class SocketListener(ListenerBackend):
    """Accepts stream sockets on a bound, listening socket in one named thread."""

    def __init__(
        self,
        sock: socket.socket,
        url: str,
        wrap: Callable[[socket.socket, Any], Transport],
    ) -> None:
        self._sock = sock
        self.address = sock.getsockname()
        self.url = url
        self._wrap = wrap
        self._closing = False
        self._thread: threading.Thread | None = None
        self._on_transport: Callable[[Transport], None] | None = None

    def start(self, on_transport: Callable[[Transport], None]) -> None:
        self._on_transport = on_transport
        self._thread = threading.Thread(target=self._accept_loop, name=f"rpcbd-listener {self.url}")
        self._thread.start()

    def _accept_loop(self) -> None:
        assert self._on_transport is not None
        while not self._closing:
            try:
                conn, address = self._sock.accept()
            except OSError:
                if self._closing:
                    return
                continue  # EMFILE, ECONNABORTED: keep serving the others
            if self._closing:
                conn.close()
                return
            try:
                transport = self._wrap(conn, address)
            except OSError:
                conn.close()  # a failed TLS handshake, say: that client only
                continue
            self._on_transport(transport)

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        # On Linux shutdown() wakes accept(); elsewhere connecting to ourselves does.
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            with contextlib.suppress(OSError):
                name = self._sock.getsockname()
                if isinstance(name, str):  # a Unix socket's path
                    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as waker:
                        waker.settimeout(1)
                        waker.connect(name)
                else:
                    socket.create_connection(name[:2], timeout=1).close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._sock.close()


def _tune(sock: socket.socket) -> None:
    # Requests and replies are small and latency-bound: do not wait to coalesce segments.
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def connect_tcp(host: str, port: int, *, connect_timeout: float | None = None) -> SocketTransport:
    """Connect to ``host:port`` (IPv4, IPv6 or a name)."""
    sock = socket.create_connection((host.strip("[]"), port), timeout=connect_timeout)
    sock.settimeout(None)
    _tune(sock)
    return SocketTransport(sock, f"tcp://{format_host(host)}:{port}")


def _wrap_accepted(sock: socket.socket, address: Any) -> SocketTransport:
    _tune(sock)
    return SocketTransport(sock, f"tcp://{format_host(address[0])}:{address[1]}")


def listen_tcp(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    backlog: int = socket.SOMAXCONN,
    wrap: Callable[[socket.socket, Any], Transport] | None = None,
    scheme: str = "tcp",
) -> SocketListener:
    """Bind and listen on ``host:port``; ``port=0`` picks a free port.

    ``wrap(sock, address)`` turns each accepted socket into a transport (TLS uses it), and
    ``scheme`` is the listener URL's scheme.
    """
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    bound_host, bound_port = sock.getsockname()[:2]
    listener = SocketListener(
        sock, f"{scheme}://{format_host(bound_host)}:{bound_port}", wrap or _wrap_accepted
    )
    listener.port = bound_port
    return listener
