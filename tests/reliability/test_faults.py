"""Faults on real sockets and processes: nothing hangs, nothing leaks, every call ends.

- a peer SIGKILLed mid-call, in both directions, over every stream transport;
- half-open connections; a peer that stops reading while we write;
- garbage, oversized and deeply nested input, invalid UTF-8, slow-loris partial frames;
- shutdown under load.

Measured numbers are printed (``pytest -s``) so the report can quote them.
"""

from __future__ import annotations

import os
import queue
import random
import shlex
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

import pytest

from rpcbd import Connection, Handler, ThreadedPeer, TransportError, mayblock, willnotblock
from rpcbd.threaded.peer import DEFAULT_OPTIONS

from .helpers import (
    CHILD,
    STREAM_SCHEMES,
    RawClient,
    listen_url,
    open_fds,
    python,
    require_scheme,
    rpcbd_threads,
    rss_kib,
    wait_until,
)

#: Every pending call must fail within this long after its peer is SIGKILLed.
KILL_BOUND = 2.0


@pytest.fixture
def short_dir() -> Iterator[str]:
    # Unix socket paths are limited to ~108 bytes: pytest's tmp_path can be longer.
    directory = tempfile.mkdtemp(prefix="rpcbd-rel-", dir="/tmp")
    try:
        yield directory
    finally:
        for name in os.listdir(directory):
            os.unlink(os.path.join(directory, name))
        os.rmdir(directory)


class Children:
    """Child processes started by a test; any still alive at the end are killed."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [python(), CHILD, *args], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
        self.processes.append(process)
        return process

    def cleanup(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(10)
            if process.stdout is not None:
                process.stdout.close()


@pytest.fixture
def children() -> Iterator[Children]:
    started = Children()
    try:
        yield started
    finally:
        started.cleanup()


def _read_url(process: subprocess.Popen[bytes]) -> str:
    assert process.stdout is not None
    line = process.stdout.readline().decode().strip()  # the child prints it first thing
    assert line, "the child exited before listening"
    return line


class Notified(Handler):
    """The parent's side: counts the child's notifications, and calls back into it."""

    assume_methods_block = False
    started_calls = threading.Semaphore(0)
    callback_pid: queue.SimpleQueue[int] = queue.SimpleQueue()
    outcomes: queue.SimpleQueue[tuple[BaseException | None, float]] = queue.SimpleQueue()

    def started(self) -> None:
        Notified.started_calls.release()

    def callback_started(self, pid: int) -> None:
        Notified.callback_pid.put(pid)

    @mayblock
    def ask_back(self) -> None:
        # The child's client_block never answers: this call is in flight when it dies.
        try:
            self.connection.request.client_block()
        except BaseException as exc:
            Notified.outcomes.put((exc, time.monotonic()))
            raise
        Notified.outcomes.put((None, time.monotonic()))


def _reset_notified() -> None:
    Notified.started_calls = threading.Semaphore(0)
    Notified.callback_pid = queue.SimpleQueue()
    Notified.outcomes = queue.SimpleQueue()


@pytest.fixture
def parent() -> Iterator[ThreadedPeer]:
    _reset_notified()
    peer = ThreadedPeer(default_handler=Notified)
    try:
        yield peer
    finally:
        peer.shutdown(timeout=5)


def _blocking_call(connection: Connection, results: queue.SimpleQueue[Any]) -> None:
    try:
        results.put(("result", connection.request.block(), time.monotonic()))
    except BaseException as exc:
        results.put(("error", exc, time.monotonic()))


class TestPeerKilledMidCall:
    """SIGKILL of the peer process fails every pending call with TransportError, fast."""

    @pytest.mark.parametrize("scheme", STREAM_SCHEMES)
    def test_server_killed_while_client_waits(
        self, scheme: str, parent: ThreadedPeer, children: Children, short_dir: str
    ) -> None:
        require_scheme(scheme)
        if scheme == "exec":
            connection = parent.connect("exec:" + shlex.join([python(), CHILD, "serve", "stdio:"]))
        else:
            url = _read_url(children.start("serve", listen_url(scheme, short_dir)))
            connection = parent.connect(url)
        pid = connection.request.pid()
        assert pid != os.getpid()

        # Two blocking callers in their own threads and two futures: four calls in flight.
        results: queue.SimpleQueue[Any] = queue.SimpleQueue()
        callers = [
            threading.Thread(target=_blocking_call, args=(connection, results)) for _ in range(2)
        ]
        for caller in callers:
            caller.start()
        futures: list[Future[Any]] = [connection.future.block() for _ in range(2)]
        for _ in range(4):  # each call tells us it is running in the child
            assert Notified.started_calls.acquire(timeout=10)

        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        for caller in callers:
            caller.join(KILL_BOUND + 1)
            assert not caller.is_alive(), "a blocking call still waits after the peer died"
        ended = []
        for _ in range(2):
            kind, value, at = results.get(timeout=1)
            assert kind == "error" and isinstance(value, TransportError), value
            ended.append(at - killed_at)
        for future in futures:
            error = future.exception(timeout=KILL_BOUND)
            assert isinstance(error, TransportError), error
        ended.append(time.monotonic() - killed_at)
        worst = max(ended)
        print(f"\n[measure] {scheme}: pending calls failed {worst * 1000:.1f} ms after SIGKILL")
        assert worst < KILL_BOUND
        assert wait_until(lambda: connection.closed, 2)
        # The connection is usable no more, and says so at once.
        with pytest.raises(TransportError):
            connection.request.pid()

    @pytest.mark.parametrize("scheme", STREAM_SCHEMES)
    def test_client_killed_while_server_calls_back(
        self, scheme: str, parent: ThreadedPeer, children: Children, short_dir: str
    ) -> None:
        require_scheme(scheme)
        if scheme == "exec":
            # The child connects to us over its stdio and calls ask_back, which calls back.
            connection = parent.connect("exec:" + shlex.join([python(), CHILD, "call", "stdio:"]))
        else:
            listener = parent.listen(listen_url(scheme, short_dir))
            children.start("call", listener.url)
            assert wait_until(lambda: len(listener.connections) == 1, 10)
            connection = listener.connections[0]
        pid = Notified.callback_pid.get(timeout=10)  # our callback is running in the child
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        error, at = Notified.outcomes.get(timeout=KILL_BOUND + 1)
        elapsed = at - killed_at
        print(
            f"\n[measure] {scheme}: callback into killed client failed after {elapsed * 1000:.1f} ms"
        )
        assert isinstance(error, TransportError), error
        assert elapsed < KILL_BOUND
        assert wait_until(lambda: connection.closed, 2)


# -- half-open connections ------------------------------------------------------------------


class Service(Handler):
    """A server with inline and pooled methods, and one that can be held."""

    release = threading.Event()

    @willnotblock
    def echo(self, value: Any) -> Any:
        return value

    @mayblock
    def slow_echo(self, value: Any) -> Any:
        return value

    @mayblock
    def block(self) -> str:
        Service.release.wait(10)
        return "released"

    @mayblock
    def flood(self, size: int, count: int) -> int:
        # Server-initiated traffic: notifications to a client that may not read them.
        sent = 0
        try:
            for _ in range(count):
                self.connection.notification.tick("y" * size)
                sent += 1
        except TransportError:
            pass
        return sent


@pytest.fixture
def server() -> Iterator[ThreadedPeer]:
    Service.release = threading.Event()
    peer = ThreadedPeer(default_handler=Service)
    try:
        yield peer
    finally:
        Service.release.set()
        peer.shutdown(timeout=5)


@pytest.fixture
def client() -> Iterator[ThreadedPeer]:
    peer = ThreadedPeer()
    try:
        yield peer
    finally:
        peer.shutdown(timeout=5)


def _echo(raw: RawClient, value: Any, id: int = 1) -> Any:
    reply = raw.call({"jsonrpc": "2.0", "method": "echo", "params": [value], "id": id})
    assert reply == {"jsonrpc": "2.0", "result": value, "id": id}, reply
    return reply


class TestHalfOpen:
    def test_silent_clients_do_not_block_others_or_shutdown(
        self, server: ThreadedPeer, client: ThreadedPeer
    ) -> None:
        listener = server.listen("tcp://127.0.0.1:0")
        silent = [socket.create_connection(("127.0.0.1", listener.port)) for _ in range(20)]
        try:
            assert wait_until(lambda: len(listener.connections) == 20)
            connection = client.connect(listener.url)
            assert [connection.request.echo(i) for i in range(5)] == list(range(5))
            started = time.monotonic()
            server.shutdown(timeout=5)
            elapsed = time.monotonic() - started
            print(f"\n[measure] shutdown with 21 connections (20 silent): {elapsed * 1000:.1f} ms")
            assert elapsed < 1.0
            # Every silent client sees its connection closed by the server.
            for sock in silent:
                sock.settimeout(2)
                assert sock.recv(1) == b""
            assert wait_until(lambda: connection.closed, 2)
        finally:
            for sock in silent:
                sock.close()

    def test_client_that_sends_half_a_request_then_nothing(self, server: ThreadedPeer) -> None:
        listener = server.listen("tcp://127.0.0.1:0")
        with (
            RawClient(("127.0.0.1", listener.port)) as stuck,
            RawClient(("127.0.0.1", listener.port)) as other,
        ):
            stuck.send(b'{"jsonrpc": "2.0", "method": "echo", "par')
            _echo(other, "still served")
            started = time.monotonic()
            server.shutdown(timeout=5)
            assert time.monotonic() - started < 1.0
            assert stuck.closed_by_peer(2)


# -- a peer that stops reading while we write ---------------------------------------------


def _wait_stalled(writer: threading.Thread, progress: Callable[[], int]) -> None:
    """Return once ``writer`` has made no progress for 0.3 s (or has ended)."""
    last = -1
    while writer.is_alive() and progress() != last:
        last = progress()
        writer.join(0.3)


class TestPeerStopsReading:
    def test_notifications_to_a_peer_that_never_reads(self, client: ThreadedPeer) -> None:
        """The writer blocks (TCP flow control) instead of buffering; memory stays flat;
        closing the connection unblocks the writer."""
        sink = socket.create_server(("127.0.0.1", 0))
        try:
            connection = client.connect(f"tcp://127.0.0.1:{sink.getsockname()[1]}")
            raw, _ = sink.accept()  # accepted, never read
            payload = "x" * 65536
            total = 4000  # 256 MiB if nothing held the writer back
            sent = [0]
            outcome: list[BaseException | None] = []

            def write() -> None:
                try:
                    for _ in range(total):
                        connection.notification.log(payload)
                        sent[0] += 1
                    outcome.append(None)
                except BaseException as exc:
                    outcome.append(exc)

            rss_before = rss_kib()
            writer = threading.Thread(target=write)
            writer.start()
            _wait_stalled(writer, lambda: sent[0])
            assert writer.is_alive()
            assert writer.is_alive(), "the writer never blocked: 256 MiB were buffered somewhere"
            growth = rss_kib() - rss_before
            print(
                f"\n[measure] writer blocked after {sent[0]} x 64 KiB notifications; "
                f"RSS growth {growth / 1024:.1f} MiB"
            )
            assert sent[0] < total // 4
            assert growth < 32 * 1024  # KiB: socket buffers + one HIGH_WATER, not 256 MiB
            started = time.monotonic()
            connection.close()
            writer.join(5)
            elapsed = time.monotonic() - started
            print(f"[measure] close() unblocked the writer after {elapsed * 1000:.1f} ms")
            assert not writer.is_alive()
            assert isinstance(outcome[0], TransportError), outcome
            # Bounded: close() gives a blocked writer a 2 s grace to flush (see
            # test_close_unblocks_writer_at_once for the stricter promise).
            assert elapsed < 3.0
            raw.close()
        finally:
            sink.close()

    def test_close_unblocks_writer_at_once(self, client: ThreadedPeer) -> None:
        sink = socket.create_server(("127.0.0.1", 0))
        try:
            connection = client.connect(f"tcp://127.0.0.1:{sink.getsockname()[1]}")
            raw, _ = sink.accept()
            sent = [0]

            def write() -> None:
                with pytest.raises(TransportError):
                    for _ in range(4000):
                        connection.notification.log("x" * 65536)
                        sent[0] += 1

            writer = threading.Thread(target=write)
            writer.start()
            _wait_stalled(writer, lambda: sent[0])
            assert writer.is_alive()
            started = time.monotonic()
            connection.close()
            writer.join(5)
            elapsed = time.monotonic() - started
            raw.close()
            assert elapsed < 0.5, f"close() took {elapsed:.2f} s"
        finally:
            sink.close()

    def test_client_that_sends_requests_but_never_reads_replies(self, server: ThreadedPeer) -> None:
        """Server memory stays bounded when a client floods requests and reads nothing."""
        listener = server.listen("tcp://127.0.0.1:0")
        flood = socket.create_connection(("127.0.0.1", listener.port))
        try:
            # A server-side writer blocks on this client (it never reads) ...
            flood.sendall(b'{"jsonrpc":"2.0","method":"flood","params":[65536,100000],"id":0}\n')
            assert wait_until(lambda: len(listener.connections) == 1)
            rss_before = rss_kib()
            # ... while the client keeps sending requests answered inline by the reader.
            request = (
                b'{"jsonrpc":"2.0","method":"echo","params":["' + b"z" * 16000 + b'"],"id":1}\n'
            ) * 16
            flood.settimeout(0.5)
            budget = 128 * 1024 * 1024  # bytes of requests sent at most
            sent = 0
            try:
                while sent < budget:
                    flood.sendall(request)
                    sent += len(request)
            except TimeoutError:
                pass  # flow control reached us: the server stopped reading
            except (ConnectionResetError, BrokenPipeError):
                pass  # the server gave up on a peer that reads nothing (a logged close)
            growth = rss_kib() - rss_before
            print(
                f"\n[measure] flooding client sent {sent / 2**20:.1f} MiB of requests; "
                f"server RSS growth {growth / 1024:.1f} MiB"
            )
            assert growth < 64 * 1024
        finally:
            flood.close()


# -- hostile input ------------------------------------------------------------------------


def _has_option(name: str) -> bool:
    return name in DEFAULT_OPTIONS


def _require_option(name: str) -> None:
    if not _has_option(name):
        pytest.skip(f"option {name!r} is not in DEFAULT_OPTIONS yet")


class TestHostileInput:
    """Bad bytes get an error reply (or a logged close); the server serves everyone else."""

    def test_garbage_lines(self, server: ThreadedPeer) -> None:
        listener = server.listen("tcp://127.0.0.1:0")
        rng = random.Random(1234)
        with RawClient(("127.0.0.1", listener.port)) as raw:
            for size in (1, 7, 100, 4096, 65536):
                garbage = bytes(rng.randrange(256) for _ in range(size)).replace(b"\n", b" ")
                raw.send(b"@" + garbage + b"\n")  # "@" makes sure it is never valid JSON
                reply = raw.read_json()
                assert reply["error"]["code"] == -32700 and reply["id"] is None, reply
            _echo(raw, "after garbage")

    def test_invalid_utf8(self, server: ThreadedPeer) -> None:
        listener = server.listen("tcp://127.0.0.1:0")
        with RawClient(("127.0.0.1", listener.port)) as raw:
            for bad in (b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"):
                raw.send(b'{"jsonrpc":"2.0","method":"echo","params":["' + bad + b'"],"id":1}\n')
                reply = raw.read_json()
                assert reply["error"]["code"] == -32700, reply
            _echo(raw, "caf\u00e9 \U0001f600")  # valid UTF-8 still works

    def test_valid_json_invalid_requests(self, server: ThreadedPeer) -> None:
        listener = server.listen("tcp://127.0.0.1:0")
        with RawClient(("127.0.0.1", listener.port)) as raw:
            for bad in (
                b"[]",
                b"1",
                b'"x"',
                b"null",
                b'{"jsonrpc":"2.0","method":1,"id":1}',
                b'{"jsonrpc":"2.0","method":"echo","params":1,"id":1}',
                b'{"jsonrpc":"2.0","method":"echo","id":{"a":1}}',
                b'{"jsonrpc":"1.0","method":"echo","id":1}',
            ):
                raw.send(bad + b"\n")
                reply = raw.read_json()
                assert reply["error"]["code"] == -32600, (bad, reply)
            _echo(raw, "fine")

    def test_oversized_line_is_skipped_without_buffering(self, server: ThreadedPeer) -> None:
        """Newline framing: -32600 as soon as the limit is passed; the rest of the line is
        dropped as it arrives (memory stays flat), and the next line is read normally."""
        listener = server.listen("tcp://127.0.0.1:0", max_message_size=1024)
        with (
            RawClient(("127.0.0.1", listener.port)) as big,
            RawClient(("127.0.0.1", listener.port)) as other,
        ):
            big.send(b'{"jsonrpc":"2.0","method":"echo","params":["' + b"a" * 4096)
            reply = big.read_json()
            assert reply["error"]["code"] == -32600, reply
            assert reply["error"]["data"] == {"reason": "message too large", "limit": 1024}
            rss_before = rss_kib()
            chunk = b"a" * (1024 * 1024)
            for _ in range(64):  # 64 MiB more of the same endless line
                big.send(chunk)
            _echo(other, "unaffected")
            big.send(b'"]}\n')
            _echo(big, "next line is fine")
            growth = rss_kib() - rss_before
            print(f"\n[measure] 64 MiB oversized line: RSS growth {growth / 1024:.1f} MiB")
            assert growth < 16 * 1024

    def test_oversized_content_length_gets_a_reply(self, server: ThreadedPeer) -> None:
        listener = server.listen(
            "tcp://127.0.0.1:0", max_message_size=1024, framing="content-length"
        )
        body = b'{"jsonrpc":"2.0","method":"echo","params":["' + b"a" * 4096 + b'"],"id":1}'
        ok = b'{"jsonrpc":"2.0","method":"echo","params":["ok"],"id":2}'
        with socket.create_connection(("127.0.0.1", listener.port), timeout=5) as sock:
            for payload in (body, ok):
                sock.sendall(b"Content-Length: %d\r\n\r\n" % len(payload) + payload)
            data = b""
            while data.count(b"Content-Length") < 2 or not data.endswith(b"}"):
                chunk = sock.recv(65536)
                assert chunk, data
                data += chunk
        assert b'"code":-32600' in data and b'"limit":1024' in data, data
        assert b'"result":"ok"' in data, data

    def test_deep_nesting_is_refused_not_recursed(self, server: ThreadedPeer) -> None:
        listener = server.listen("tcp://127.0.0.1:0")
        depth = 200_000  # far past Python's recursion limit
        with RawClient(("127.0.0.1", listener.port)) as raw:
            raw.send(b"[" * depth + b"]" * depth + b"\n")
            reply = raw.read_json()
            assert reply["error"]["code"] in (-32600, -32700), reply
            nested = b"[" * depth + b"1" + b"]" * depth
            raw.send(b'{"jsonrpc":"2.0","method":"echo","params":' + nested + b',"id":5}\n')
            reply = raw.read_json()
            assert reply["error"]["code"] in (-32600, -32700), reply
            raw.send(b'{"jsonrpc":"2.0","method":"echo","params":' + b"{" * 1000)
            raw.send(b"\n")
            reply = raw.read_json()
            assert reply["error"]["code"] in (-32600, -32700), reply
            _echo(raw, [[[[["shallow is fine"]]]]])

    def test_max_nesting_depth_option(self, server: ThreadedPeer) -> None:
        _require_option("max_nesting_depth")
        listener = server.listen("tcp://127.0.0.1:0", max_nesting_depth=8)
        with RawClient(("127.0.0.1", listener.port)) as raw:
            _echo(raw, [[["three levels inside the request object"]]])
            deep: Any = "x"
            for _ in range(20):
                deep = [deep]
            reply = raw.call({"jsonrpc": "2.0", "method": "echo", "params": [deep], "id": 2})
            assert reply["error"]["code"] in (-32600, -32700), reply
            assert reply["error"].get("data", {}).get("limit") == 8, reply
            _echo(raw, "still open")

    def test_batch_over_max_batch_size(self, server: ThreadedPeer) -> None:
        listener = server.listen("tcp://127.0.0.1:0", max_batch_size=10)
        batch = [{"jsonrpc": "2.0", "method": "echo", "params": [i], "id": i} for i in range(11)]
        with RawClient(("127.0.0.1", listener.port)) as raw:
            reply = raw.call(batch)
            assert isinstance(reply, dict) and reply["error"]["code"] == -32600, reply
            assert reply["error"]["data"]["limit"] == 10
            replies = raw.call(batch[:10])
            assert sorted(r["result"] for r in replies) == list(range(10))

    def test_max_connections(self, server: ThreadedPeer, client: ThreadedPeer) -> None:
        listener = server.listen("tcp://127.0.0.1:0", max_connections=2)
        first = client.connect(listener.url)
        second = client.connect(listener.url)
        assert wait_until(lambda: len(listener.connections) == 2)
        with RawClient(("127.0.0.1", listener.port)) as third:
            assert third.closed_by_peer(2)
        assert first.request.echo(1) == 1 and second.request.echo(2) == 2
        first.close()
        assert wait_until(lambda: len(listener.connections) == 1)
        again = client.connect(listener.url)  # room again
        assert again.request.echo(3) == 3


class TestSlowLoris:
    """A frame that never completes cannot hold a connection (and its memory) forever."""

    @pytest.mark.parametrize("framing", ["newline", "content-length"])
    def test_partial_frame_times_out(self, server: ThreadedPeer, framing: str) -> None:
        _require_option("partial_message_timeout")
        listener = server.listen("tcp://127.0.0.1:0", partial_message_timeout=0.3, framing=framing)
        with RawClient(("127.0.0.1", listener.port)) as loris:
            started = time.monotonic()
            if framing == "newline":
                loris.send(b'{"jsonrpc":"2.0","method":"echo"')
            else:
                loris.send(b"Content-Length: 100\r\n\r\n{")
            assert loris.closed_by_peer(3)
            elapsed = time.monotonic() - started
            print(f"\n[measure] slow loris ({framing}) closed after {elapsed * 1000:.0f} ms")
            assert 0.25 < elapsed < 2.0

    def test_trickling_bytes_do_not_reset_the_timer(self, server: ThreadedPeer) -> None:
        _require_option("partial_message_timeout")
        listener = server.listen("tcp://127.0.0.1:0", partial_message_timeout=0.5)
        with (
            RawClient(("127.0.0.1", listener.port)) as loris,
            RawClient(("127.0.0.1", listener.port)) as other,
        ):
            started = time.monotonic()
            closed = False
            loris.sock.settimeout(0.05)
            while time.monotonic() - started < 3.0:
                try:
                    loris.send(b" ")  # one byte every 50 ms, never a newline
                except OSError:
                    closed = True
                    break
                try:
                    if loris.sock.recv(1) == b"":
                        closed = True
                        break
                except TimeoutError:
                    pass
            elapsed = time.monotonic() - started
            assert closed, "a trickling partial frame kept the connection open"
            assert elapsed < 2.0
            _echo(other, "served meanwhile")

    def test_idle_between_messages_is_not_a_partial_frame(self, server: ThreadedPeer) -> None:
        _require_option("partial_message_timeout")
        listener = server.listen("tcp://127.0.0.1:0", partial_message_timeout=0.2)
        with RawClient(("127.0.0.1", listener.port)) as raw:
            _echo(raw, 1)
            assert not raw.closed_by_peer(0.5)  # idle, nothing half-sent: stays open
            _echo(raw, 2)


# -- calls in flight ----------------------------------------------------------------------


class TestCallsInFlight:
    def test_callers_wait_for_room(self, server: ThreadedPeer, client: ThreadedPeer) -> None:
        _require_option("max_calls_in_flight")
        listener = server.listen("tcp://127.0.0.1:0")
        connection = client.connect(listener.url, max_calls_in_flight=4)
        held = [connection.future.block() for _ in range(4)]
        extra: list[Any] = []
        waiter = threading.Thread(target=lambda: extra.append(connection.request.echo("later")))
        waiter.start()
        waiter.join(0.3)
        assert waiter.is_alive(), "a fifth call went out past max_calls_in_flight=4"
        Service.release.set()
        waiter.join(5)
        assert extra == ["later"]
        assert [f.result(5) for f in held] == ["released"] * 4

    def test_waiting_caller_fails_when_the_connection_closes(
        self, server: ThreadedPeer, client: ThreadedPeer
    ) -> None:
        _require_option("max_calls_in_flight")
        listener = server.listen("tcp://127.0.0.1:0")
        connection = client.connect(listener.url, max_calls_in_flight=1)
        held = connection.future.block()
        outcome: list[BaseException] = []

        def call() -> None:
            try:
                connection.request.echo(1)
            except BaseException as exc:
                outcome.append(exc)

        waiter = threading.Thread(target=call)
        waiter.start()
        waiter.join(0.2)
        assert waiter.is_alive()
        connection.close()
        waiter.join(2)
        assert not waiter.is_alive()
        assert isinstance(outcome[0], TransportError), outcome
        assert isinstance(held.exception(2), TransportError)


# -- shutdown under load ------------------------------------------------------------------


def _hammer(
    connection: Connection, stop: threading.Event, done: threading.Semaphore, outcomes: list[Any]
) -> None:
    n = 0
    while True:
        try:
            method = connection.request.echo if n % 2 else connection.request.slow_echo
            assert method(n) == n
            outcomes.append("ok")
        except TransportError as exc:
            outcomes.append(exc)
            return
        except BaseException as exc:  # anything else is a failure of the test
            outcomes.append(exc)
            return
        n += 1
        done.release()
        if stop.is_set() and n > 1000:
            return  # safety net: never loops forever


class TestShutdownUnderLoad:
    @pytest.mark.parametrize("who", ["server", "client"])
    def test_every_call_ends_and_shutdown_is_prompt(
        self, server: ThreadedPeer, client: ThreadedPeer, who: str
    ) -> None:
        listener = server.listen("tcp://127.0.0.1:0")
        connections = [client.connect(listener.url) for _ in range(4)]
        stop = threading.Event()
        done = threading.Semaphore(0)
        outcomes: list[list[Any]] = [[] for _ in range(16)]
        threads_before = threading.active_count()
        callers = [
            threading.Thread(
                target=_hammer, args=(connections[i % 4], stop, done, outcomes[i]), daemon=True
            )
            for i in range(16)
        ]
        for caller in callers:
            caller.start()
        for _ in range(16 * 20):  # the load is really on: 320 calls answered
            assert done.acquire(timeout=10)
        started = time.monotonic()
        (server if who == "server" else client).shutdown(timeout=5)
        elapsed = time.monotonic() - started
        stop.set()
        print(f"\n[measure] {who} shutdown under 16-thread load: {elapsed * 1000:.1f} ms")
        assert elapsed < 2.0
        for caller in callers:
            caller.join(3)
            assert not caller.is_alive(), "a caller still waits after shutdown"
        for outcome in outcomes:
            # Each thread's last call ended with a TransportError; all before were results.
            assert outcome and all(o == "ok" for o in outcome[:-1]), outcome[-3:]
            assert isinstance(outcome[-1], TransportError), outcome[-1]
        other = client if who == "server" else server
        other.shutdown(timeout=5)
        assert wait_until(lambda: not rpcbd_threads(), 5), rpcbd_threads()
        assert threading.active_count() <= threads_before


# -- nothing leaks across many short connections ------------------------------------------


def _per_connection(thread_name: str) -> bool:
    """A thread that lives as long as one connection or listener."""
    return thread_name.startswith(("rpcbd-reader", "rpcbd-listener", "rpcbd-ws-"))


@pytest.mark.parametrize(
    "scheme",
    [
        "tcp",
        "unix",
        "ws",
    ],
)
def test_listeners_and_connections_leave_nothing_behind(
    scheme: str, server: ThreadedPeer, client: ThreadedPeer, short_dir: str
) -> None:
    require_scheme(scheme)
    # Each peer's timer thread starts on first use and lives until the peer shuts down;
    # a connection arms it only sometimes (a read that ends inside a frame arms the
    # slow-loris timer), so start both now rather than let a later round start one.
    for peer in (server, client):
        peer._timer.cancel(peer._timer.call_at(time.monotonic() + 3600, lambda: None))
    # One round first, so lazily created process-wide objects (imports, pools) exist.
    for round in range(6):
        if round == 1:
            # Round 0's per-connection threads may still be ending: a server-side reader
            # leaves the listener's list just before its thread returns. The baseline is
            # taken once they have (on a busy machine that takes a moment).
            assert wait_until(lambda: not any(map(_per_connection, rpcbd_threads())), 5)
            fds_before = open_fds()
            threads_before = rpcbd_threads()
        listener = server.listen(listen_url(scheme, short_dir))
        connections = [client.connect(listener.url) for _ in range(3)]
        assert [c.request.echo(i) for i, c in enumerate(connections)] == [0, 1, 2]
        for connection in connections:
            connection.close()
        assert wait_until(lambda listener=listener: not listener.connections, 5)  # type: ignore[misc]
        listener.close()
    assert wait_until(lambda: rpcbd_threads() == threads_before, 5), rpcbd_threads()
    assert wait_until(lambda: open_fds() <= fds_before, 1), (open_fds(), fds_before)
