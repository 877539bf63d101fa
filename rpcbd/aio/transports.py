"""Transports of the asyncio runtime: the async mirror of :mod:`rpcbd.transports.base`.

An :class:`AsyncTransport` is a byte pipe (or message pipe) with ``read`` / ``write`` /
``abort`` / ``aclose``. The runtime runs one reader task per connection that awaits
:meth:`AsyncTransport.read`, or, for a transport that pushes data (sockets: TCP, TLS,
Unix), that waits while the transport's ``asyncio.Protocol`` hands each chunk to the
runtime from ``data_received`` (:meth:`AsyncTransport.start_receiving`; one event-loop
iteration per message instead of two: the read and the reader task's wake-up). Output
goes straight to :meth:`AsyncTransport.write_nowait` when the transport has one (asyncio's
own ``transport.write()`` never blocks: it sends what the kernel takes and buffers the
rest); a writer task, started only when needed, awaits
:meth:`AsyncTransport.drain` or :meth:`AsyncTransport.write` (which return once the
transport has room again: the write side of back pressure). :meth:`AsyncTransport.abort`
is synchronous so that it can be called from anywhere on the loop; it makes a pending
``read`` return None.

The URL registry (:mod:`rpcbd.transports`) names the functions below as
``"rpcbd.aio.transports:connect_tcp"`` and so on; each is
``async def connect_x(url, options) -> AsyncTransport`` or
``async def listen_x(url, options) -> AsyncListenerBackend``.

Blocking transports (a threaded :class:`~rpcbd.transports.base.Transport`, pyserial) are
adapted by :class:`BlockingTransportAdapter`: a reader thread hands bytes to the loop with
``call_soon_threadsafe`` (no polling) and a writer thread does the blocking writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import shlex
import ssl
import sys
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from rpcbd.exceptions import ConnectionClosedError
from rpcbd.transports import split_host_port
from rpcbd.transports.base import Transport

__all__ = [
    "AsyncListenerBackend",
    "AsyncTransport",
    "BlockingTransportAdapter",
    "ExecTransport",
    "MemoryTransport",
    "SocketTransport",
    "StdioTransport",
    "StreamListener",
    "StreamTransport",
    "WebSocketListener",
    "WebSocketTransport",
    "connect_exec",
    "connect_serial",
    "connect_stdio",
    "connect_tcp",
    "connect_tls",
    "connect_unix",
    "connect_ws",
    "listen_tcp",
    "listen_tls",
    "listen_unix",
    "listen_ws",
    "memory_pair",
]

log = logging.getLogger("rpcbd")

#: Bytes asked of the stream per read.
READ_SIZE = 256 * 1024
#: Bytes an in-memory pipe direction (or an adapter's read queue) holds before the
#: writer waits.
DEFAULT_PIPE_CAPACITY = 4 * 1024 * 1024
#: Seconds ``aclose`` gives a closing stream before it is aborted.
CLOSE_TIMEOUT = 2.0

#: What a listener calls for each accepted connection.
OnTransport = Callable[["AsyncTransport"], None]


class AsyncTransport(ABC):
    """A connection to the peer, driven by the event loop.

    Attributes:
        message_based: True when each :meth:`read` returns one whole message and each item
            given to :meth:`write` is sent as one message (WebSocket, in-memory pipe).
        default_framing: the framing used when the user names none (stream transports).
        description: a short human-readable name of the peer.
        writes_nowait: True when :meth:`write_nowait` is available.
        pushes_data: True when the transport can call the runtime with each chunk as it
            arrives (:meth:`start_receiving`) instead of being awaited with :meth:`read`.
    """

    message_based: bool = False
    default_framing: str | None = "newline"
    description: str = ""
    writes_nowait: bool = False
    pushes_data: bool = False

    @abstractmethod
    async def read(self) -> bytes | str | None:
        """Wait for data; return a chunk (or one message), or None at end of stream.
        Raises OSError (or TransportError) if the connection failed."""

    @abstractmethod
    async def write(self, chunks: list[bytes]) -> None:
        """Send ``chunks`` in order and wait until the transport has room again (drain).

        Raises:
            OSError, TransportError: the connection is gone.
        """

    def write_nowait(self, chunks: list[bytes]) -> bool:
        """Hand ``chunks`` to the transport at once, in order, without waiting (only
        when :attr:`writes_nowait` is true).

        Returns:
            True when the transport now holds more than it wants: await :meth:`drain`
            before writing more.

        Raises:
            OSError, TransportError: the connection is gone.
            NotImplementedError: the transport has no such write.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot write without waiting")

    async def drain(self) -> None:
        """Wait until the transport has room again after :meth:`write_nowait` returned
        True.

        Raises:
            OSError, TransportError: the connection is gone.
        """
        # Without write_nowait there is nothing to wait for: write() itself waits.
        return

    def start_receiving(self, on_data: Callable[[bytes], None], on_end: Callable[[], None]) -> None:
        """Push mode (only when :attr:`pushes_data` is true): from the next
        :meth:`resume_reading` on, call ``on_data(chunk)`` on the loop for each chunk, in
        order, then ``on_end()`` once: at the end of the stream, when the connection was
        lost, or at once when :meth:`abort` is called (what was not delivered is dropped).
        Use either this or :meth:`read`, not both.

        Raises:
            NotImplementedError: the transport has no push mode.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot push data")

    def pause_reading(self) -> None:
        """Push mode: stop calling ``on_data`` (and stop reading, so the peer feels flow
        control) until :meth:`resume_reading`."""
        raise NotImplementedError(f"{type(self).__name__} cannot push data")

    def resume_reading(self) -> None:
        """Push mode: deliver what arrived meanwhile, then each chunk as it arrives.
        ``on_data`` may be called before this returns."""
        raise NotImplementedError(f"{type(self).__name__} cannot push data")

    @abstractmethod
    def abort(self) -> None:
        """Stop the connection now: a pending :meth:`read` returns None (or raises) and
        later writes fail. Idempotent; call it on the loop."""

    @abstractmethod
    async def aclose(self) -> None:
        """Free the resources (sockets, child processes, threads). Idempotent."""


class AsyncListenerBackend(ABC):
    """Accepts connections for an :class:`~rpcbd.aio.AsyncListener`.

    Attributes:
        address: the local address as the socket reports it.
        port: the real port (when 0 was asked) or None.
        url: a URL a client can pass to ``connect``.
    """

    address: object = None
    port: int | None = None
    url: str = ""

    @abstractmethod
    async def start(self, on_transport: OnTransport) -> None:
        """Start accepting; call ``on_transport`` (on the loop) for each connection."""

    @abstractmethod
    async def aclose(self) -> None:
        """Stop accepting and close the listening socket. Idempotent."""


def _format_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


# -- asyncio streams: stdio, exec ---------------------------------------------------


class StreamTransport(AsyncTransport):
    """An asyncio ``StreamReader`` / ``StreamWriter`` pair (pipes: stdio, exec)."""

    writes_nowait = True

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, description: str
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.description = description
        self._aborted = False
        self._closed = False

    @property
    def writer(self) -> asyncio.StreamWriter:
        """The underlying stream writer (``get_extra_info`` and friends)."""
        return self._writer

    async def read(self) -> bytes | None:
        if self._aborted:
            return None
        try:
            data = await self._reader.read(READ_SIZE)
        except (OSError, ConnectionClosedError):
            if self._aborted:
                return None
            raise
        return data or None

    async def write(self, chunks: list[bytes]) -> None:
        self.write_nowait(chunks)
        await self._writer.drain()

    def write_nowait(self, chunks: list[bytes]) -> bool:
        if self._aborted:
            raise ConnectionClosedError("connection closed")
        writer = self._writer
        if len(chunks) == 1:
            writer.write(chunks[0])
        else:
            writer.writelines(chunks)
        # The transport sent what the kernel took and buffers the rest; beyond its
        # high-water mark it pauses the protocol, and drain() waits.
        transport = writer.transport
        size = transport.get_write_buffer_size()
        return size > 0 and size > transport.get_write_buffer_limits()[1]

    async def drain(self) -> None:
        await self._writer.drain()

    def _wake_reader(self) -> None:
        # set_exception (not feed_eof) wakes a pending read: data that still arrives
        # afterwards is harmless, whereas feed_data after feed_eof is an error.
        self._reader.set_exception(ConnectionClosedError("connection closed"))

    def abort(self) -> None:
        if self._aborted:
            return
        self._aborted = True
        self._wake_reader()
        # close(), not transport.abort(): what the writer already wrote (the last reply
        # before a close, say) is still flushed; aclose() bounds how long that takes.
        self._writer.close()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.abort()
        # The close flushes what is buffered; a peer that does not read gets
        # CLOSE_TIMEOUT seconds, then the rest is dropped. A timer, not wait_for(): no
        # task per close.
        transport = self._writer.transport
        timer = asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, transport.abort)
        try:
            await self._writer.wait_closed()
        except Exception:  # closed with an error (reset, or aborted): nothing left to free
            pass
        finally:
            timer.cancel()


# -- sockets: tcp, tls, unix ---------------------------------------------------------------


class _SocketProtocol(asyncio.Protocol):
    """The asyncio protocol under a :class:`SocketTransport`.

    Incoming data is handed to the connection's callback from ``data_received`` itself:
    no ``StreamReader`` buffer, no reader task woken per chunk (one event-loop iteration
    per message instead of two). What arrives while nobody takes it (before
    :meth:`SocketTransport.start_receiving`, while reading is paused, or for
    :meth:`SocketTransport.read`) is buffered; beyond ``READ_SIZE`` bytes the socket stops
    being read, so the peer feels TCP flow control.
    """

    def __init__(self, on_made: Callable[[_SocketProtocol], None] | None = None) -> None:
        self._on_made = on_made
        self.transport: asyncio.Transport | None = None
        self._over_ssl = False
        # Input: chunks nobody took yet, and how the end of the stream is to be told.
        self._buffer: deque[bytes] = deque()
        self._buffered = 0
        self._on_data: Callable[[bytes], None] | None = None
        self._on_end: Callable[[], None] | None = None
        self._delivering = False  # push mode and not paused: data_received calls _on_data
        self._eof = False  # the peer's stream ended (or the connection was lost)
        self._end_told = False
        self._read_waiter: asyncio.Future[None] | None = None
        self.aborted = False
        # Output: pause_writing / resume_writing, as StreamWriter.drain() sees them.
        self.write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self.lost = False
        self.error: Exception | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # -- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._over_ssl = transport.get_extra_info("sslcontext") is not None
        if self._on_made is not None:
            self._on_made(self)

    def data_received(self, data: bytes) -> None:
        if self._delivering and not self._buffer:
            self._on_data(data)  # type: ignore[misc]  # set whenever _delivering is
            return
        if self.aborted:
            return
        self._buffer.append(data)
        self._buffered += len(data)
        if self._buffered > READ_SIZE and self.transport is not None:
            self.transport.pause_reading()
        self._wake_read_waiter()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake_read_waiter()
        self._tell_end()
        # As StreamReaderProtocol: keep a plain socket open for our last writes (the
        # runtime closes it); over TLS asyncio closes it anyway.
        return not self._over_ssl

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.error = exc
        self._eof = True
        self._wake_read_waiter()
        self._tell_end()
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionResetError("Connection lost") if exc is None else exc)
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- for SocketTransport -----------------------------------------------------------

    def _wake_read_waiter(self) -> None:
        waiter = self._read_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _tell_end(self) -> None:
        """Tell the end of the stream once, after every chunk (at once when aborted:
        what is buffered then is dropped)."""
        if self._on_end is None or self._end_told:
            return
        if self.aborted or (self._eof and self._delivering and not self._buffer):
            self._end_told = True
            self._on_end()

    def start(self, on_data: Callable[[bytes], None], on_end: Callable[[], None]) -> None:
        self._on_data = on_data
        self._on_end = on_end
        self._tell_end()  # already aborted

    def pause(self) -> None:
        self._delivering = False
        if self.transport is not None:
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.aborted:
            return
        self._delivering = True
        buffer = self._buffer
        while buffer and self._delivering and not self.aborted:
            data = buffer.popleft()
            self._buffered -= len(data)
            self._on_data(data)  # type: ignore[misc]  # start() came first
        if self._delivering and not self.aborted:
            if self._eof:
                self._tell_end()
            elif self.transport is not None:
                self.transport.resume_reading()

    async def read(self) -> bytes | None:
        while not self._buffer:
            if self.aborted:
                return None
            if self._eof:
                if self.error is not None:
                    raise self.error
                return None
            self._read_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._read_waiter
            finally:
                self._read_waiter = None
        if self.aborted:
            return None
        data = b"".join(self._buffer)
        self._buffer.clear()
        self._buffered = 0
        if not self._eof and self.transport is not None:
            self.transport.resume_reading()
        return data

    def abort(self) -> None:
        self.aborted = True
        self._delivering = False
        self._buffer.clear()
        self._buffered = 0
        self._wake_read_waiter()
        self._tell_end()

    async def drain(self) -> None:
        if self.aborted:
            raise ConnectionClosedError("connection closed")
        if self.lost:
            raise ConnectionResetError("Connection lost") if self.error is None else self.error
        if not self.write_paused:
            return
        self._drain_waiter = asyncio.get_running_loop().create_future()
        try:
            await self._drain_waiter
        finally:
            self._drain_waiter = None
        if self.aborted:
            raise ConnectionClosedError("connection closed")


class SocketTransport(AsyncTransport):
    """A TCP, TLS or Unix socket, read by an ``asyncio.Protocol``.

    It pushes data (:attr:`pushes_data`): the connection's callback runs from the
    protocol's ``data_received``, in the same turn of the event loop as the read.
    :meth:`read` works too (a transport used on its own).
    """

    writes_nowait = True
    pushes_data = True

    def __init__(self, protocol: _SocketProtocol, description: str) -> None:
        assert protocol.transport is not None
        self._protocol = protocol
        self._transport: asyncio.Transport = protocol.transport
        self.description = description
        self._closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """The asyncio transport's extra information (``peername``, ``ssl_object``...)."""
        return self._transport.get_extra_info(name, default)

    async def read(self) -> bytes | None:
        return await self._protocol.read()

    def start_receiving(self, on_data: Callable[[bytes], None], on_end: Callable[[], None]) -> None:
        self._protocol.start(on_data, on_end)

    def pause_reading(self) -> None:
        self._protocol.pause()

    def resume_reading(self) -> None:
        self._protocol.resume()

    async def write(self, chunks: list[bytes]) -> None:
        self.write_nowait(chunks)
        await self._protocol.drain()

    def write_nowait(self, chunks: list[bytes]) -> bool:
        if self._protocol.aborted:
            raise ConnectionClosedError("connection closed")
        if len(chunks) == 1:
            self._transport.write(chunks[0])
        else:
            self._transport.writelines(chunks)
        # The transport sent what the kernel took and buffers the rest; beyond its
        # high-water mark it pauses the protocol (pause_writing), and drain() waits.
        return self._protocol.write_paused

    async def drain(self) -> None:
        await self._protocol.drain()

    def abort(self) -> None:
        if self._protocol.aborted:
            return
        self._protocol.abort()
        # close(), not transport.abort(): what was already written (the last reply
        # before a close, say) is still flushed; aclose() bounds how long that takes.
        self._transport.close()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.abort()
        # The close flushes what is buffered; a peer that does not read gets
        # CLOSE_TIMEOUT seconds, then the rest is dropped. A timer, not wait_for(): no
        # task per close.
        transport = self._transport
        timer = asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, transport.abort)
        try:
            await self._protocol.closed
        finally:
            timer.cancel()


class StreamListener(AsyncListenerBackend):
    """An ``asyncio.Server`` (from ``create_server`` or ``create_unix_server``) whose
    accepted connections are :class:`SocketTransport` objects."""

    def __init__(
        self,
        start: Callable[..., Awaitable[asyncio.Server]],
        describe: Callable[[asyncio.BaseTransport], str],
        url: str,
        cleanup: Callable[[], None] | None = None,
    ) -> None:
        self._start = start
        self._describe = describe
        self.url = url
        self._cleanup = cleanup
        self._server: asyncio.Server | None = None
        self._on_transport: OnTransport | None = None
        self._closed = False

    async def bind(self) -> None:
        """Bind and listen (not accepting yet), so ``address`` and ``port`` are known."""
        self._server = await self._start(
            lambda: _SocketProtocol(self._accepted), start_serving=False
        )
        sockets = self._server.sockets
        if sockets:
            self.address = sockets[0].getsockname()

    def _accepted(self, protocol: _SocketProtocol) -> None:
        assert protocol.transport is not None
        transport = SocketTransport(protocol, self._describe(protocol.transport))
        if self._on_transport is None or self._closed:
            transport.abort()
            return
        self._on_transport(transport)

    async def start(self, on_transport: OnTransport) -> None:
        assert self._server is not None
        self._on_transport = on_transport
        await self._server.start_serving()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            # close() closes the listening sockets at once. Not wait_closed(): since
            # Python 3.12 it also waits for the accepted connections, which stay open
            # (the runtime closes them itself).
            self._server.close()
        if self._cleanup is not None:
            self._cleanup()


def _peer_description(scheme: str) -> Callable[[asyncio.BaseTransport], str]:
    def describe(transport: asyncio.BaseTransport) -> str:
        address = transport.get_extra_info("peername")
        if isinstance(address, tuple) and len(address) >= 2:
            return f"{scheme}://{_format_host(str(address[0]))}:{address[1]}"
        return f"{scheme}:{address or ''}"

    return describe


async def _open_tcp(
    url: str, options: dict[str, Any], ssl_context: ssl.SSLContext | None, scheme: str
) -> SocketTransport:
    host, port = split_host_port(url)
    kwargs: dict[str, Any] = {}
    if ssl_context is not None:
        kwargs["ssl"] = ssl_context
        kwargs["server_hostname"] = options.get("server_hostname") or host
    # asyncio sets TCP_NODELAY on its TCP transports (since 3.7): requests and replies
    # are small and latency-bound.
    connect = asyncio.get_running_loop().create_connection(_SocketProtocol, host, port, **kwargs)
    timeout = options.get("connect_timeout")
    _, protocol = await (connect if timeout is None else asyncio.wait_for(connect, timeout))
    return SocketTransport(protocol, f"{scheme}://{_format_host(host)}:{port}")


async def _listen_tcp(url: str, ssl_context: ssl.SSLContext | None, scheme: str) -> StreamListener:
    host, port = split_host_port(url)

    def start(factory: Any, **kwargs: Any) -> Awaitable[asyncio.Server]:
        return asyncio.get_running_loop().create_server(
            factory, host, port, ssl=ssl_context, backlog=1024, **kwargs
        )

    listener = StreamListener(start, _peer_description(scheme), "")
    await listener.bind()
    assert isinstance(listener.address, tuple)
    bound_host, bound_port = listener.address[:2]
    listener.port = bound_port
    listener.url = f"{scheme}://{_format_host(bound_host)}:{bound_port}"
    return listener


async def connect_tcp(url: str, options: dict[str, Any]) -> SocketTransport:
    """Connect to ``tcp://HOST:PORT`` (``connect_timeout`` option bounds the connect)."""
    return await _open_tcp(url, options, None, "tcp")


async def listen_tcp(url: str, options: dict[str, Any]) -> StreamListener:
    """Listen on ``tcp://HOST:PORT`` (loopback unless a host is named; port 0 picks one)."""
    return await _listen_tcp(url, None, "tcp")


async def connect_tls(url: str, options: dict[str, Any]) -> SocketTransport:
    """Connect to ``tls://HOST:PORT`` with ``ssl_context`` (default: the system's CAs)."""
    context = options.get("ssl_context") or ssl.create_default_context()
    return await _open_tcp(url, options, context, "tls")


async def listen_tls(url: str, options: dict[str, Any]) -> StreamListener:
    """Listen on ``tls://HOST:PORT``; the ``ssl_context`` option (server side) is required.

    Raises:
        ValueError: no ``ssl_context``.
    """
    context = options.get("ssl_context")
    if context is None:
        raise ValueError("listening on tls:// needs ssl_context= (a server-side SSLContext)")
    return await _listen_tcp(url, context, "tls")


def _unix_path(url: str) -> str:
    parts = urlsplit(url)
    path = unquote(parts.netloc + parts.path) if parts.netloc else unquote(parts.path)
    if not path:
        raise ValueError(f"{url!r} names no socket path, e.g. unix:///tmp/rpcbd.sock")
    return path


async def connect_unix(url: str, options: dict[str, Any]) -> SocketTransport:
    """Connect to the Unix domain socket ``unix:///path``."""
    path = _unix_path(url)
    connect = asyncio.get_running_loop().create_unix_connection(_SocketProtocol, path)
    timeout = options.get("connect_timeout")
    _, protocol = await (connect if timeout is None else asyncio.wait_for(connect, timeout))
    return SocketTransport(protocol, f"unix://{path}")


async def listen_unix(url: str, options: dict[str, Any]) -> StreamListener:
    """Listen on the Unix domain socket ``unix:///path`` (removed again on close)."""
    path = _unix_path(url)

    def start(factory: Any, **kwargs: Any) -> Awaitable[asyncio.Server]:
        return asyncio.get_running_loop().create_unix_server(factory, path, **kwargs)

    def cleanup() -> None:
        with contextlib.suppress(OSError):
            os.unlink(path)

    listener = StreamListener(start, lambda _: f"unix://{path}", f"unix://{path}", cleanup)
    await listener.bind()
    listener.address = path
    return listener


async def _pipe_streams(
    read_pipe: Any, write_pipe: Any
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=READ_SIZE)
    protocol = asyncio.StreamReaderProtocol(reader)
    await loop.connect_read_pipe(lambda: protocol, read_pipe)
    write_transport, write_protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, write_pipe
    )
    writer = asyncio.StreamWriter(write_transport, write_protocol, reader, loop)
    return reader, writer


class StdioTransport(StreamTransport):
    """This process's stdin and stdout; stdout is kept for the protocol while open.

    As in the threaded runtime (:mod:`rpcbd.transports.stdio`), descriptor 1 and
    ``sys.stdout`` point at stderr while the connection is open, so a stray ``print()``
    cannot corrupt the stream; :meth:`aclose` restores them.
    """

    default_framing = "content-length"

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        restore_fd: int,
        saved_stdout: Any,
    ) -> None:
        super().__init__(reader, writer, "stdio:")
        self._restore_fd = restore_fd
        self._saved_stdout = saved_stdout

    async def aclose(self) -> None:
        if self._closed:
            return
        await super().aclose()
        with contextlib.suppress(OSError):
            os.dup2(self._restore_fd, 1)  # stdout is stdout again
            os.close(self._restore_fd)
            # asyncio made the shared open file descriptions non-blocking.
            os.set_blocking(1, True)
            os.set_blocking(0, True)
        sys.stdout = self._saved_stdout


async def connect_stdio(url: str, options: dict[str, Any]) -> StdioTransport:
    """This process's stdin and stdout (content-length framing by default).

    The protocol uses private duplicates of descriptors 0 and 1; while the connection is
    open, descriptor 1 and ``sys.stdout`` go to stderr (log to stderr too). Both must be
    pipes, sockets or terminals (asyncio cannot watch a regular file): redirect a file
    with ``cat file | program``.

    Raises:
        ValueError: stdin or stdout is a regular file.
    """
    for stream in (sys.stdout, sys.__stdout__):
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.flush()
    stdin = os.fdopen(os.dup(0), "rb", buffering=0)
    stdout = os.fdopen(os.dup(1), "wb", buffering=0)
    restore_fd = os.dup(1)
    try:
        reader, writer = await _pipe_streams(stdin, stdout)
    except BaseException:
        stdin.close()
        stdout.close()
        os.close(restore_fd)
        raise
    os.dup2(2, 1)
    saved_stdout = sys.stdout
    sys.stdout = sys.stderr
    return StdioTransport(reader, writer, restore_fd, saved_stdout)


class ExecTransport(StreamTransport):
    """A child process's stdin/stdout; ``aclose`` reaps it.

    Reaping: close the child's stdin (a well-behaved server exits on end of input), wait
    ``kill_timeout`` seconds, terminate, wait again, kill.
    """

    default_framing = "content-length"

    def __init__(self, process: asyncio.subprocess.Process, description: str, kill_timeout: float):
        assert process.stdout is not None and process.stdin is not None
        super().__init__(process.stdout, process.stdin, description)
        self.process = process
        self._kill_timeout = kill_timeout
        # abort() is the stream transport's: closing the writer closes the child's stdin
        # (after what was written), which tells the child to finish; aclose() reaps it.

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.abort()
        process = self.process
        for step in (None, process.terminate, process.kill):
            if step is not None:
                with contextlib.suppress(ProcessLookupError):
                    step()
            try:
                await asyncio.wait_for(process.wait(), self._kill_timeout)
                break
            except asyncio.TimeoutError:
                continue
        if process.returncode is None:  # pragma: no cover - kill never fails on POSIX
            await process.wait()


async def connect_exec(url: str, options: dict[str, Any]) -> ExecTransport:
    """Start ``exec:CMD ARGS`` (split with :func:`shlex.split`) and talk over its stdio.

    Options: ``env``, ``cwd``, ``stderr`` (a file object or descriptor; default: inherit),
    ``kill_timeout`` (seconds between the reaping steps, default 2).
    """
    command = url.partition(":")[2]
    argv = shlex.split(command)
    if not argv:
        raise ValueError("exec: needs a command, e.g. exec:python -m mytool")
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=options.get("stderr"),
        env=options.get("env"),
        cwd=options.get("cwd"),
        limit=READ_SIZE,
    )
    kill_timeout = options.get("kill_timeout")
    return ExecTransport(
        process, f"exec:{shlex.join(argv)}", 2.0 if kill_timeout is None else kill_timeout
    )


# -- in-memory pipes -----------------------------------------------------------------------


class _Channel:
    """One direction of an in-memory pipe: a bounded queue of messages."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.messages: deque[bytes] = deque()
        self.size = 0
        self.closed = False
        self.readable = asyncio.Event()
        self.writable = asyncio.Event()
        self.writable.set()

    def put_nowait(self, chunks: list[bytes]) -> bool:
        """Queue ``chunks`` at once, even beyond the capacity; True when over it (then
        await :meth:`drain`)."""
        if self.closed:
            raise ConnectionClosedError("in-memory pipe closed")
        for chunk in chunks:
            self.messages.append(chunk)
            self.size += len(chunk)
        self.readable.set()
        return self.size > self.capacity

    async def drain(self) -> None:
        """Wait until the queue is within its capacity again."""
        while self.size > self.capacity and not self.closed:
            self.writable.clear()
            await self.writable.wait()
        if self.closed:
            raise ConnectionClosedError("in-memory pipe closed")

    async def put(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            # Always accept into an empty queue, so one message larger than the capacity
            # still gets through.
            while self.size and self.size + len(chunk) > self.capacity and not self.closed:
                self.writable.clear()
                await self.writable.wait()
            if self.closed:
                raise ConnectionClosedError("in-memory pipe closed")
            self.messages.append(chunk)
            self.size += len(chunk)
        self.readable.set()

    async def get(self) -> bytes | None:
        while not self.messages:
            if self.closed:
                return None
            self.readable.clear()
            await self.readable.wait()
        message = self.messages.popleft()
        self.size -= len(message)
        self.writable.set()
        return message

    def close(self) -> None:
        self.closed = True
        self.readable.set()
        self.writable.set()


class MemoryTransport(AsyncTransport):
    """One end of an in-memory message pipe (see :func:`memory_pair`)."""

    message_based = True
    default_framing = None
    writes_nowait = True

    def __init__(self, incoming: _Channel, outgoing: _Channel, description: str) -> None:
        self._incoming = incoming
        self._outgoing = outgoing
        self.description = description

    async def read(self) -> bytes | None:
        return await self._incoming.get()

    async def write(self, chunks: list[bytes]) -> None:
        await self._outgoing.put(chunks)

    def write_nowait(self, chunks: list[bytes]) -> bool:
        return self._outgoing.put_nowait(chunks)

    async def drain(self) -> None:
        await self._outgoing.drain()

    def abort(self) -> None:
        # Both directions: our reader sees end of stream, and so does the other end's.
        self._incoming.close()
        self._outgoing.close()

    async def aclose(self) -> None:
        self.abort()


def memory_pair(capacity: int = DEFAULT_PIPE_CAPACITY) -> tuple[MemoryTransport, MemoryTransport]:
    """Two connected in-memory transports (call with a running loop)."""
    a_to_b = _Channel(capacity)
    b_to_a = _Channel(capacity)
    return (
        MemoryTransport(b_to_a, a_to_b, "pipe:a"),
        MemoryTransport(a_to_b, b_to_a, "pipe:b"),
    )


# -- blocking transports, adapted with threads ----------------------------------------------


class BlockingTransportAdapter(AsyncTransport):
    """Runs a blocking :class:`~rpcbd.transports.base.Transport` for the event loop.

    A reader thread blocks in ``transport.read()`` and hands each chunk to the loop with
    ``call_soon_threadsafe`` (the loop never polls); it waits while ``capacity`` bytes are
    unread, so back pressure reaches the peer. A writer thread does the blocking writes;
    :meth:`write` resolves once its chunks are written. Used for serial lines and to join
    a threaded in-memory pipe to an asyncio connection.

    Must be created on the running loop that will read it.
    """

    def __init__(self, transport: Transport, capacity: int = DEFAULT_PIPE_CAPACITY) -> None:
        self._transport = transport
        self.message_based = transport.message_based
        self.default_framing = transport.default_framing
        self.description = transport.description
        self._loop = asyncio.get_running_loop()
        self._capacity = capacity
        self._room = threading.Condition(threading.Lock())
        self._unread = 0
        self._chunks: deque[bytes | str | BaseException | None] = deque()
        self._readable = asyncio.Event()
        self._writes: queue.SimpleQueue[tuple[list[bytes], asyncio.Future[None]] | None] = (
            queue.SimpleQueue()
        )
        self._aborted = False
        self._closed = False
        self._reader_done: asyncio.Future[None] = self._loop.create_future()
        self._writer_done: asyncio.Future[None] = self._loop.create_future()
        self._reader = threading.Thread(
            target=self._read_thread, name=f"rpcbd-aio-reader {self.description}", daemon=True
        )
        self._writer = threading.Thread(
            target=self._write_thread, name=f"rpcbd-aio-writer {self.description}", daemon=True
        )
        self._reader.start()
        self._writer.start()

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens
            self._loop.call_soon_threadsafe(callback, *args)

    def _read_thread(self) -> None:
        try:
            while True:
                try:
                    data: bytes | str | BaseException | None = self._transport.read()
                except Exception as exc:
                    data = None if self._aborted else exc
                with self._room:
                    # Back pressure: stop reading while the loop has not taken enough.
                    while self._unread >= self._capacity and not self._aborted:
                        self._room.wait()
                    if isinstance(data, (bytes, str)):
                        self._unread += len(data)
                self._post(self._deliver, data)
                if not isinstance(data, (bytes, str)):
                    return
        finally:
            self._post(_resolve, self._reader_done)

    def _deliver(self, data: bytes | str | BaseException | None) -> None:
        self._chunks.append(data)
        self._readable.set()

    async def read(self) -> bytes | str | None:
        while not self._chunks:
            if self._aborted:
                return None
            self._readable.clear()
            await self._readable.wait()
        data = self._chunks.popleft()
        if isinstance(data, BaseException):
            raise data
        if data is not None:
            with self._room:
                self._unread -= len(data)
                self._room.notify()
        else:
            self._chunks.appendleft(None)  # end of stream stays the answer
        return data

    def _write_thread(self) -> None:
        try:
            while True:
                item = self._writes.get()
                if item is None:
                    return
                chunks, future = item
                try:
                    if self._aborted:
                        raise ConnectionClosedError("connection closed")
                    self._transport.write(chunks)
                except BaseException as exc:
                    self._post(_fail, future, exc)
                else:
                    self._post(_resolve, future)
        finally:
            self._post(_resolve, self._writer_done)

    async def write(self, chunks: list[bytes]) -> None:
        if self._aborted:
            raise ConnectionClosedError("connection closed")
        future: asyncio.Future[None] = self._loop.create_future()
        self._writes.put((chunks, future))
        await future

    def abort(self) -> None:
        if self._aborted:
            return
        self._aborted = True
        self._transport.abort()  # wakes the reader thread
        self._writes.put(None)
        with self._room:
            self._room.notify_all()
        self._readable.set()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.abort()
        # Wait for the threads without blocking the loop: each resolves a future as it
        # ends; then join() returns at once.
        await asyncio.wait([self._reader_done, self._writer_done], timeout=CLOSE_TIMEOUT)
        self._transport.close()
        for thread in (self._reader, self._writer):
            if self._reader_done.done() if thread is self._reader else self._writer_done.done():
                thread.join()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _fail(future: asyncio.Future[None], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


# -- serial ------------------------------------------------------------------------------


class _SerialTransport(Transport):
    """A pyserial port as a blocking transport (read blocks until a byte arrives)."""

    def __init__(self, port: Any, description: str) -> None:
        self._port = port
        self.description = description
        self._aborted = False

    def read(self) -> bytes | None:
        port = self._port
        try:
            # timeout=None: block until at least one byte, then take what is buffered.
            data: bytes = port.read(max(1, port.in_waiting))
        except Exception:
            if self._aborted:
                return None
            raise
        if not data:
            return None if self._aborted else b""
        return data

    def write(self, chunks: list[bytes]) -> None:
        self._port.write(b"".join(chunks))
        self._port.flush()

    def abort(self) -> None:
        if self._aborted:
            return
        self._aborted = True
        cancel = getattr(self._port, "cancel_read", None)
        if cancel is not None:
            with contextlib.suppress(Exception):
                cancel()
        else:
            with contextlib.suppress(Exception):
                self._port.close()  # socket:// and friends: closing wakes the read

    def close(self) -> None:
        self.abort()
        with contextlib.suppress(Exception):
            self._port.close()


async def connect_serial(url: str, options: dict[str, Any]) -> BlockingTransportAdapter:
    """Open a serial line: ``serial:///dev/ttyUSB0?baudrate=115200`` or any pyserial URL
    (``loop://``, ``socket://host:port``, ``rfc2217://``, ``spy://``).

    Options: ``baudrate`` (overridden by ``?baudrate=`` in the URL).

    Raises:
        ImportError: pyserial is not installed (``pip install pyserial``).
    """
    try:
        import serial
    except ImportError as exc:  # pragma: no cover - pyserial is a dependency
        raise ImportError("serial URLs need pyserial: pip install pyserial") from exc
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    baudrate = int(query.pop("baudrate", options.get("baudrate") or 9600))
    # serial:///dev/ttyUSB0 names a device; pyserial's own URLs pass through unchanged.
    target = unquote(parts.netloc + parts.path) if parts.scheme == "serial" else url
    loop = asyncio.get_running_loop()

    def open_port() -> Any:
        return serial.serial_for_url(target, baudrate=baudrate, timeout=None)

    # Opening may block (rfc2217 negotiates): keep it off the loop, in a short-lived thread.
    done: asyncio.Future[Any] = loop.create_future()

    def opener() -> None:
        try:
            port = open_port()
        except BaseException as exc:
            loop.call_soon_threadsafe(_fail, done, exc)
        else:
            loop.call_soon_threadsafe(done.set_result, port)

    thread = threading.Thread(target=opener, name="rpcbd-aio-serial-open", daemon=True)
    thread.start()
    try:
        port = await done
    finally:
        thread.join()
    return BlockingTransportAdapter(_SerialTransport(port, url))


# -- WebSocket -------------------------------------------------------------------------------


def _import_websockets() -> Any:
    try:
        import websockets.asyncio.client
        import websockets.asyncio.server
    except ImportError as exc:  # pragma: no cover - websockets is a dependency
        raise ImportError("ws:// and wss:// URLs need websockets: pip install websockets") from exc
    return websockets


class WebSocketTransport(AsyncTransport):
    """A WebSocket connection from ``websockets.asyncio``: one JSON-RPC message per frame.

    Messages are sent as text frames (JSON is UTF-8 text); text and binary frames are
    both read.
    """

    message_based = True
    default_framing = None

    def __init__(self, connection: Any, description: str) -> None:
        self._connection = connection
        self.description = description
        self._aborted = False
        self._closed = False
        self._closing: asyncio.Future[None] | None = None
        self.finished = asyncio.Event()

    async def read(self) -> bytes | str | None:
        if self._aborted:
            return None
        websockets = _import_websockets()
        try:
            message: bytes | str = await self._connection.recv()
        except websockets.exceptions.ConnectionClosed:
            return None
        return message

    async def write(self, chunks: list[bytes]) -> None:
        if self._aborted:
            raise ConnectionClosedError("connection closed")
        websockets = _import_websockets()
        try:
            for chunk in chunks:
                await self._connection.send(chunk.decode("utf-8"))
        except websockets.exceptions.ConnectionClosed as exc:
            raise ConnectionClosedError(f"WebSocket closed: {exc}") from exc

    def abort(self) -> None:
        if self._aborted:
            return
        self._aborted = True
        self.finished.set()
        # Start the closing handshake; a pending recv() ends when it completes (or when
        # aclose() gives up on it and drops the TCP connection).
        self._closing = asyncio.ensure_future(self._connection.close())

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.abort()
        assert self._closing is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._closing), CLOSE_TIMEOUT)
        except Exception:
            self._closing.cancel()
            with contextlib.suppress(BaseException):
                await self._closing
        # The WebSocket closing handshake is done (or timed out): drop the TCP connection
        # now rather than wait for a TLS close_notify exchange that some peers never
        # finish (the server is the side that closes TCP first, RFC 6455 7.1.1).
        self._connection.transport.abort()


class WebSocketListener(AsyncListenerBackend):
    """A ``websockets.asyncio.server`` server.

    The handshake is checked as by the threaded listener: a path other than the URL's
    gets 404; an ``Origin`` refused by the policy of API.md 8b (or not in ``origins=``)
    gets 403; ``authenticate(request) -> bool`` returning False gets 401. (The threaded
    listener's static-file bridge for browsers is not served here.)"""

    def __init__(self, url: str, options: dict[str, Any], ssl_context: Any) -> None:
        parts = urlsplit(url)
        self._scheme = parts.scheme
        self._host = (parts.hostname or "127.0.0.1").strip("[]")
        self._requested_port = parts.port or 0
        self._path = parts.path or "/"
        self._options = options
        self._ssl = ssl_context
        self._server: Any = None
        self._on_transport: OnTransport | None = None
        self._closed = False

    async def bind(self) -> None:
        """Bind and listen, so ``address`` and ``port`` are known."""
        websockets = _import_websockets()
        self._server = await websockets.asyncio.server.serve(
            self._handle,
            self._host,
            self._requested_port,
            ssl=self._ssl,
            process_request=self._check_request,
            max_size=self._options.get("max_message_size"),
            ping_interval=self._options.get("ping_interval"),
            ping_timeout=self._options.get("ping_timeout"),
            compression=None,
        )
        sockets = list(self._server.sockets)
        address = sockets[0].getsockname()
        self.address = address
        self.port = int(address[1])
        self.url = f"{self._scheme}://{_format_host(str(address[0]))}:{self.port}{self._path}"

    def _check_request(self, connection: Any, request: Any) -> Any:
        # The same rules as the threaded listener (rpcbd.transports.websocket): the path,
        # then the origin policy of API.md 8b, then the authenticate hook.
        from rpcbd.transports.websocket import origin_allowed

        if request.path.partition("?")[0] != self._path:
            return connection.respond(HTTPStatus.NOT_FOUND, "No WebSocket endpoint here.\n")
        origin = request.headers.get("Origin")
        if not origin_allowed(
            origin, request.headers.get("Host"), self._options.get("origins"), self._ssl is not None
        ):
            log.warning("refused a WebSocket handshake from origin %r", origin)
            return connection.respond(HTTPStatus.FORBIDDEN, "Origin not allowed.\n")
        authenticate = self._options.get("authenticate")
        if authenticate is not None:
            try:
                allowed = bool(authenticate(request))
            except Exception:
                log.exception("the authenticate hook raised")
                allowed = False
            if not allowed:
                return connection.respond(HTTPStatus.UNAUTHORIZED, "Authentication failed.\n")
        return None

    async def _handle(self, connection: Any) -> None:
        address = connection.remote_address
        description = f"{self._scheme}://{_format_host(str(address[0]))}:{address[1]}"
        transport = WebSocketTransport(connection, description)
        if self._on_transport is None or self._closed:
            return
        self._on_transport(transport)
        # websockets closes the connection when this handler returns.
        await transport.finished.wait()

    async def start(self, on_transport: OnTransport) -> None:
        self._on_transport = on_transport

    async def aclose(self) -> None:
        if self._closed or self._server is None:
            return
        self._closed = True
        self._server.close(close_connections=False)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._server.wait_closed()), 0.1)


async def connect_ws(url: str, options: dict[str, Any]) -> WebSocketTransport:
    """Connect to ``ws://`` or ``wss://`` (``ssl_context`` for wss)."""
    websockets = _import_websockets()
    kwargs: dict[str, Any] = {}
    if url.startswith("wss:") and options.get("ssl_context") is not None:
        kwargs["ssl"] = options["ssl_context"]
    connection = await websockets.asyncio.client.connect(
        url,
        max_size=options.get("max_message_size"),
        ping_interval=options.get("ping_interval"),
        ping_timeout=options.get("ping_timeout"),
        open_timeout=options.get("connect_timeout") or 10,
        compression=None,
        proxy=None,
        **kwargs,
    )
    return WebSocketTransport(connection, url)


async def listen_ws(url: str, options: dict[str, Any]) -> WebSocketListener:
    """Listen for WebSocket connections on ``ws://HOST:PORT/path`` (``wss://`` needs
    ``ssl_context``). Options: ``origins``, ``authenticate``, ``ping_interval``."""
    ssl_context = options.get("ssl_context")
    if url.startswith("wss:") and ssl_context is None:
        raise ValueError("listening on wss:// needs ssl_context= (a server-side SSLContext)")
    listener = WebSocketListener(url, options, ssl_context if url.startswith("wss:") else None)
    await listener.bind()
    return listener
