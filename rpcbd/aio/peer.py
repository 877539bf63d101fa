"""The asyncio peer: listeners, connections and the thread pool of ``@mayblock`` handlers."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import shlex
import signal
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, overload

from rpcbd.aio.connection import AsyncConnection
from rpcbd.aio.transports import (
    AsyncListenerBackend,
    AsyncTransport,
    BlockingTransportAdapter,
    memory_pair,
)
from rpcbd.calls import USE_DEFAULT as _USE_DEFAULT
from rpcbd.codecs.base import Dialect
from rpcbd.codecs.jsonrpc2 import JSONRPC_V2
from rpcbd.codecs.serializer import Serializer, default_serializer
from rpcbd.dispatch import MethodInfo, method_table
from rpcbd.exceptions import LocalProtocolError
from rpcbd.threaded.connection import Connection
from rpcbd.threaded.peer import DEFAULT_OPTIONS, ThreadedPeer, _merge_options
from rpcbd.threaded.pool import WorkerPool
from rpcbd.transports import lookup_transport
from rpcbd.transports.memory import memory_pair as threaded_memory_pair

__all__ = ["AsyncListener", "AsyncPeer", "pipe_pair"]

log = logging.getLogger("rpcbd")


class AsyncListener:
    """A listening endpoint of an :class:`AsyncPeer`.

    Attributes:
        address: the local address as the socket reports it.
        port: the real port (when 0 was asked), or None for non-TCP listeners.
        url: a URL clients can ``connect`` to.
    """

    def __init__(
        self,
        peer: AsyncPeer,
        backend: AsyncListenerBackend,
        *,
        handlers: list[type],
        methods: dict[str, MethodInfo],
        options: dict[str, Any],
        default_timeout: Any,
    ) -> None:
        self._peer = peer
        self._backend = backend
        self._handlers = handlers
        self._methods = methods
        self._options = options
        self._default_timeout = default_timeout
        # Insertion-ordered. A connection leaves when it has finished closing (not by a
        # scan on every accept, which made accepting n connections O(n^2)).
        self._connections: dict[AsyncConnection, None] = {}
        self._closed = False
        self._closing: asyncio.Task[None] | None = None
        self.address = backend.address
        self.port = backend.port
        self.url = backend.url

    @property
    def connections(self) -> list[AsyncConnection]:
        """The open connections accepted by this listener."""
        return [c for c in self._connections if not c.closed]

    def _accept(self, transport: AsyncTransport) -> None:
        limit = self._options.get("max_connections")
        if limit is not None and len(self._connections) >= limit:
            # Closing connections count no more (as the connections property says).
            self._connections = {c: None for c in self._connections if not c.closed}
        if self._closed or (limit is not None and len(self._connections) >= limit):
            log.warning("refusing %s: listener closed or at max_connections", transport.description)
            transport.abort()
            self._peer._track(asyncio.get_running_loop().create_task(transport.aclose()))
            return
        connection = self._peer._open(
            transport, self._handlers, self._methods, self._options, self._default_timeout
        )
        if connection is not None:
            self._connections[connection] = None
            connection._closed_future.add_done_callback(
                lambda _: self._connections.pop(connection, None)
            )

    def close(self) -> None:
        """Stop accepting (the socket closes soon; await :meth:`aclose` to wait).
        Connections already accepted stay open."""
        if self._closing is None:
            self._closed = True
            self._closing = self._peer._track(
                asyncio.get_running_loop().create_task(self._aclose())
            )

    async def aclose(self) -> None:
        """Stop accepting and wait until the listening socket is closed."""
        self.close()
        assert self._closing is not None
        await asyncio.shield(self._closing)

    async def _aclose(self) -> None:
        await self._backend.aclose()
        self._peer._listener_closed(self)

    def __repr__(self) -> str:
        return f"<AsyncListener {self.url}>"


class PoolExecutor(concurrent.futures.Executor):
    """An executor over the threaded runtime's :class:`~rpcbd.threaded.pool.WorkerPool`.

    Unlike ``ThreadPoolExecutor`` it lets a worker that blocks on a call back to the peer
    (``blocking_section``) be replaced by another thread, so plain ``@mayblock`` handlers
    that call back cannot starve the pool. The peer bounds the queue itself.
    """

    def __init__(self, size: int, name: str) -> None:
        self._pool = WorkerPool(size, max_queue=2**31, name=name)

    def submit(
        self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def job() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)

        if not self._pool.submit(job):
            raise RuntimeError("cannot schedule new futures after shutdown")
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._pool.shutdown(None if wait else time.monotonic())


class AsyncPeer:
    """A JSON-RPC peer on asyncio: a reader task per connection (and a writer task only
    while a transport makes output wait).

    Create it anywhere; use it from one running event loop.

    Args:
        dialect: ``JSONRPC_V2`` (default) or ``JSONRPC_V1``.
        default_handler: a :class:`~rpcbd.Handler` subclass serving every connection of
            this peer, incoming and outgoing. ``async def`` methods run as tasks, plain
            ``@mayblock`` ones on the peer's thread pool, ``@willnotblock`` ones inline.
        default_timeout: seconds a call waits in silence; None (default) waits forever.
        framing: the default framing of stream transports.
        workers: threads of the pool for plain ``@mayblock`` handlers (made on first use).
        max_queue: blocking calls that may wait for a worker; beyond it the peer answers
            ``-32000`` (server busy).
        **options: defaults for every listener and connection, the same keywords as
            :class:`~rpcbd.ThreadedPeer` (``max_message_size``, ``max_pending_requests``,
            ``ssl_context``, ``origins``, ...).
    """

    def __init__(
        self,
        dialect: Dialect = JSONRPC_V2,
        default_handler: type | None = None,
        default_timeout: float | None = None,
        framing: str | None = None,
        *,
        workers: int = 8,
        max_queue: int = 1000,
        **options: Any,
    ) -> None:
        if isinstance(dialect, type) or not isinstance(dialect, Dialect):
            raise TypeError("dialect must be JSONRPC_V2 or JSONRPC_V1")
        if workers < 1 or max_queue < 0:
            raise ValueError("workers must be >= 1 and max_queue >= 0")
        self.dialect = dialect
        self.default_timeout = default_timeout
        self.workers = workers
        self.max_queue = max_queue
        self._options = _merge_options(DEFAULT_OPTIONS, {"framing": framing, **options})
        json_name = self._options.get("json") or os.environ.get("RPCBD_JSON")
        self._serializer: Serializer = default_serializer(json_name)
        self._handlers: list[type] = [] if default_handler is None else [default_handler]
        self._methods: dict[str, MethodInfo] = (
            {} if default_handler is None else method_table(default_handler)
        )
        self._connections: set[AsyncConnection] = set()
        self._listeners: list[AsyncListener] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pool: PoolExecutor | None = None
        self._pool_stopped = False
        self._jobs = 0
        self._shutdown = False
        self._shutdown_done: asyncio.Event | None = None
        self._shutting_down: asyncio.Task[None] | None = None
        self._private = False  # owned by rpcbd.aio.pipe_pair: shuts down with its pipe

    # -- worker pool -------------------------------------------------------------------

    def _executor(self) -> concurrent.futures.Executor:
        if self._pool is None:
            self._pool = PoolExecutor(self.workers, "rpcbd-aio-worker")
        return self._pool

    def _reserve_worker(self) -> bool:
        """Count one more blocking job; False when the pool and its queue are full, or
        the pool has been stopped by shutdown (no thread may start after it)."""
        if self._pool_stopped or self._jobs >= self.workers + self.max_queue:
            return False
        self._jobs += 1
        return True

    def _release_worker(self) -> None:
        self._jobs -= 1

    def _track(self, task: asyncio.Task[Any]) -> asyncio.Task[Any]:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- opening -------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._shutdown:
            raise LocalProtocolError("this peer has been shut down")

    def _handlers_for(self, handler: type | None) -> tuple[list[type], dict[str, MethodInfo]]:
        if handler is None:
            return self._handlers, self._methods
        return [handler], method_table(handler)

    def _open(
        self,
        transport: AsyncTransport,
        handlers: list[type],
        methods: dict[str, MethodInfo],
        options: dict[str, Any],
        timeout: Any,
    ) -> AsyncConnection | None:
        if self._shutdown:
            transport.abort()
            self._track(asyncio.get_running_loop().create_task(transport.aclose()))
            return None
        options = dict(options)
        options["serializer"] = self._serializer
        connection = AsyncConnection(
            self, transport, handlers, methods, options=options, default_timeout=timeout
        )
        self._connections.add(connection)
        connection._start()
        return connection

    async def listen(
        self, url: str, *, handler: type | None = None, timeout: Any = _USE_DEFAULT, **options: Any
    ) -> AsyncListener:
        """Listen on ``url`` (``tcp://127.0.0.1:0``, ``unix:///tmp/s``, ``ws://...``).

        Args:
            url: where to listen; see the transports table in the docs.
            handler: serve accepted connections with this handler class instead of the
                peer's ``default_handler``.
            timeout: the default call timeout of accepted connections (-1: the peer's).
            **options: override the peer's options for this listener.

        Raises:
            ValueError: unknown scheme, bad URL, or a scheme that cannot listen.
            OSError: the address is in use, say.
        """
        self._check_open()
        merged = _merge_options(self._options, options)
        backend: AsyncListenerBackend = await lookup_transport(url).resolve("alisten")(url, merged)
        handlers, methods = self._handlers_for(handler)
        listener = AsyncListener(
            self,
            backend,
            handlers=handlers,
            methods=methods,
            options=merged,
            default_timeout=timeout,
        )
        if self._shutdown:
            await backend.aclose()
            raise LocalProtocolError("this peer has been shut down")
        self._listeners.append(listener)
        await backend.start(listener._accept)
        return listener

    async def connect(
        self, url: str, *, handler: type | None = None, timeout: Any = _USE_DEFAULT, **options: Any
    ) -> AsyncConnection:
        """Connect to ``url`` and return the :class:`~rpcbd.aio.AsyncConnection`.

        Raises:
            ValueError: unknown URL scheme or bad URL.
            OSError: the connection could not be made.
        """
        self._check_open()
        merged = _merge_options(self._options, options)
        transport: AsyncTransport = await lookup_transport(url).resolve("aconnect")(url, merged)
        return self._adopt(transport, handler, merged, timeout)

    async def connect_transport(
        self,
        transport: AsyncTransport,
        *,
        handler: type | None = None,
        timeout: Any = _USE_DEFAULT,
        **options: Any,
    ) -> AsyncConnection:
        """Run a connection over a transport you made (any
        :class:`~rpcbd.aio.transports.AsyncTransport`)."""
        self._check_open()
        return self._adopt(transport, handler, _merge_options(self._options, options), timeout)

    def _adopt(
        self, transport: AsyncTransport, handler: type | None, options: dict[str, Any], timeout: Any
    ) -> AsyncConnection:
        handlers, methods = self._handlers_for(handler)
        connection = self._open(transport, handlers, methods, options, timeout)
        if connection is None:
            raise LocalProtocolError("this peer has been shut down")
        return connection

    async def spawn(self, argv: Sequence[str], **options: Any) -> AsyncConnection:
        """Start a child process and talk to it over its stdin/stdout (content-length
        framing by default); the child is reaped when the connection closes. The same as
        ``await connect("exec:" + shlex.join(argv))``."""
        return await self.connect("exec:" + shlex.join(list(argv)), **options)

    @overload
    def pipe_pair(
        self, other: AsyncPeer | None = None, **options: Any
    ) -> tuple[AsyncConnection, AsyncConnection]: ...
    @overload
    def pipe_pair(
        self, other: ThreadedPeer, **options: Any
    ) -> tuple[AsyncConnection, Connection]: ...

    def pipe_pair(
        self, other: AsyncPeer | ThreadedPeer | None = None, **options: Any
    ) -> tuple[AsyncConnection, AsyncConnection | Connection]:
        """Two connected in-memory connections, no sockets (call on the running loop).

        The first is served by this peer, the second by ``other`` (default: this peer).
        ``other`` may be a :class:`~rpcbd.ThreadedPeer`: the second connection is then a
        threaded one (its end of the pipe is a threaded in-memory transport, joined to
        this loop by a reader and a writer thread).
        """
        self._check_open()
        if isinstance(other, ThreadedPeer):
            # Same package, same contract: the threaded peer's _open is how its own
            # pipe_pair attaches a transport.
            threaded_a, threaded_b = threaded_memory_pair()
            first = self._adopt(
                BlockingTransportAdapter(threaded_a),
                None,
                _merge_options(self._options, options),
                _USE_DEFAULT,
            )
            second = other._open(
                threaded_b,
                other.default_incoming_connection_group,
                _merge_options(other._options, options),
                _USE_DEFAULT,
            )
            if second is None:
                first.close()
                raise LocalProtocolError("the threaded peer has been shut down")
            return first, second
        peer = other or self
        a, b = memory_pair()
        first = self._adopt(a, None, _merge_options(self._options, options), _USE_DEFAULT)
        other_conn = peer._adopt(b, None, _merge_options(peer._options, options), _USE_DEFAULT)
        return first, other_conn

    # -- state ---------------------------------------------------------------------------

    @property
    def connections(self) -> list[AsyncConnection]:
        """Every open connection of this peer."""
        return [c for c in self._connections if not c.closed]

    @property
    def listeners(self) -> list[AsyncListener]:
        """Every open listener of this peer."""
        return list(self._listeners)

    @property
    def is_shut_down(self) -> bool:
        """Whether :meth:`shutdown` has been called."""
        return self._shutdown

    def _connection_closed(self, connection: AsyncConnection) -> None:
        self._connections.discard(connection)

    def _listener_closed(self, listener: AsyncListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    # -- running and stopping ------------------------------------------------------------

    def _done_event(self) -> asyncio.Event:
        if self._shutdown_done is None:
            self._shutdown_done = asyncio.Event()
            if self._shutdown and self._shutting_down is not None and self._shutting_down.done():
                self._shutdown_done.set()
        return self._shutdown_done

    async def serve_forever(self) -> None:
        """Wait until :meth:`shutdown` has finished. In the main thread, Ctrl-C and SIGTERM
        start a clean shutdown (the loop's previous handlers for them are removed after)."""
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                try:
                    loop.add_signal_handler(signum, self._on_signal, signum)
                except (NotImplementedError, RuntimeError, ValueError):
                    continue
                installed.append(signum)
        try:
            await self._done_event().wait()
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)

    def _on_signal(self, signum: int) -> None:
        log.info("signal %d: shutting down", signum)
        self._start_shutdown(10.0)

    def _start_shutdown(
        self, timeout: float | None, caller: asyncio.Task[Any] | None = None
    ) -> asyncio.Task[None]:
        if self._shutting_down is None:
            self._shutdown = True
            self._shutting_down = asyncio.get_running_loop().create_task(
                self._shutdown_all(timeout, caller)
            )
        return self._shutting_down

    async def shutdown(self, timeout: float | None = 10.0) -> None:
        """Close listeners and connections, fail calls in flight, cancel ``async``
        handlers, stop the thread pool.

        Returns once every task and thread of the peer has ended, or after ``timeout``
        seconds if a blocking handler is still running (its thread is left to finish).
        Idempotent.
        """
        await asyncio.shield(self._start_shutdown(timeout, asyncio.current_task()))

    async def _shutdown_all(self, timeout: float | None, caller: asyncio.Task[Any] | None) -> None:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout

        def remaining() -> float | None:
            return None if deadline is None else max(0.0, deadline - loop.time())

        for listener in list(self._listeners):
            await listener.aclose()
        connections = list(self._connections)
        for connection in connections:
            connection.close()
        readers = [c._reader_task for c in connections if c._reader_task is not None]
        # The task that asked for the shutdown (a pipe's reader, say) waits for us.
        current = caller
        readers = [t for t in readers if t is not current]
        if readers:
            await asyncio.wait(readers, timeout=remaining())
        # Handler, callback and hook tasks: async handlers were cancelled by the close;
        # threaded ones end when their thread returns.
        pending = {t for t in self._tasks if t is not current and not t.done()}
        if pending:
            _, pending = await asyncio.wait(pending, timeout=remaining())
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        await self._stop_pool(remaining())
        log.debug("asyncio peer shut down")
        self._done_event().set()

    async def _stop_pool(self, timeout: float | None) -> None:
        self._pool_stopped = True
        pool = self._pool
        if pool is None:
            return
        self._pool = None
        # shutdown(wait=True) blocks: do it in a short-lived thread and await its end.
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def stop() -> None:
            pool.shutdown(wait=True, cancel_futures=True)
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_set_done, done)

        thread = threading.Thread(target=stop, name="rpcbd-aio-pool-stop", daemon=True)
        thread.start()
        try:
            await asyncio.wait_for(asyncio.shield(done), timeout)
        except asyncio.TimeoutError:
            log.warning("a blocking handler is still running after shutdown's timeout")
            return
        thread.join()

    async def __aenter__(self) -> AsyncPeer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown()


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def pipe_pair(
    handler_a: type | None = None,
    handler_b: type | None = None,
    dialect: Dialect = JSONRPC_V2,
    **options: Any,
) -> tuple[AsyncConnection, AsyncConnection]:
    """Two connected in-memory asyncio connections, each served by its own private peer.

    Call it on the running loop (it is a plain function, like the threaded
    ``pipe_pair``). Closing either connection closes both; ``await conn.aclose()`` on each
    waits until its private peer has shut down too.
    """
    peer_a = AsyncPeer(dialect, handler_a, **options)
    peer_b = AsyncPeer(dialect, handler_b, **options)
    peer_a._private = peer_b._private = True
    return peer_a.pipe_pair(peer_b)
