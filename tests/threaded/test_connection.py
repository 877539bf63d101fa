"""Connections of the threaded runtime over real TCP sockets (API.md sections 5 and 7)."""

from __future__ import annotations

import concurrent.futures
import json
import logging
import queue
import select
import socket
import threading
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import rpcbd.threaded.connection
from rpcbd import (
    ConnectionClosedError,
    Handler,
    LocalProtocolError,
    RpcCancelledError,
    RpcError,
    RpcInternalError,
    RpcInvalidParamsError,
    RpcMethodNotFoundError,
    RpcTimeoutError,
    ThreadedPeer,
    TransportError,
    willnotblock,
)
from rpcbd.calls import EVENT_BATCH
from rpcbd.threaded.connection import Connection

from .helpers import Custom, Service, patches_connection_globals, wait_until


class TestRequests:
    def test_echo_keeps_json_types(self, connection: Connection) -> None:
        value = {"a": [1, 2.5, None, True, "é"], "b": {"c": -3}}
        assert connection.request.echo(value) == value

    def test_keyword_arguments_are_named_params(self, connection: Connection) -> None:
        assert connection.request.add(a=2, b=3) == 5

    def test_mixing_positional_and_keyword_is_refused(self, connection: Connection) -> None:
        with pytest.raises(ValueError, match="do not mix"):
            connection.request.add(1, b=2)

    def test_explicit_name_and_timeout(self, connection: Connection) -> None:
        assert connection.request("add", timeout=5)(1, 2) == 3

    def test_future(self, connection: Connection) -> None:
        futures = [connection.future.add(i, i) for i in range(20)]
        assert [f.result(10) for f in futures] == [2 * i for i in range(20)]

    def test_notification_reaches_handler(
        self, server: ThreadedPeer, client_peer: ThreadedPeer
    ) -> None:
        got: list[Any] = []
        done = threading.Event()

        class Sink(Handler):
            assume_methods_block = False

            def log(self, text: str) -> None:
                got.append(text)
                done.set()

        group = server.create_connection_group("sink")
        dispatcher = server.create_standard_dispatcher()
        dispatcher.add_handler_class(Sink)
        group.add_dispatcher(dispatcher)
        listener = server.listen("tcp://127.0.0.1:0", connection_group=group)
        connection = client_peer.connect(listener.url)
        connection.notification.log("hello")
        connection.notify.log("again")
        assert done.wait(5)
        assert wait_until(lambda: got == ["hello", "again"])


class TestErrorsOnTheWire:
    """API.md section 7."""

    def test_divide_by_zero_is_internal_error(self, connection: Connection) -> None:
        with pytest.raises(RpcInternalError) as info:
            connection.request.divide(1, 0)
        assert info.value.code == -32603
        assert "ZeroDivision" not in str(info.value.data)  # no traceback on the wire

    def test_rpc_error_keeps_code_message_data(self, connection: Connection) -> None:
        with pytest.raises(RpcError) as info:
            connection.request.fail(1234, "nope", {"detail": [1, 2]})
        assert (info.value.code, info.value.message, info.value.data) == (
            1234,
            "nope",
            {"detail": [1, 2]},
        )

    def test_subclass_code_is_a_class_attribute(self, connection: Connection) -> None:
        with pytest.raises(RpcError) as info:
            connection.request.fail_custom()
        assert info.value.code == Custom.code == 42
        assert info.value.data == {"why": "because"}

    def test_type_error_inside_handler_is_internal(self, connection: Connection) -> None:
        with pytest.raises(RpcInternalError):
            connection.request.type_error_inside()

    def test_unbindable_arguments_are_invalid_params(self, connection: Connection) -> None:
        with pytest.raises(RpcInvalidParamsError) as info:
            connection.request.add(1)
        assert "b" in str(info.value.data)

    def test_unknown_and_hidden_methods(self, connection: Connection) -> None:
        for name in ("nope", "_private", "on_connect", "__init__", "echo.__class__"):
            with pytest.raises(RpcMethodNotFoundError):
                connection.request(name)()

    def test_garbage_gets_parse_error_and_server_keeps_serving(self, server: ThreadedPeer) -> None:
        listener = server.listen("tcp://127.0.0.1:0")
        with socket.create_connection(("127.0.0.1", listener.port), timeout=5) as sock:
            sock.sendall(b'{"jsonrpc":"2.0","method":"foobar,"params":"bar","baz]\n')
            sock.sendall(b'{"jsonrpc":"2.0","method":"echo","params":[7],"id":"x"}\n')
            reply = b""
            while reply.count(b"\n") < 2:
                chunk = sock.recv(4096)
                assert chunk
                reply += chunk
        first, second = reply.splitlines()
        assert b'"code":-32700' in first and b'"id":null' in first
        assert second == b'{"jsonrpc":"2.0","result":7,"id":"x"}'


class TestCallbacks:
    def test_implicit_callbacks_run_in_caller_thread_in_order(self, connection: Connection) -> None:
        seen: list[tuple[str, str]] = []

        def progress(text: str) -> None:
            seen.append((threading.current_thread().name, text))

        result = connection.request.count(5, progress)
        assert result == "Counted to 5"
        assert seen == [("MainThread", f"Counted to {i}") for i in range(1, 6)]

    def test_callback_name_is_dead_after_the_call(
        self, connection: Connection, server: ThreadedPeer
    ) -> None:
        names: list[str] = []

        def progress(text: str) -> None:
            names.append(text)

        connection.request.count(1, progress)
        # The server side can try to call a stale callback name: it is unknown now.
        server_connection = server.connections[0]
        with pytest.raises(RpcMethodNotFoundError):
            server_connection.request("rpc.callback.00000000-0000-0000-0000-000000000000")()

    def test_server_calls_client_during_call_in_flight(self, connection: Connection) -> None:
        assert connection.request.ask_back(7) == ["client", 7]

    def test_explicit_callback_by_name(self, connection: Connection) -> None:
        # The client's default handler serves "client_echo"; the server calls it by name.
        assert connection.request.ask_back("by name") == ["client", "by name"]

    def test_blocking_call_from_reader_thread_raises_clearly(self, connection: Connection) -> None:
        with pytest.raises(RpcInternalError):
            connection.request.ask_back_inline(1)

    def test_future_callbacks_run_on_the_pool(self, connection: Connection) -> None:
        seen: list[str] = []
        future = connection.future.count(3, seen.append)
        assert future.result(10) == "Counted to 3"
        assert seen == ["Counted to 1", "Counted to 2", "Counted to 3"]


class TestReadDuty:
    """A blocking caller reads its own reply when no other thread is reading."""

    @patches_connection_globals
    def test_reply_delivered_while_caller_takes_duty_is_not_waited_for(
        self, connection: Connection, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Force the race: the caller finds its queue empty, then - before it takes read
        # duty - the reader thread reads the reply and delivers it. The caller must not
        # then block in read() for bytes that never come.
        delivered = threading.Event()
        stalled: list[bool] = []

        class RacingQueue(queue.SimpleQueue[Any]):
            def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
                super().put(item)
                delivered.set()

            def get_nowait(self) -> Any:
                if not stalled:
                    # The first look finds nothing, and the reply lands right after it.
                    stalled.append(True)
                    assert delivered.wait(10), "the reader thread never delivered"
                    raise queue.Empty
                return super().get_nowait()

        monkeypatch.setattr(
            rpcbd.threaded.connection,
            "queue",
            types.SimpleNamespace(SimpleQueue=RacingQueue, Empty=queue.Empty),
        )
        results: list[Any] = []
        caller = threading.Thread(target=lambda: results.append(connection.request.add(2, 3)))
        caller.start()
        caller.join(10)
        hung = caller.is_alive()
        if hung:
            connection.close()  # before the fix the caller sat in read() for good
            caller.join()
        assert not hung, "the caller waited for a reply it had already been given"
        assert results == [5]
        assert stalled == [True]

    @patches_connection_globals
    def test_without_epoll_the_reader_thread_waits_on_a_selector(
        self, server: ThreadedPeer, client_peer: ThreadedPeer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # macOS and Windows have no epoll: the reader thread then wakes on every reply
        # and finds duty taken. Calls (and calls back during a call) work the same.
        monkeypatch.setattr(
            rpcbd.threaded.connection, "select", types.SimpleNamespace(select=select.select)
        )
        connection = client_peer.connect(server.listen("tcp://127.0.0.1:0").url)
        assert connection._readiness is not None and connection._readiness._epoll is None
        assert [connection.request.add(i, 1) for i in range(50)] == list(range(1, 51))
        assert connection.request.ask_back(3) == ["client", 3]
        assert connection.request("add", timeout=5)(2, 2) == 4

    @pytest.fixture
    def held(
        self, client_peer: ThreadedPeer
    ) -> Iterator[tuple[Connection, dict[str, threading.Event]]]:
        """A connection to a server whose ``hold(key)`` answers once ``key`` is released."""
        gates: dict[str, threading.Event] = {}

        class Gates(Handler):
            def hold(self, key: str) -> str:  # (may block: runs on the worker pool)
                assert gates[key].wait(10)
                return key

        server = ThreadedPeer(default_handler=Gates)
        try:
            connection = client_peer.connect(server.listen("tcp://127.0.0.1:0").url)
            # One call first: the reader thread then waits for input without holding
            # duty (a connection that never called blocks in read() holding it).
            gates["warm"] = threading.Event()
            gates["warm"].set()
            assert connection.request.hold("warm") == "warm"
            assert wait_until(lambda: connection._duty is None)
            yield connection, gates
        finally:
            for gate in gates.values():
                gate.set()
            server.shutdown()

    @staticmethod
    def _call_in_thread(call: Callable[[], Any], results: list[Any]) -> threading.Thread:
        thread = threading.Thread(target=lambda: results.append(call()))
        thread.start()
        return thread

    @pytest.mark.parametrize("how", ["request", "future"])
    def test_a_caller_leaves_the_reading_to_the_reader_thread_while_another_waits(
        self, held: tuple[Connection, dict[str, threading.Event]], how: str
    ) -> None:
        # Several callers waiting: the reader thread serves them all, instead of read
        # duty passing from caller to caller (and the reader thread being muted and
        # unmuted each time).
        connection, gates = held
        for key in "abc":
            gates[key] = threading.Event()
        results: list[Any] = []
        first = self._call_in_thread(lambda: connection.request.hold("a"), results)
        assert wait_until(lambda: connection._duty is first), "a lone caller reads itself"
        second = self._call_in_thread(lambda: connection.request.hold("b"), results)
        assert wait_until(lambda: connection._queued_callers == 1)
        gates["a"].set()
        first.join(10)
        assert results == ["a"]
        # The first caller released duty at its reply; the second still waits.
        assert wait_until(lambda: connection._duty is None)
        if how == "request":
            third = self._call_in_thread(lambda: connection.request.hold("c"), results)
        else:
            future = connection.future.hold("c")
            third = self._call_in_thread(lambda: future.result(10), results)
        assert wait_until(lambda: connection._queued_callers == 2), "the third caller read"
        assert connection._duty is not third
        gates["c"].set()
        third.join(10)
        gates["b"].set()
        second.join(10)
        assert results == ["a", "c", "b"]
        assert connection._queued_callers == 0
        # Alone again: the next caller reads its own reply.
        gates["d"] = threading.Event()
        fourth = self._call_in_thread(lambda: connection.request.hold("d"), results)
        assert wait_until(lambda: connection._duty is fourth)
        gates["d"].set()
        fourth.join(10)
        assert results[-1] == "d"


class TestFutureReadsItsOwnReply:
    """A thread waiting in ``future.result()`` reads the reply itself when no other
    thread is reading, as a blocking caller does (no hand-off from the reader thread)."""

    @staticmethod
    def _idle(connection: Connection) -> None:
        # One blocking call first: the reader thread then waits for input without holding
        # read duty (a connection that never called blocks in read() holding it).
        assert connection.request.echo(0) == 0
        assert wait_until(lambda: connection._duty is None)

    @staticmethod
    def _wait_in_thread(future: Any, outcome: list[Any], timeout: float = 10) -> threading.Thread:
        def wait() -> None:
            try:
                outcome.append(future.result(timeout))
            except BaseException as exc:
                outcome.append(exc)

        waiter = threading.Thread(target=wait)
        waiter.start()
        return waiter

    def test_the_waiting_thread_reads_and_completes_the_future(
        self, connection: Connection
    ) -> None:
        self._idle(connection)
        future = connection.future.block()
        completed_in: list[threading.Thread] = []
        future.add_done_callback(lambda _: completed_in.append(threading.current_thread()))
        outcome: list[Any] = []
        waiter = self._wait_in_thread(future, outcome)
        assert wait_until(lambda: connection._duty is waiter), "the waiter did not read"
        Service.release.set()
        waiter.join(10)
        assert outcome == ["released"]
        # Done-callbacks run in the thread that completes the future: the waiter's own.
        assert completed_in == [waiter]
        assert wait_until(lambda: connection._duty is None)

    def test_exception_reads_too(self, connection: Connection) -> None:
        self._idle(connection)
        error = connection.future.fail(7, "seven").exception(10)
        assert isinstance(error, RpcError) and error.code == 7
        assert [connection.future.add(i, 1).result(10) for i in range(20)] == list(range(1, 21))

    def test_cancel_from_another_thread_wakes_the_reading_waiter(
        self, connection: Connection
    ) -> None:
        self._idle(connection)
        future = connection.future.block()
        outcome: list[Any] = []
        waiter = self._wait_in_thread(future, outcome)
        assert wait_until(lambda: connection._duty is waiter)
        assert future.cancel()
        waiter.join(5)
        assert not waiter.is_alive(), "result() kept reading after the future was cancelled"
        assert len(outcome) == 1 and isinstance(outcome[0], concurrent.futures.CancelledError)
        assert wait_until(lambda: connection._duty is None)
        Service.release.set()  # block() answers now: a late reply, dropped
        assert connection.request.echo(2) == 2

    def test_the_call_timeout_ends_the_reading(self, connection: Connection) -> None:
        self._idle(connection)
        started = time.monotonic()
        future = connection.future("block", timeout=1.0)()
        outcome: list[Any] = []
        waiter = self._wait_in_thread(future, outcome)
        assert wait_until(lambda: connection._duty is waiter or bool(outcome))
        waiter.join(10)
        assert len(outcome) == 1 and isinstance(outcome[0], RpcTimeoutError)
        assert 1.0 <= time.monotonic() - started < 8
        assert connection.request.echo(3) == 3

    def test_result_timeout_leaves_the_call_running(self, connection: Connection) -> None:
        self._idle(connection)
        future = connection.future.block()
        with pytest.raises(concurrent.futures.TimeoutError):
            future.result(0.1)
        assert not future.done()
        assert wait_until(lambda: connection._duty is None)
        Service.release.set()
        assert future.result(10) == "released"

    def test_close_while_reading_fails_the_future(self, connection: Connection) -> None:
        self._idle(connection)
        future = connection.future.block()
        outcome: list[Any] = []
        waiter = self._wait_in_thread(future, outcome)
        assert wait_until(lambda: connection._duty is waiter)
        connection.close()
        waiter.join(10)
        assert len(outcome) == 1 and isinstance(outcome[0], ConnectionClosedError)

    def test_a_finished_future_answers_without_its_condition(self, connection: Connection) -> None:
        # result() and done() of a finished call read its state without the future's
        # lock (once per call in a loop keeping calls in flight); errors still raise.
        class Unusable:
            def __getattr__(self, name: str) -> Any:
                raise AssertionError(f"the condition was used ({name})")

        future = connection.future.add(1, 2)
        assert future.result(10) == 3
        failed = connection.future.fail(7, "seven")
        assert isinstance(failed.exception(10), RpcError)
        future._condition = Unusable()
        assert future.done()
        assert future.result() == 3
        assert failed.done()
        with pytest.raises(RpcError, match="seven"):
            failed.result()

    def test_many_futures_in_flight_from_several_threads(self, connection: Connection) -> None:
        results: dict[int, list[Any]] = {}

        def work(worker: int) -> None:
            futures = [connection.future.add(worker, i) for i in range(200)]
            results[worker] = [f.result(30) for f in futures]

        workers = [threading.Thread(target=work, args=(w,)) for w in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(60)
        assert results == {w: [w + i for i in range(200)] for w in range(4)}


class TestTimeoutsAndCancellation:
    def test_timeout_raises_and_cancels_on_the_server(
        self, connection: Connection, server: ThreadedPeer
    ) -> None:
        started = time.monotonic()
        with pytest.raises(RpcTimeoutError):
            connection.request("wait_for_cancel", timeout=0.2)()
        assert time.monotonic() - started < 5
        assert isinstance(RpcTimeoutError(), TransportError)
        # The connection stays usable and the server saw the cancellation (its reply,
        # -32800, is dropped quietly as a late reply).
        assert connection.request.echo(1) == 1

    def test_future_timeout(self, connection: Connection) -> None:
        future = connection.future("wait_for_cancel", timeout=0.2)()
        with pytest.raises(RpcTimeoutError):
            future.result(10)

    def test_default_timeout_of_connection(
        self, server: ThreadedPeer, client_peer: ThreadedPeer
    ) -> None:
        listener = server.listen("tcp://127.0.0.1:0")
        connection = client_peer.connect(listener.url, timeout=0.2)
        with pytest.raises(RpcTimeoutError):
            connection.request.block()

    def test_cancel_reaches_running_handler(
        self, connection: Connection, server: ThreadedPeer
    ) -> None:
        future = connection.future.wait_for_cancel()
        assert wait_until(lambda: bool(server.connections and server.connections[0]._serving))
        assert future.cancel()  # sends $/cancelRequest
        # The handler wakes on its cancel_event at once (it would wait 10 s otherwise)
        # and gives up with RpcCancelledError.
        assert wait_until(lambda: not server.connections[0]._serving, timeout=5)
        assert connection.request.echo("still fine") == "still fine"

    def test_closed_connection_fails_pending_calls_at_once(self, connection: Connection) -> None:
        errors: list[BaseException] = []

        def call() -> None:
            try:
                connection.request.block()
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=call)
        thread.start()
        assert wait_until(lambda: connection._endpoint.calls_in_flight == 1)
        started = time.monotonic()
        connection.close()
        thread.join(5)
        assert not thread.is_alive()
        assert time.monotonic() - started < 2
        assert len(errors) == 1 and isinstance(errors[0], ConnectionClosedError)
        assert connection.closed
        with pytest.raises(ConnectionClosedError):
            connection.request.echo(1)


def test_cancelled_while_queued_never_starts() -> None:
    started: list[int] = []
    gate = threading.Event()

    class Slow(Handler):
        def hold(self) -> None:
            gate.wait(10)

        def work(self, n: int) -> int:
            started.append(n)
            return n

    server = ThreadedPeer(default_handler=Slow, workers=1)
    client = ThreadedPeer()
    try:
        listener = server.listen("tcp://127.0.0.1:0")
        connection = client.connect(listener.url)
        hold = connection.future.hold()
        queued = connection.future.work(1)
        assert wait_until(
            lambda: bool(server.connections) and len(server.connections[0]._serving) == 2
        )
        assert queued.cancel()  # $/cancelRequest while "work" waits for the only worker
        serving = server.connections[0]._serving
        assert wait_until(
            lambda: any(c.method == "work" and c.cancelled for c in list(serving.values()))
        )
        gate.set()
        hold.result(10)
        assert connection.request.work(2) == 2
        assert started == [2]
    finally:
        gate.set()
        client.shutdown()
        server.shutdown()


def test_cancelled_handler_replies_32800() -> None:
    class Svc(Handler):
        def wait(self) -> None:
            from rpcbd import current_call

            call = current_call()
            assert call is not None
            call.cancel_event.wait(10)
            call.raise_if_cancelled()

    server = ThreadedPeer(default_handler=Svc)
    try:
        listener = server.listen("tcp://127.0.0.1:0")
        with socket.create_connection(("127.0.0.1", listener.port), timeout=5) as sock:
            sock.sendall(b'{"jsonrpc":"2.0","method":"wait","id":5}\n')
            sock.sendall(b'{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":5}}\n')
            reply = sock.recv(4096)
        assert (
            reply
            == b'{"jsonrpc":"2.0","error":{"code":-32800,"message":"Request cancelled"},"id":5}\n'
        )
        assert RpcCancelledError.code == -32800
    finally:
        server.shutdown()


def test_wire_trace_logger(
    server: ThreadedPeer, client_peer: ThreadedPeer, caplog: pytest.LogCaptureFixture
) -> None:
    listener = server.listen("tcp://127.0.0.1:0")
    with caplog.at_level(logging.DEBUG, logger="rpcbd.wire"):
        connection = client_peer.connect(listener.url)
        assert connection.request.echo("traced") == "traced"
    lines = [r.getMessage() for r in caplog.records if r.name == "rpcbd.wire"]
    assert any(line.startswith("--> ") and '"method":"echo"' in line for line in lines)
    assert any(line.startswith("<-- ") and '"result":"traced"' in line for line in lines)


def test_ipv6_loopback(server: ThreadedPeer, client_peer: ThreadedPeer) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        listener = server.listen_tcp(0, bind="::1")
    except OSError as exc:
        pytest.skip(f"cannot bind ::1: {exc}")
    assert listener.url.startswith("tcp://[::1]:")
    connection = client_peer.connect_tcp("::1", listener.port)
    assert connection.request.echo("v6") == "v6"


def test_reader_thread_error_is_clear() -> None:
    class Inline(Handler):
        @willnotblock
        def call_back(self) -> Any:
            return self.connection.request.anything()

    a, b = ThreadedPeer(default_handler=Inline), ThreadedPeer()
    try:
        first, second = b.pipe_pair(a)
        with pytest.raises(RpcInternalError):
            first.request.call_back()
        with pytest.raises(LocalProtocolError, match="deadlock"):
            # The same guard, triggered directly from a reader thread.
            second._reader = threading.current_thread()
            second.request.x()
    finally:
        a.shutdown()
        b.shutdown()


class TestManyMessagesInOneRead:
    """More messages in one read than EVENT_BATCH: the reader takes them from the
    endpoint a batch at a time (see Endpoint.events_received) and serves every one."""

    @staticmethod
    def _stream(count: int) -> tuple[bytes, list[Any]]:
        messages, replies = [], []
        for i in range(count):
            if i % 3 == 0:
                messages.append(b'{"jsonrpc":"2.0","id":%d,"method":"echo","params":[%d]}' % (i, i))
                replies.append({"jsonrpc": "2.0", "id": i, "result": i})
            else:
                messages.append(b'{"jsonrpc":"2.0","method":"echo","params":[%d]}' % i)
        return b"\n".join(messages) + b"\n", replies

    def test_every_message_is_served_in_order(self) -> None:
        peer = ThreadedPeer(default_handler=Service, partial_message_timeout=30)
        try:
            listener = peer.listen("tcp://127.0.0.1:0")
            stream, expected = self._stream(5 * EVENT_BATCH + 7)
            with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
                sock.sendall(stream)
                received = b""
                while received.count(b"\n") < len(expected):
                    chunk = sock.recv(65536)
                    assert chunk, "the server closed the connection"
                    received += chunk
                assert [json.loads(line) for line in received.splitlines()] == expected
                # Every whole frame was taken: no slow-sender timer runs.
                (server_side,) = peer.connections
                assert server_side._partial_timer is None
                sock.sendall(b'{"jsonrpc":"2.0","id":1,"me')  # half a message
                assert wait_until(lambda: server_side._partial_timer is not None)
        finally:
            peer.shutdown()
