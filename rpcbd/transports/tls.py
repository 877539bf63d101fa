"""TLS over TCP: ``tls://HOST:PORT``.

Both sides take an ``ssl_context`` option (an :class:`ssl.SSLContext`):

- **Clients** verify the server's certificate by default: without ``ssl_context`` they use
  :func:`ssl.create_default_context` (the system's CAs, host name checking on). Pass a
  context to trust a private CA (``ssl.create_default_context(cafile=...)``) or to present
  a client certificate. ``server_hostname`` overrides the name checked against the
  certificate (default: the URL's host).
- **Servers** need a context holding their certificate and key, e.g.
  ``ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)`` then
  ``ctx.load_cert_chain("cert.pem", "key.pem")``; ``ctx.verify_mode = ssl.CERT_REQUIRED``
  plus ``ctx.load_verify_locations(...)`` asks clients for certificates.

The server does each handshake in the new connection's reader thread, bounded by
:data:`HANDSHAKE_TIMEOUT`, so a client that connects and stays silent never holds up the
accept loop. Default framing: ``newline``.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from typing import Any

from rpcbd.exceptions import ConnectionClosedError
from rpcbd.transports import split_host_port
from rpcbd.transports.base import Transport
from rpcbd.transports.tcp import SocketListener, format_host, listen_tcp

__all__ = [
    "HANDSHAKE_TIMEOUT",
    "TLSSocket",
    "TLSTransport",
    "ThreadSafeTLSContext",
    "connect_from_url",
    "connect_tls",
    "listen_from_url",
    "listen_tls",
]

#: Seconds an accepted client has to complete the TLS handshake.
HANDSHAKE_TIMEOUT = 30.0
#: Bytes asked of the kernel per read.
READ_SIZE = 256 * 1024


class TLSTransport(Transport):
    """TLS over a connected socket, with the TLS state kept in memory (``ssl.MemoryBIO``).

    Why not ``ssl.SSLSocket``: the runtime reads in one thread while others write, and an
    OpenSSL connection must not be used by two threads at once (with TLS 1.3, a read that
    processes a post-handshake message while another thread writes can lose the write).
    Here every call into the TLS object holds ``_ssl_lock``, and only the socket I/O, which
    is thread-safe, blocks outside it: the reader waits in ``recv`` without the lock.
    ``_send_lock`` keeps the encrypted records in the order they were made.

    Server-side connections finish their handshake in the reader thread (see :meth:`read`),
    bounded by :data:`HANDSHAKE_TIMEOUT`; writers wait for it.
    """

    default_framing = "newline"

    def __init__(
        self,
        sock: socket.socket,
        context: ssl.SSLContext,
        description: str,
        *,
        server_side: bool,
        server_hostname: str | None = None,
    ) -> None:
        self._sock = sock
        self.description = description
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(
            self._incoming, self._outgoing, server_side=server_side, server_hostname=server_hostname
        )
        self._ssl_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._handshaken = threading.Event()
        self._handshake_error: BaseException | None = None
        self._aborted = False
        self._closed = False

    @property
    def ssl_object(self) -> ssl.SSLObject:
        """The TLS connection (``getpeercert()``, ``version()``, ``cipher()``, ...)."""
        return self._tls

    @property
    def socket(self) -> socket.socket:
        """The underlying TCP socket."""
        return self._sock

    # -- plumbing ----------------------------------------------------------------------

    def _flush(self, *, block: bool) -> None:
        """Send the records the TLS object produced. Non-blocking callers (the reader)
        leave them to whoever holds ``_send_lock``: it sends everything before leaving."""
        if not self._send_lock.acquire(blocking=block):
            return
        try:
            while True:
                with self._ssl_lock:
                    data = self._outgoing.read()
                    if not data:
                        # Released under _ssl_lock: records made after this point find
                        # the send lock free.
                        self._send_lock.release()
                        return
                self._sock.sendall(data)
        except BaseException:
            self._send_lock.release()
            raise

    def _receive_raw(self) -> bool:
        """Move bytes from the socket into the TLS object; False at end of stream."""
        data = self._sock.recv(READ_SIZE)
        if not data:
            return False
        with self._ssl_lock:
            self._incoming.write(data)
        return True

    def _receive_record(self) -> bool:
        """Move exactly one TLS record from the socket into the TLS object; False at end
        of stream. Used during the handshake so that nothing sent after it (the first
        request, a session ticket) is taken from the kernel early: code that waits for
        the socket to be readable (``websockets``) would then wait for data already here."""
        header = self._receive_exact(5)
        body = self._receive_exact(int.from_bytes(header[3:5], "big")) if header else None
        if header is None or body is None:
            return False
        with self._ssl_lock:
            self._incoming.write(header + body)
        return True

    def _receive_exact(self, size: int) -> bytes | None:
        data = b""
        while len(data) < size:
            chunk = self._sock.recv(size - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def read_buffered(self) -> bytes | None:
        """Plaintext that is already decrypted or buffered, without waiting; None if none."""
        with self._ssl_lock:
            try:
                return self._tls.read(READ_SIZE) or None
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                return None

    def handshake(self) -> None:
        """Complete the TLS handshake (in the calling thread).

        Raises:
            ssl.SSLError: the handshake failed (e.g. ``SSLCertVerificationError``).
            OSError: the connection failed or ended first.
        """
        try:
            while True:
                with self._ssl_lock:
                    try:
                        self._tls.do_handshake()
                        done = True
                    except ssl.SSLWantReadError:
                        done = False
                self._flush(block=True)
                if done:
                    return
                if not self._receive_record():
                    raise ConnectionResetError("connection closed during the TLS handshake")
        except BaseException as exc:
            self._handshake_error = exc
            raise
        finally:
            self._handshaken.set()

    # -- Transport ---------------------------------------------------------------------

    def read(self) -> bytes | None:
        try:
            if not self._handshaken.is_set():
                self._sock.settimeout(HANDSHAKE_TIMEOUT)
                self.handshake()
                self._sock.settimeout(None)
            while True:
                with self._ssl_lock:
                    before = self._incoming.pending
                    try:
                        data: bytes | None = self._tls.read(READ_SIZE)
                    except ssl.SSLWantReadError:
                        data = None
                    except ssl.SSLZeroReturnError:
                        return None  # the peer's close_notify
                    if data == b"":
                        # SSLObject.read() reports the peer's close_notify as b"" (it
                        # raises SSLZeroReturnError only in some versions): end of stream.
                        return None
                    pending = self._outgoing.pending
                    # OpenSSL can stop after a non-data record (a TLS 1.3 session ticket)
                    # with more records buffered: read again rather than wait for the
                    # socket, which may stay silent.
                    retry = data is None and 0 < self._incoming.pending < before
                if pending:
                    self._flush(block=False)  # e.g. a TLS 1.3 KeyUpdate answer
                if data:
                    return data
                if retry:
                    continue
                if not self._receive_raw():
                    return None
        except (OSError, ValueError):
            if self._aborted:
                return None
            raise

    def write(self, chunks: list[bytes]) -> None:
        # The TLS object must not write before the handshake another thread is doing.
        self._handshaken.wait()
        if self._aborted:
            raise ConnectionClosedError(f"{self.description} is closed")
        if self._handshake_error is not None:
            raise ConnectionClosedError("TLS handshake failed") from self._handshake_error
        with self._ssl_lock:
            for chunk in chunks:
                self._tls.write(chunk)
        self._flush(block=True)

    def abort(self) -> None:
        if self._aborted:
            return
        self._aborted = True
        if self._handshaken.is_set() and self._handshake_error is None:
            self._send_close_notify()
        # shutdown() wakes a reader blocked in recv() without freeing the descriptor.
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._handshaken.set()  # a writer waiting for the handshake must not wait forever

    def _send_close_notify(self) -> None:
        # Best effort, never blocking: tell the peer this is a clean end, not a cut.
        if not self._send_lock.acquire(blocking=False):
            return
        try:
            with self._ssl_lock:
                with contextlib.suppress(ssl.SSLError, ValueError):
                    self._tls.unwrap()
                data = self._outgoing.read()
            if data:
                with contextlib.suppress(OSError):
                    self._sock.send(data, getattr(socket, "MSG_DONTWAIT", 0))
        finally:
            self._send_lock.release()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.abort()
            self._sock.close()


class TLSSocket:
    """A socket-shaped view of a :class:`TLSTransport`, for libraries that want a socket
    (``websockets``): ``recv``, ``sendall``, ``shutdown``, ``close``; everything else goes
    to the TCP socket. Safe for one reading thread and any number of writing threads."""

    def __init__(self, transport: TLSTransport) -> None:
        self.transport = transport

    def recv(self, bufsize: int) -> bytes:
        data = self.transport.read()
        if not data:
            return b""
        # Return everything already buffered: the caller waits for the socket to be
        # readable before calling again, and buffered records would not wake it.
        parts = [data]
        while (more := self.transport.read_buffered()) is not None:
            parts.append(more)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def sendall(self, data: bytes | bytearray | memoryview) -> None:
        self.transport.write([bytes(data)])

    def send(self, data: bytes | bytearray | memoryview) -> int:
        self.sendall(data)
        return len(data)

    def shutdown(self, how: int) -> None:
        self.transport.socket.shutdown(how)

    def close(self) -> None:
        self.transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport.socket, name)


class ThreadSafeTLSContext:
    """Wraps an :class:`ssl.SSLContext` so that ``wrap_socket`` returns a
    :class:`TLSSocket` (handshake done) instead of an ``ssl.SSLSocket``; given to
    ``websockets`` as its ``ssl`` argument, whose threads read and write at once."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context

    def wrap_socket(
        self, sock: socket.socket, server_hostname: str | None = None, **ignored: Any
    ) -> TLSSocket:
        transport = TLSTransport(
            sock, self.context, "tls", server_side=False, server_hostname=server_hostname
        )
        transport.handshake()
        return TLSSocket(transport)


def connect_tls(
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    connect_timeout: float | None = None,
) -> TLSTransport:
    """Connect to ``host:port`` and complete the TLS handshake.

    Raises:
        ssl.SSLCertVerificationError: the server's certificate is not trusted.
        OSError: the connection or handshake failed.
    """
    context = ssl_context if ssl_context is not None else ssl.create_default_context()
    raw = socket.create_connection((host.strip("[]"), port), timeout=connect_timeout)
    try:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport = TLSTransport(
            raw,
            context,
            f"tls://{format_host(host)}:{port}",
            server_side=False,
            server_hostname=server_hostname or host.strip("[]"),
        )
        transport.handshake()
        raw.settimeout(None)
    except BaseException:
        raw.close()
        raise
    return transport


def listen_tls(
    host: str = "127.0.0.1", port: int = 0, *, ssl_context: ssl.SSLContext | None = None
) -> SocketListener:
    """Listen for TLS connections on ``host:port``.

    Raises:
        ValueError: no ``ssl_context`` (a server needs its certificate).
    """
    if ssl_context is None:
        raise ValueError(
            "tls:// listeners need ssl_context=: an ssl.SSLContext holding the server's "
            "certificate, e.g. ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH); "
            "ctx.load_cert_chain('cert.pem', 'key.pem')"
        )
    context = ssl_context

    def wrap(sock: socket.socket, address: Any) -> TLSTransport:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # No handshake here: it runs in the connection's reader thread (see read()).
        description = f"tls://{format_host(address[0])}:{address[1]}"
        return TLSTransport(sock, context, description, server_side=True)

    return listen_tcp(host, port, wrap=wrap, scheme="tls")


def connect_from_url(url: str, options: dict[str, Any]) -> TLSTransport:
    """Registry entry: ``tls://HOST:PORT`` (options ``ssl_context``, ``server_hostname``)."""
    host, port = split_host_port(url)
    return connect_tls(
        host,
        port,
        ssl_context=options.get("ssl_context"),
        server_hostname=options.get("server_hostname"),
        connect_timeout=options.get("connect_timeout"),
    )


def listen_from_url(url: str, options: dict[str, Any]) -> SocketListener:
    """Registry entry: listen on ``tls://HOST:PORT`` (option ``ssl_context`` required)."""
    host, port = split_host_port(url)
    return listen_tls(host, port, ssl_context=options.get("ssl_context"))
