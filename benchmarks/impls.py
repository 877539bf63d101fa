"""The peers under test: each has a server (run in its own process) and a client.

Every server offers the same four methods:

- ``echo(x)`` returns ``x``;
- ``tick(x)`` is a notification that counts itself;
- ``count()`` returns the number of ticks seen (the notification flood checks it);
- ``stats()`` returns the server process's CPU seconds and memory (``/proc/self/status``).

Implementations:

- ``floor-threads``: raw sockets, newline framing, the same JSON library, no rpcbd. A
  thread per connection on the server; a blocking client (a pipelined one for the
  in-flight workload, a reader thread and per-caller queues for the shared workload).
- ``floor-asyncio``: asyncio streams with the same encode/decode.
- ``rpcbd-threaded-<scheme>``: ``rpcbd.ThreadedPeer`` over tcp, unix or ws; handler
  methods run inline on the reader thread (``assume_methods_block = False``).
- ``rpcbd-threaded-pool-tcp``: the same with the default ``assume_methods_block = True``
  (every call goes through the worker pool).
- ``rpcbd-threaded-pipe``: ``pipe_pair`` in one process (no sockets; client and server
  share the client process, so the server's CPU is counted in the client's).
- ``rpcbd-aio-<scheme>``: ``rpcbd.aio.AsyncPeer`` when it is importable.
- ``pylsp``: python-lsp-jsonrpc over TCP with Content-Length framing, wired as
  python-lsp-server's ``start_tcp_lang_server`` does (socketserver thread per connection,
  ``Endpoint`` with a 64-worker executor, ``MethodDispatcher``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import queue
import resource
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

__all__ = ["IMPLS", "Impl", "available_impls", "context_switches", "json_codec", "process_stats"]

READ_SIZE = 256 * 1024


# -- shared helpers ----------------------------------------------------------------------


def json_codec(name: str) -> tuple[Callable[[Any], bytes], Callable[[bytes], Any]]:
    """``(dumps, loads)`` of the JSON library ``name`` ("stdlib" or "orjson"), compact
    UTF-8 as rpcbd sends it, without rpcbd's strictness checks (that is rpcbd's cost)."""
    if name == "orjson":
        import orjson

        return orjson.dumps, orjson.loads
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    return (lambda value: encode(value).encode()), json.loads


def context_switches() -> int:
    """Voluntary and involuntary context switches of this process so far (all threads):
    each thread wake-up on the hot path shows up here."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_nvcsw + usage.ru_nivcsw


def process_stats() -> dict[str, float]:
    """CPU seconds and context switches of this process (all threads), memory in KiB."""
    stats: dict[str, float] = {
        "cpu": time.process_time(),
        "csw": context_switches(),
        "rss_kb": 0,
        "hwm_kb": 0,
    }
    with contextlib.suppress(OSError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                stats["rss_kb"] = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                stats["hwm_kb"] = int(line.split()[1])
    return stats


class Counter:
    """Ticks seen by a server (thread-safe; the pool variant ticks from several threads)."""

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def tick(self) -> None:
        with self._lock:
            self.value += 1


TICKS = Counter()


def _serve_bench_call(method: str, params: Any) -> Any:
    if method == "echo":
        return params[0]
    if method == "tick":
        TICKS.tick()
        return None
    if method == "count":
        return TICKS.value
    if method == "stats":
        return process_stats()
    raise KeyError(method)


class LineBuffer:
    """Newline deframing over one bytearray (amortised O(n), no quadratic copies)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._scanned = 0

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf
        buf += data
        end = buf.rfind(b"\n", self._scanned)
        if end < 0:
            self._scanned = len(buf)
            return []
        lines = bytes(buf[:end]).split(b"\n")
        del buf[: end + 1]
        self._scanned = 0
        return lines


# -- floor: raw sockets and threads --------------------------------------------------------


def _floor_handle_chunk(
    lines: list[bytes], dumps: Callable[[Any], bytes], loads: Callable[[bytes], Any]
) -> list[bytes]:
    out = []
    for line in lines:
        message = loads(line)
        result = _serve_bench_call(message["method"], message.get("params"))
        if "id" in message:
            out.append(dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}) + b"\n")
    return out


def floor_threads_server(
    ready: Callable[[str], None], stop: Callable[[], None], json_lib: str, coalesce: bool
) -> None:
    """Thread-per-connection newline JSON-RPC server on raw sockets.

    Replies are written one ``sendall`` each, or (``coalesce``) one ``sendall`` for all the
    replies to the requests found in one ``recv``.
    """
    dumps, loads = json_codec(json_lib)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    conns: list[socket.socket] = []

    def serve(sock: socket.socket) -> None:
        buffer = LineBuffer()
        with contextlib.suppress(OSError):
            while True:
                data = sock.recv(READ_SIZE)
                if not data:
                    break
                replies = _floor_handle_chunk(buffer.feed(data), dumps, loads)
                if coalesce:
                    if replies:
                        sock.sendall(b"".join(replies))
                else:
                    for reply in replies:
                        sock.sendall(reply)
        sock.close()

    def accept() -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conns.append(sock)
            threading.Thread(target=serve, args=(sock,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    ready(f"tcp://127.0.0.1:{port}")
    stop()
    listener.close()


class FloorClient:
    """Blocking newline JSON-RPC client on one raw socket."""

    def __init__(self, url: str, json_lib: str, coalesce: bool = False) -> None:
        self.coalesce = coalesce
        host, port = url.removeprefix("tcp://").rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.dumps, self.loads = json_codec(json_lib)
        self._buffer = LineBuffer()
        self._lines: list[bytes] = []
        self._next_id = 0

    def _request(self, method: str, args: list[Any]) -> bytes:
        self._next_id += 1
        return (
            self.dumps({"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": args})
            + b"\n"
        )

    def read_lines(self) -> list[bytes]:
        while True:
            data = self.sock.recv(READ_SIZE)
            if not data:
                raise ConnectionError("server closed the connection")
            lines = self._buffer.feed(data)
            if lines:
                return lines

    def call(self, method: str, *args: Any) -> Any:
        self.sock.sendall(self._request(method, list(args)))
        if not self._lines:
            self._lines = self.read_lines()
        return self.loads(self._lines.pop(0))["result"]

    def notify(self, method: str, *args: Any) -> None:
        self.sock.sendall(
            self.dumps({"jsonrpc": "2.0", "method": method, "params": list(args)}) + b"\n"
        )

    def pipelined(self, window: int, n: int, arg: Any, latencies: list[int]) -> None:
        """Keep ``window`` echo requests in flight until ``n`` replies are read: write up
        to the window, read what arrives, write as many new requests (one ``sendall``
        each, or one for all of them with ``coalesce``)."""
        sent = received = 0
        started: dict[int, int] = {}
        clock = time.perf_counter_ns
        batch = []
        while sent < min(window, n):
            started[self._next_id + 1] = clock()
            batch.append(self._request("echo", [arg]))
            sent += 1
        self._send(batch)
        while received < n:
            batch = []
            for line in self.read_lines():
                reply = self.loads(line)
                latencies.append(clock() - started.pop(reply["id"]))
                received += 1
                if sent < n:
                    started[self._next_id + 1] = clock()
                    batch.append(self._request("echo", [arg]))
                    sent += 1
            self._send(batch)

    def _send(self, batch: list[bytes]) -> None:
        if self.coalesce:
            if batch:
                self.sock.sendall(b"".join(batch))
        else:
            for data in batch:
                self.sock.sendall(data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


class FloorMuxClient(FloorClient):
    """Several threads share one raw socket: a reader thread hands replies out by id (to a
    caller's queue, or to a ``concurrent.futures.Future`` from :meth:`submit`)."""

    #: In-flight workloads use :meth:`submit` and a sliding window, like rpcbd's threaded
    #: client, instead of the single-threaded pipelined loop.
    pipelined = None  # type: ignore[assignment]

    def __init__(self, url: str, json_lib: str, coalesce: bool = False) -> None:
        super().__init__(url, json_lib, coalesce)
        self._lock = threading.Lock()
        self._pending: dict[int, Any] = {}
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while True:
                for line in self.read_lines():
                    reply = self.loads(line)
                    waiter = self._pending.pop(reply["id"])
                    if type(waiter) is Future:
                        waiter.set_result(reply["result"])
                    else:
                        waiter.put(reply["result"])

    def submit(self, method: str, *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            data = self._request(method, list(args))
            self._pending[self._next_id] = future
            self.sock.sendall(data)
        return future

    def call(self, method: str, *args: Any) -> Any:
        answer: queue.SimpleQueue[Any] = queue.SimpleQueue()
        with self._lock:
            data = self._request(method, list(args))
            self._pending[self._next_id] = answer
            self.sock.sendall(data)
        return answer.get()

    def notify(self, method: str, *args: Any) -> None:
        with self._lock:
            super().notify(method, *args)

    def close(self) -> None:
        super().close()
        self._reader.join(5)


# -- floor: asyncio streams ----------------------------------------------------------------


async def floor_asyncio_server_main(
    ready: Callable[[str], None], stop_async: Callable[[], Any], json_lib: str
) -> None:
    dumps, loads = json_codec(json_lib)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = LineBuffer()
        with contextlib.suppress(OSError):
            while True:
                data = await reader.read(READ_SIZE)
                if not data:
                    break
                for reply in _floor_handle_chunk(buffer.feed(data), dumps, loads):
                    writer.write(reply)
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, limit=READ_SIZE)
    port = server.sockets[0].getsockname()[1]
    ready(f"tcp://127.0.0.1:{port}")
    await stop_async()
    server.close()


class FloorAsyncClient:
    """asyncio newline JSON-RPC client: a reader task resolves futures by id."""

    @classmethod
    async def open(cls, url: str, json_lib: str) -> FloorAsyncClient:
        self = cls()
        host, port = url.removeprefix("tcp://").rsplit(":", 1)
        self.reader, self.writer = await asyncio.open_connection(host, int(port), limit=READ_SIZE)
        self.writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.dumps, self.loads = json_codec(json_lib)
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.next_id = 0
        self.task = asyncio.get_running_loop().create_task(self._read())
        return self

    async def _read(self) -> None:
        buffer = LineBuffer()
        with contextlib.suppress(OSError):
            while True:
                data = await self.reader.read(READ_SIZE)
                if not data:
                    break
                for line in buffer.feed(data):
                    reply = self.loads(line)
                    future = self.pending.pop(reply["id"])
                    if not future.done():
                        future.set_result(reply["result"])

    async def call(self, method: str, *args: Any) -> Any:
        self.next_id += 1
        future = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = future
        self.writer.write(
            self.dumps(
                {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": list(args)}
            )
            + b"\n"
        )
        return await future

    async def notify(self, method: str, *args: Any) -> None:
        self.writer.write(
            self.dumps({"jsonrpc": "2.0", "method": method, "params": list(args)}) + b"\n"
        )
        await self.writer.drain()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()
        self.task.cancel()
        with contextlib.suppress(BaseException):
            await self.task


# -- rpcbd -----------------------------------------------------------------------------------


def _bench_handler(blocks: bool) -> type:
    from rpcbd import Handler

    class BenchHandler(Handler):
        assume_methods_block = blocks

        def echo(self, x: Any) -> Any:
            return x

        def tick(self, x: Any = None) -> None:
            TICKS.tick()

        def count(self) -> int:
            return TICKS.value

        def stats(self) -> dict[str, float]:
            return process_stats()

    return BenchHandler


def _scheme_url(scheme: str) -> str:
    if scheme == "unix":
        return f"unix://{tempfile.mkdtemp(prefix='rpcbd-bench-')}/s.sock"
    if scheme == "ws":
        return "ws://127.0.0.1:0/"
    return f"{scheme}://127.0.0.1:0"


def rpcbd_threaded_server(
    scheme: str, blocks: bool, ready: Callable[[str], None], stop: Callable[[], None]
) -> None:
    from rpcbd import ThreadedPeer

    # Enough workers that the pool variant is not starved by the shared workload.
    peer = ThreadedPeer(
        default_handler=_bench_handler(blocks), shutdown_on_parent_exit=False, workers=8
    )
    try:
        listener = peer.listen(_scheme_url(scheme))
        ready(listener.url)
        stop()
    finally:
        peer.shutdown(timeout=5)


class RpcbdThreadedClient:
    """``rpcbd.ThreadedPeer`` client used the way the docs show."""

    def __init__(self, url: str, peer: Any) -> None:
        self.connection = peer.connect(url)
        self._request = self.connection.request
        self._future = self.connection.future
        self._notification = self.connection.notification

    def call(self, method: str, *args: Any) -> Any:
        return getattr(self._request, method)(*args)

    def submit(self, method: str, *args: Any) -> Future[Any]:
        return getattr(self._future, method)(*args)  # type: ignore[no-any-return]

    def notify(self, method: str, *args: Any) -> None:
        getattr(self._notification, method)(*args)

    def close(self) -> None:
        self.connection.close()


class RpcbdPipeClient(RpcbdThreadedClient):
    """Both ends of ``pipe_pair`` in this process."""

    def __init__(self, url: str, peer: Any) -> None:
        from rpcbd.threaded.peer import pipe_pair

        self.connection, self._other = pipe_pair(None, _bench_handler(False))
        self._request = self.connection.request
        self._future = self.connection.future
        self._notification = self.connection.notification


def aio_available() -> str | None:
    """None if ``rpcbd.aio.AsyncPeer`` can be used, else why not."""
    try:
        from rpcbd.aio import AsyncPeer  # noqa: F401
    except ImportError as exc:
        return f"rpcbd.aio.AsyncPeer is not importable ({exc})"
    return None


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


async def rpcbd_aio_server_main(
    scheme: str, ready: Callable[[str], None], stop_async: Callable[[], Any]
) -> None:
    from rpcbd.aio import AsyncPeer

    peer = AsyncPeer(default_handler=_bench_handler(False))
    try:
        listener = await peer.listen(_scheme_url(scheme))
        ready(listener.url)
        await stop_async()
    finally:
        await _maybe_await(peer.shutdown())


class RpcbdAioClient:
    """``rpcbd.aio.AsyncPeer`` client (or one end of ``rpcbd.aio.pipe_pair``)."""

    _other: Any = None

    @classmethod
    async def open_pipe(cls) -> RpcbdAioClient:
        from rpcbd.aio import pipe_pair

        self = cls()
        self.connection, self._other = pipe_pair(None, _bench_handler(False))
        self._request = self.connection.request
        self._notification = self.connection.notification
        return self

    @classmethod
    async def open(cls, url: str, peer: Any) -> RpcbdAioClient:
        self = cls()
        self.connection = await peer.connect(url)
        self._request = self.connection.request
        self._notification = self.connection.notification
        return self

    async def call(self, method: str, *args: Any) -> Any:
        return await getattr(self._request, method)(*args)

    async def notify(self, method: str, *args: Any) -> None:
        await _maybe_await(getattr(self._notification, method)(*args))

    async def close(self) -> None:
        # aclose() waits for the connection to end (reader task, final write); close()
        # only starts it.
        for connection in (self.connection, self._other):
            if connection is not None:
                closer = getattr(connection, "aclose", None) or connection.close
                await _maybe_await(closer())


# -- python-lsp-jsonrpc ------------------------------------------------------------------------


def pylsp_available() -> str | None:
    try:
        import pylsp_jsonrpc  # noqa: F401
    except ImportError:
        return "python-lsp-jsonrpc is not installed (pip install python-lsp-jsonrpc)"
    return None


def pylsp_server(ready: Callable[[str], None], stop: Callable[[], None]) -> None:
    """python-lsp-server's ``start_tcp_lang_server``, with a dispatcher of our methods."""
    import socketserver

    from pylsp_jsonrpc.dispatchers import MethodDispatcher
    from pylsp_jsonrpc.endpoint import Endpoint
    from pylsp_jsonrpc.streams import JsonRpcStreamReader, JsonRpcStreamWriter

    class BenchServer(MethodDispatcher):
        def __init__(self, rx: Any, tx: Any) -> None:
            self._reader = JsonRpcStreamReader(rx)
            self._writer = JsonRpcStreamWriter(tx)
            self._endpoint = Endpoint(self, self._writer.write, max_workers=64)

        def start(self) -> None:
            self._reader.listen(self._endpoint.consume)

        def m_echo(self, x: Any) -> Any:
            return x

        def m_tick(self, x: Any = None) -> None:
            TICKS.tick()

        def m_count(self) -> int:
            return TICKS.value

        def m_stats(self) -> dict[str, float]:
            return process_stats()

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            server = BenchServer(self.rfile, self.wfile)
            try:
                server.start()
            finally:
                server._endpoint.shutdown()

    socketserver.TCPServer.allow_reuse_address = True
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    ready(f"tcp://127.0.0.1:{server.server_address[1]}")
    stop()
    server.shutdown()
    server.server_close()


class PylspClient:
    """A python-lsp-jsonrpc client: stream reader thread, writer, ``Endpoint`` futures."""

    def __init__(self, url: str, peer: Any) -> None:
        from pylsp_jsonrpc.endpoint import Endpoint
        from pylsp_jsonrpc.streams import JsonRpcStreamReader, JsonRpcStreamWriter

        host, port = url.removeprefix("tcp://").rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)))
        self._rx = self.sock.makefile("rb")
        self._tx = self.sock.makefile("wb")
        self._reader = JsonRpcStreamReader(self._rx)
        self._writer = JsonRpcStreamWriter(self._tx)
        self.endpoint = Endpoint({}, self._writer.write)
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        with contextlib.suppress(Exception):
            self._reader.listen(self.endpoint.consume)

    def call(self, method: str, *args: Any) -> Any:
        return self.endpoint.request(method, {"x": args[0]} if args else None).result()

    def submit(self, method: str, *args: Any) -> Future[Any]:
        return self.endpoint.request(method, {"x": args[0]} if args else None)  # type: ignore[no-any-return]

    def notify(self, method: str, *args: Any) -> None:
        self.endpoint.notify(method, {"x": args[0]} if args else None)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(5)
        self.endpoint.shutdown()
        for f in (self._tx, self._rx):
            with contextlib.suppress(Exception):
                f.close()
        self.sock.close()


# -- the registry --------------------------------------------------------------------------------


@dataclass
class Impl:
    """One peer under test.

    Attributes:
        name: how tables name it.
        runtime: "threads" or "asyncio" (decides the floor its ratios use).
        floor: the name of the floor impl its ratios are taken against (None for floors).
        workloads: the workloads it runs (None: all).
        note: shown in the results.
    """

    name: str
    runtime: str
    floor: str | None
    in_process: bool = False
    workloads: tuple[str, ...] | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _registered_schemes() -> list[str]:
    from rpcbd.transports import registered_schemes

    return registered_schemes()


IMPLS: list[Impl] = [
    Impl(
        "floor-threads",
        "threads",
        None,
        note="raw sockets, thread per connection, one sendall per message",
    ),
    Impl(
        "floor-threads-mux",
        "threads",
        None,
        workloads=("seq", "inflight-1", "inflight-8", "inflight-32", "inflight-128", "shared"),
        note="a reader thread hands replies to queues/futures by id (the threaded runtime's shape)",
        extra={"mux": True},
    ),
    Impl(
        "floor-threads-coalesced",
        "threads",
        None,
        workloads=("seq", "inflight-8", "inflight-32", "inflight-128", "notify"),
        note="as floor-threads, but replies (and pipelined requests) found together go in one sendall",
        extra={"coalesce": True},
    ),
    Impl("floor-asyncio", "asyncio", None, note="asyncio streams"),
    Impl("rpcbd-threaded-tcp", "threads", "floor-threads", extra={"scheme": "tcp"}),
    Impl(
        "rpcbd-threaded-pool-tcp",
        "threads",
        "floor-threads",
        workloads=("seq", "inflight-128", "shared"),
        note="handlers on the worker pool (assume_methods_block=True, the default)",
        extra={"scheme": "tcp", "blocks": True},
    ),
    Impl("rpcbd-threaded-unix", "threads", "floor-threads", extra={"scheme": "unix"}),
    Impl("rpcbd-threaded-ws", "threads", "floor-threads", extra={"scheme": "ws"}),
    Impl(
        "rpcbd-threaded-pipe",
        "threads",
        "floor-threads",
        in_process=True,
        note="pipe_pair: client and server in one process",
    ),
    Impl("rpcbd-aio-tcp", "asyncio", "floor-asyncio", extra={"scheme": "tcp"}),
    Impl("rpcbd-aio-unix", "asyncio", "floor-asyncio", extra={"scheme": "unix"}),
    Impl("rpcbd-aio-ws", "asyncio", "floor-asyncio", extra={"scheme": "ws"}),
    Impl(
        "rpcbd-aio-pipe",
        "asyncio",
        "floor-asyncio",
        in_process=True,
        note="rpcbd.aio.pipe_pair: client and server in one process",
    ),
    Impl("pylsp", "threads", "floor-threads", note="python-lsp-jsonrpc, Content-Length framing"),
]


def available_impls() -> tuple[list[Impl], list[str]]:
    """The impls that can run here, and a note for each one skipped."""
    usable: list[Impl] = []
    notes: list[str] = []
    schemes = _registered_schemes()
    aio_problem = aio_available()
    for impl in IMPLS:
        scheme = impl.extra.get("scheme")
        if scheme is not None and scheme not in schemes:
            notes.append(
                f"{impl.name}: skipped, scheme {scheme!r} is not registered (registered: {', '.join(schemes)})"
            )
            continue
        if impl.name.startswith("rpcbd-aio") and aio_problem:
            notes.append(f"{impl.name}: skipped, {aio_problem}")
            continue
        if impl.name == "pylsp" and pylsp_available():
            notes.append(f"{impl.name}: skipped, {pylsp_available()}")
            continue
        usable.append(impl)
    return usable, notes


def open_sync_client(impl: Impl, url: str, json_lib: str, peer: Any, *, mux: bool = False) -> Any:
    if impl.name.startswith("floor-threads"):
        coalesce = impl.extra.get("coalesce", False)
        if mux or impl.extra.get("mux"):
            return FloorMuxClient(url, json_lib, coalesce)
        return FloorClient(url, json_lib, coalesce)
    if impl.name == "pylsp":
        return PylspClient(url, peer)
    if impl.in_process:
        return RpcbdPipeClient(url, peer)
    return RpcbdThreadedClient(url, peer)


async def open_async_client(impl: Impl, url: str, json_lib: str, peer: Any) -> Any:
    if impl.name == "floor-asyncio":
        return await FloorAsyncClient.open(url, json_lib)
    if impl.in_process:
        return await RpcbdAioClient.open_pipe()
    return await RpcbdAioClient.open(url, peer)


def make_client_peer(impl: Impl) -> Any:
    """The client-side peer object shared by the connections of one run (or None)."""
    if impl.name.startswith("rpcbd-threaded"):
        from rpcbd import ThreadedPeer

        return ThreadedPeer(shutdown_on_parent_exit=False)
    if impl.name.startswith("rpcbd-aio"):
        from rpcbd.aio import AsyncPeer

        return AsyncPeer()
    return None


def run_server(
    impl: Impl,
    ready: Callable[[str], None],
    stop: Callable[[], None],
    stop_async: Callable[[], Any],
    json_lib: str,
) -> None:
    """Run ``impl``'s server until ``stop`` returns (called in the server process)."""
    if impl.name.startswith("floor-threads"):
        floor_threads_server(ready, stop, json_lib, impl.extra.get("coalesce", False))
    elif impl.name == "floor-asyncio":
        asyncio.run(floor_asyncio_server_main(ready, stop_async, json_lib))
    elif impl.name == "pylsp":
        pylsp_server(ready, stop)
    elif impl.name.startswith("rpcbd-threaded"):
        rpcbd_threaded_server(impl.extra["scheme"], impl.extra.get("blocks", False), ready, stop)
    elif impl.name.startswith("rpcbd-aio"):
        asyncio.run(rpcbd_aio_server_main(impl.extra["scheme"], ready, stop_async))
    else:
        raise ValueError(impl.name)


def env_json_lib() -> str:
    return "orjson" if os.environ.get("RPCBD_JSON", "orjson") == "orjson" else "stdlib"
