"""The threaded peer: listeners, connections, groups, dispatchers and worker pools."""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from rpcbd.calls import USE_DEFAULT as _USE_DEFAULT
from rpcbd.codecs.base import DEFAULT_MAX_MESSAGE_SIZE, Dialect
from rpcbd.codecs.jsonrpc2 import JSONRPC_V2
from rpcbd.codecs.serializer import DEFAULT_MAX_NESTING_DEPTH, Serializer, default_serializer
from rpcbd.core.endpoint import (
    DEFAULT_MAX_BATCH_SIZE,
    DEFAULT_MAX_CALLS_IN_FLIGHT,
    DEFAULT_MAX_PENDING_REQUESTS,
)
from rpcbd.dispatch import MethodInfo, method_table
from rpcbd.exceptions import LocalProtocolError
from rpcbd.threaded.connection import Connection
from rpcbd.threaded.pool import Timer, WorkerPool
from rpcbd.transports import lookup_transport
from rpcbd.transports.base import ListenerBackend, Transport
from rpcbd.transports.memory import memory_pair

__all__ = [
    "ConnectionGroup",
    "Dispatcher",
    "Listener",
    "ThreadedPeer",
    "ThreadedTCPJsonRpcPeer",
    "pipe_pair",
]

log = logging.getLogger("rpcbd")

#: Seconds a partly received frame may stay incomplete before the connection is closed.
DEFAULT_PARTIAL_MESSAGE_TIMEOUT = 60.0

#: Options a peer, ``listen`` or ``connect`` accepts, with their defaults. Transports read
#: the ones that concern them (``ssl_context`` for tls, ``origins`` for ws, ...).
DEFAULT_OPTIONS: dict[str, Any] = {
    "framing": None,
    "max_message_size": DEFAULT_MAX_MESSAGE_SIZE,
    "max_batch_size": DEFAULT_MAX_BATCH_SIZE,
    "max_pending_requests": DEFAULT_MAX_PENDING_REQUESTS,
    "max_calls_in_flight": DEFAULT_MAX_CALLS_IN_FLIGHT,
    "max_nesting_depth": DEFAULT_MAX_NESTING_DEPTH,
    "partial_message_timeout": DEFAULT_PARTIAL_MESSAGE_TIMEOUT,
    "max_connections": None,
    "json": None,
    "connect_timeout": None,
    "ssl_context": None,
    "server_hostname": None,
    "origins": None,
    "authenticate": None,
    "ping_interval": 20.0,
    "ping_timeout": 20.0,
    "static_dir": None,
    "serve_client": True,
    "env": None,
    "cwd": None,
    "stderr": None,
    "kill_timeout": 2.0,
    "baudrate": None,
    "mode": None,
}


def _merge_options(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(extra) - set(DEFAULT_OPTIONS))
    if unknown:
        raise TypeError(
            f"unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(DEFAULT_OPTIONS))}"
        )
    merged = dict(base)
    merged.update(extra)
    return merged


class Dispatcher:
    """Maps method names to handler classes, and runs blocking methods on its worker pool.

    Made by :meth:`ThreadedPeer.create_standard_dispatcher`.
    """

    def __init__(self, peer: ThreadedPeer, numthreads: int = 5, maxqueue: int = 1000) -> None:
        self._peer = peer
        self.methods: dict[str, MethodInfo] = {}
        self.classes: list[type] = []
        self.pool = WorkerPool(numthreads, maxqueue, name="rpcbd-worker")

    def add_handler_class(self, cls: type, prefix: str | None = None) -> None:
        """Expose the methods of handler class ``cls`` (as ``prefix.name`` with a prefix).

        Raises:
            ValueError: a method name is already served by this dispatcher.
            TypeError: ``cls`` needs decorators (``assume_methods_block = None``).
        """
        table = method_table(cls, prefix)
        duplicates = sorted(set(table) & set(self.methods))
        if duplicates:
            raise ValueError(f"method name(s) already registered: {', '.join(duplicates)}")
        self.methods.update(table)
        if cls not in self.classes:
            self.classes.append(cls)


class ConnectionGroup:
    """Connections that share a dialect and a list of dispatchers.

    A call from the peer goes to the first dispatcher that has the method.
    """

    def __init__(self, peer: ThreadedPeer, name: str, dialect: Dialect) -> None:
        self._peer = peer
        self.name = name
        self.dialect = dialect
        self.dispatchers: list[Dispatcher] = []

    def add_dispatcher(self, dispatcher: Dispatcher) -> None:
        """Append ``dispatcher``. Raises ValueError if it belongs to another peer."""
        if dispatcher._peer is not self._peer:
            raise ValueError("that dispatcher belongs to another peer")
        if dispatcher not in self.dispatchers:
            self.dispatchers.append(dispatcher)

    def __repr__(self) -> str:
        return f"<ConnectionGroup {self.name!r} JSON-RPC {self.dialect.version}>"


class Listener:
    """A listening endpoint of a peer.

    Attributes:
        address: the local address as the socket reports it.
        port: the real port (when 0 was asked), or None for non-TCP listeners.
        url: a URL clients can ``connect`` to.
    """

    def __init__(
        self,
        peer: ThreadedPeer,
        backend: ListenerBackend,
        group: ConnectionGroup,
        options: dict[str, Any],
        default_timeout: Any,
    ) -> None:
        self._peer = peer
        self._backend = backend
        self._group = group
        self._options = options
        self._default_timeout = default_timeout
        self._connections: list[Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        self.address = backend.address
        self.port = backend.port
        self.url = backend.url

    @property
    def connections(self) -> list[Connection]:
        """The open connections accepted by this listener."""
        with self._lock:
            return [c for c in self._connections if not c.closed]

    def _accept(self, transport: Transport) -> None:
        limit = self._options.get("max_connections")
        with self._lock:
            self._connections = [c for c in self._connections if not c.closed]
            refuse = self._closed or (limit is not None and len(self._connections) >= limit)
        if refuse:
            log.warning("refusing %s: listener at its max_connections", transport.description)
            transport.abort()
            transport.close()
            return
        connection = self._peer._open(transport, self._group, self._options, self._default_timeout)
        if connection is not None:
            with self._lock:
                self._connections.append(connection)

    def close(self) -> None:
        """Stop accepting. Connections already accepted stay open (close them, or shut
        the peer down)."""
        with self._lock:
            self._closed = True
        self._backend.close()
        self._peer._listener_closed(self)

    def __repr__(self) -> str:
        return f"<Listener {self.url}>"


class ThreadedPeer:
    """A JSON-RPC peer run by threads: one reader thread per connection, a worker pool.

    Args:
        dialect: ``JSONRPC_V2`` (default) or ``JSONRPC_V1`` (0.6 called it the
            ``default_rpc_processor``).
        default_handler: a :class:`~rpcbd.Handler` subclass serving every connection of
            this peer, incoming and outgoing.
        default_timeout: seconds a call waits in silence; None (default) waits forever.
        framing: the default framing of stream transports.
        shutdown_on_parent_exit: shut down cleanly when the thread that made the peer ends
            (so a script that falls off its end exits); False keeps the process alive
            until :meth:`shutdown`.
        workers: threads of the default worker pool (``@mayblock`` handlers).
        **options: defaults for every listener and connection (``max_message_size``,
            ``max_pending_requests``, ``max_batch_size``, ``json``, ``ssl_context``, ...).
    """

    def __init__(
        self,
        dialect: Dialect = JSONRPC_V2,
        default_handler: type | None = None,
        default_timeout: float | None = None,
        framing: str | None = None,
        *,
        shutdown_on_parent_exit: bool = True,
        workers: int = 8,
        **options: Any,
    ) -> None:
        if isinstance(dialect, type) or not isinstance(dialect, Dialect):
            raise TypeError("dialect must be JSONRPC_V2 or JSONRPC_V1")
        self.dialect = dialect
        self.default_timeout = default_timeout
        self._options = _merge_options(DEFAULT_OPTIONS, {"framing": framing, **options})
        json_name = self._options.get("json") or os.environ.get("RPCBD_JSON")
        self._serializer: Serializer = default_serializer(json_name)
        self._lock = threading.Lock()
        self._connections: set[Connection] = set()
        self._listeners: list[Listener] = []
        self._shutdown = False
        self._shutdown_event = threading.Event()
        self._timer = Timer()
        self._default_dispatcher = Dispatcher(self, numthreads=workers)
        if default_handler is not None:
            self._default_dispatcher.add_handler_class(default_handler)
        self._incoming_group = ConnectionGroup(self, "incoming", dialect)
        self._outgoing_group = ConnectionGroup(self, "outgoing", dialect)
        self._incoming_group.add_dispatcher(self._default_dispatcher)
        self._outgoing_group.add_dispatcher(self._default_dispatcher)
        self._dispatchers: list[Dispatcher] = [self._default_dispatcher]
        if shutdown_on_parent_exit:
            _shutdown_with_thread(self, threading.current_thread())

    # -- groups and dispatchers (rpcbd 0.6 API) ----------------------------------------

    def create_connection_group(
        self, name: str, rpc_processor: Dialect | None = None
    ) -> ConnectionGroup:
        """A new, empty group with its own dialect (default: the peer's)."""
        return ConnectionGroup(self, name, rpc_processor or self.dialect)

    def create_standard_dispatcher(self, numthreads: int = 5, maxqueue: int = 1000) -> Dispatcher:
        """A new dispatcher with its own pool of ``numthreads`` workers."""
        dispatcher = Dispatcher(self, numthreads, maxqueue)
        with self._lock:
            self._dispatchers.append(dispatcher)
        return dispatcher

    def _check_group(self, group: ConnectionGroup) -> ConnectionGroup:
        if not isinstance(group, ConnectionGroup) or group._peer is not self:
            raise ValueError("that connection group belongs to another peer")
        return group

    @property
    def default_incoming_connection_group(self) -> ConnectionGroup:
        """The group of connections accepted by listeners (settable)."""
        return self._incoming_group

    @default_incoming_connection_group.setter
    def default_incoming_connection_group(self, group: ConnectionGroup) -> None:
        self._incoming_group = self._check_group(group)

    @property
    def default_outgoing_connection_group(self) -> ConnectionGroup:
        """The group of connections this peer opens (settable)."""
        return self._outgoing_group

    @default_outgoing_connection_group.setter
    def default_outgoing_connection_group(self, group: ConnectionGroup) -> None:
        self._outgoing_group = self._check_group(group)

    def _default_pool(self) -> WorkerPool:
        return self._default_dispatcher.pool

    # -- opening -------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._shutdown:
            raise LocalProtocolError("this peer has been shut down")

    def _open(
        self, transport: Transport, group: ConnectionGroup, options: dict[str, Any], timeout: Any
    ) -> Connection | None:
        options = dict(options)
        options["serializer"] = self._serializer
        connection = Connection(self, transport, group, options=options, default_timeout=timeout)
        with self._lock:
            if self._shutdown:
                transport.abort()
                transport.close()
                return None
            self._connections.add(connection)
        connection._start()
        return connection

    def listen(
        self,
        url: str,
        *,
        connection_group: ConnectionGroup | None = None,
        timeout: Any = _USE_DEFAULT,
        **options: Any,
    ) -> Listener:
        """Listen on ``url`` (``tcp://127.0.0.1:0``, ``unix:///tmp/s``, ``ws://...``).

        Args:
            url: where to listen; see the transports table in the docs.
            connection_group: the group of accepted connections (default: the peer's
                ``default_incoming_connection_group``).
            timeout: the default call timeout of accepted connections (-1: the peer's).
            **options: override the peer's options for this listener.

        Returns:
            A :class:`Listener` (``.port`` is the real port when 0 was asked).
        """
        self._check_open()
        merged = _merge_options(self._options, options)
        backend: ListenerBackend = lookup_transport(url).resolve("listen")(url, merged)
        group = self._check_group(connection_group) if connection_group else self._incoming_group
        listener = Listener(self, backend, group, merged, timeout)
        with self._lock:
            if self._shutdown:
                backend.close()
                raise LocalProtocolError("this peer has been shut down")
            self._listeners.append(listener)
        backend.start(listener._accept)
        return listener

    def connect(
        self,
        url: str,
        *,
        connection_group: ConnectionGroup | None = None,
        timeout: Any = _USE_DEFAULT,
        **options: Any,
    ) -> Connection:
        """Connect to ``url`` and return the :class:`~rpcbd.threaded.connection.Connection`.

        Raises:
            ValueError: unknown URL scheme or bad URL.
            OSError: the connection could not be made.
        """
        self._check_open()
        merged = _merge_options(self._options, options)
        transport: Transport = lookup_transport(url).resolve("connect")(url, merged)
        group = self._check_group(connection_group) if connection_group else self._outgoing_group
        connection = self._open(transport, group, merged, timeout)
        if connection is None:
            raise LocalProtocolError("this peer has been shut down")
        return connection

    def spawn(self, argv: Sequence[str], **options: Any) -> Connection:
        """Start a child process and talk to it over its stdin/stdout (content-length
        framing by default). The same as ``connect("exec:" + shlex.join(argv))``."""
        return self.connect("exec:" + shlex.join(list(argv)), **options)

    def listen_tcp(
        self,
        port: int = 0,
        bind: str = "127.0.0.1",
        timeout: Any = _USE_DEFAULT,
        connection_group: ConnectionGroup | None = None,
        **options: Any,
    ) -> Listener:
        """Listen for TCP connections on ``bind:port`` (loopback by default; port 0 picks
        a free port, see ``listener.port``)."""
        host = f"[{bind}]" if ":" in bind else bind
        return self.listen(
            f"tcp://{host}:{port}", connection_group=connection_group, timeout=timeout, **options
        )

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: Any = _USE_DEFAULT,
        connection_group: ConnectionGroup | None = None,
        **options: Any,
    ) -> Connection:
        """Connect over TCP. ``timeout`` is the connection's default call timeout."""
        host = f"[{host}]" if ":" in host and not host.startswith("[") else host
        return self.connect(
            f"tcp://{host}:{port}", connection_group=connection_group, timeout=timeout, **options
        )

    def pipe_pair(
        self, other: ThreadedPeer | None = None, **options: Any
    ) -> tuple[Connection, Connection]:
        """Two connected in-memory connections, no sockets.

        The first is served by this peer's outgoing group, the second by ``other``'s
        incoming group (``other`` defaults to this peer).
        """
        self._check_open()
        other = other or self
        merged = _merge_options(self._options, options)
        a, b = memory_pair()
        first = self._open(a, self._outgoing_group, merged, _USE_DEFAULT)
        second = other._open(
            b, other._incoming_group, _merge_options(other._options, options), _USE_DEFAULT
        )
        assert first is not None and second is not None
        return first, second

    # -- state ---------------------------------------------------------------------------

    @property
    def connections(self) -> list[Connection]:
        """Every open connection of this peer."""
        with self._lock:
            return [c for c in self._connections if not c.closed]

    @property
    def listeners(self) -> list[Listener]:
        """Every open listener of this peer."""
        with self._lock:
            return list(self._listeners)

    def _connection_closed(self, connection: Connection) -> None:
        with self._lock:
            self._connections.discard(connection)

    def _listener_closed(self, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    # -- running and stopping ------------------------------------------------------------

    def serve_forever(self) -> None:
        """Block until :meth:`shutdown`. In the main thread, Ctrl-C and SIGTERM shut the
        peer down cleanly (and the previous signal handlers are restored)."""
        previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (int(signal.SIGINT), int(signal.SIGTERM)):
                previous[signum] = signal.signal(signum, self._on_signal)
        try:
            # Event.wait() without a timeout cannot be interrupted by Ctrl-C on some
            # platforms; signal handlers still run between these bounded waits.
            while not self._shutdown_event.wait(3600):
                pass
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _on_signal(self, signum: int, frame: Any) -> None:
        log.info("signal %d: shutting down", signum)
        threading.Thread(target=self.shutdown, name="rpcbd-shutdown").start()

    @property
    def is_shut_down(self) -> bool:
        """Whether :meth:`shutdown` has been called."""
        return self._shutdown

    def shutdown(self, timeout: float | None = 10.0) -> None:
        """Close listeners and connections, fail calls in flight, stop the workers.

        Returns once every thread of the peer has stopped, or after ``timeout`` seconds
        if a handler is still running (its thread is then left to finish). Idempotent.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            first = not self._shutdown
            self._shutdown = True
            listeners = list(self._listeners)
            connections = list(self._connections)
            dispatchers = list(self._dispatchers)
        for listener in listeners:
            listener.close()
        for connection in connections:
            connection.close()
        for dispatcher in dispatchers:
            dispatcher.pool.shutdown(deadline)
        self._timer.shutdown()
        if first:
            log.debug("peer shut down")
        self._shutdown_event.set()

    def __enter__(self) -> ThreadedPeer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()


class ThreadedTCPJsonRpcPeer(ThreadedPeer):
    """The rpcbd 0.6 preset: a threaded peer whose ``listen_tcp`` / ``connect_tcp`` use
    TCP with newline framing.

    ``ThreadedTCPJsonRpcPeer(JSONRPC_V2, default_handler=Example)`` then
    ``peer.listen_tcp(port=9999)`` serves; ``peer.connect_tcp(host, port)`` connects.
    """

    def __init__(
        self,
        default_rpc_processor: Dialect = JSONRPC_V2,
        default_handler: type | None = None,
        default_timeout: float | None = None,
        shutdown_on_parent_exit: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(
            default_rpc_processor,
            default_handler,
            default_timeout,
            shutdown_on_parent_exit=shutdown_on_parent_exit,
            **options,
        )


def pipe_pair(
    handler_a: type | None = None,
    handler_b: type | None = None,
    dialect: Dialect = JSONRPC_V2,
    **options: Any,
) -> tuple[Connection, Connection]:
    """Two connected in-process connections, each served by its own private peer.

    Closing either connection closes both, and shuts both private peers down.
    """
    peer_a = ThreadedPeer(dialect, handler_a, shutdown_on_parent_exit=True, **options)
    peer_b = ThreadedPeer(dialect, handler_b, shutdown_on_parent_exit=True, **options)
    first, second = peer_a.pipe_pair(peer_b)
    for connection, peer in ((first, peer_a), (second, peer_b)):
        threading.Thread(
            target=_shutdown_when_closed, args=(connection, peer), name="rpcbd-pipe-owner"
        ).start()
    return first, second


def _shutdown_when_closed(connection: Connection, peer: ThreadedPeer) -> None:
    connection.wait_closed()
    peer.shutdown()


def _shutdown_with_thread(peer: ThreadedPeer, thread: threading.Thread) -> None:
    """Shut ``peer`` down when ``thread`` ends, without keeping the peer alive."""
    ref = weakref.ref(peer)

    def shutdown() -> None:
        target = ref()
        if target is not None:
            with contextlib.suppress(Exception):
                target.shutdown(timeout=5.0)

    if thread is threading.main_thread():
        # Runs when the interpreter starts to exit, before it joins non-daemon threads
        # (the same hook concurrent.futures uses), so a script that falls off its end
        # shuts the peer down instead of hanging on its threads.
        register: Callable[[Callable[[], None]], None] | None = getattr(
            threading, "_register_atexit", None
        )
        if register is not None:
            with contextlib.suppress(RuntimeError):
                register(shutdown)
            return

    def watch() -> None:
        thread.join()
        shutdown()

    threading.Thread(target=watch, name="rpcbd-parent-watch", daemon=True).start()
