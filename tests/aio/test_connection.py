"""AsyncConnection: calls both ways, notifications, callbacks, batches, errors, cancellation,
timeouts, back pressure, and calls from other threads. Each test runs over an in-memory
pipe and over TCP on loopback."""

from __future__ import annotations

import asyncio
import threading
import weakref
from typing import Any

import pytest

from rpcbd import (
    JSONRPC_V1,
    ConnectionClosedError,
    Handler,
    LocalProtocolError,
    RpcCancelledError,
    RpcError,
    RpcInternalError,
    RpcInvalidParamsError,
    RpcMethodNotFoundError,
    RpcTimeoutError,
    current_call,
    exposed,
    mayblock,
    willnotblock,
)
from rpcbd.aio import AsyncPeer, AsyncRemoteCallback, pipe_pair
from tests.aio.conftest import make_pair, wait_until

KINDS = ["pipe", "tcp"]


class Server(Handler):
    def __init__(self) -> None:
        self.notes: list[Any] = []
        self.noted = asyncio.Event()
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def echo(self, value: Any) -> Any:
        return value

    @willnotblock
    def add(self, a: int, b: int) -> int:
        return a + b

    @mayblock
    def thread_name(self) -> str:
        return threading.current_thread().name

    async def ask_client(self, value: int) -> Any:
        # The server calls the client while the client's call is in flight.
        return await self.connection.request.client_double(value)

    @mayblock
    def ask_client_from_thread(self, value: int) -> Any:
        return self.connection.blocking.client_double(value)

    @mayblock
    def count(self, n: int, callback: AsyncRemoteCallback) -> str:
        for i in range(1, n + 1):
            callback(f"Counted to {i}")
        return f"Counted to {n}"

    async def acount(self, n: int, callback: AsyncRemoteCallback) -> list[Any]:
        # Callbacks called as requests return the client's values.
        return [await callback.request(i) for i in range(n)]

    async def call_named(self, name: str, value: Any) -> None:
        self.connection.notification(name)(value)

    @willnotblock
    def note(self, *args: Any) -> None:
        self.notes.append(list(args))
        self.noted.set()

    async def fail(self, code: int) -> None:
        raise RpcError(code, "custom failure", data={"why": "asked"})

    async def crash(self) -> None:
        raise ValueError("secret")

    async def hold(self, value: Any) -> None:
        self.started.set()
        await asyncio.Event().wait()

    async def wait_forever(self) -> None:
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise

    async def context(self) -> dict[str, Any]:
        call = current_call()
        assert call is not None
        return {
            "id": call.id,
            "method": call.method,
            "is_asyncio_event": isinstance(call.cancel_event, asyncio.Event),
            "same_connection": call.connection is self.connection,
        }

    @mayblock
    def thread_context(self) -> dict[str, Any]:
        call = current_call()
        assert call is not None
        return {
            "method": call.method,
            "is_thread_event": isinstance(call.cancel_event, threading.Event),
        }

    @exposed("textDocument/hover")
    async def hover(self) -> str:
        return "hovered"


class Client(Handler):
    async def client_double(self, value: int) -> int:
        return value * 2

    def __init__(self) -> None:
        self.named: list[Any] = []
        self.got_named = asyncio.Event()
        self.waiting = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def client_wait(self) -> None:
        self.waiting.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise

    @willnotblock
    def on_named(self, value: Any) -> None:
        self.named.append(value)
        self.got_named.set()


def _instantiate(conn: Any, cls: type) -> Any:
    return conn._handler_instance(cls)


@pytest.mark.parametrize("kind", KINDS)
def test_requests_both_ways(arun: Any, kind: str) -> None:
    async def main() -> None:
        pair = await make_pair(kind, Server, Client)
        try:
            assert await pair.conn.request.echo({"a": [1, 2]}) == {"a": [1, 2]}
            assert await pair.conn.request.add(2, 3) == 5
            assert await pair.conn.request.add(a=2, b=5) == 7
            assert await pair.conn.request("textDocument/hover")() == "hovered"
            assert (await pair.conn.request.thread_name()).startswith("rpcbd-aio-worker")
            # The server calls the client, and does so while the client's call is in flight.
            assert await pair.server_conn.request.client_double(4) == 8
            assert await pair.conn.request.ask_client(21) == 42
            assert await pair.conn.request.ask_client_from_thread(5) == 10
            # Many calls in flight at once on one connection.
            results = await asyncio.gather(*(pair.conn.request.echo(i) for i in range(200)))
            assert results == list(range(200))
        finally:
            await pair.aclose()

    arun(main)


@pytest.mark.parametrize("kind", KINDS)
def test_notifications_arrive_in_order(arun: Any, kind: str) -> None:
    async def main() -> None:
        pair = await make_pair(kind, Server, Client)
        try:
            handler = _instantiate(pair.server_conn, Server)
            assert pair.conn.notification.note(1) is None  # a plain method, returns at once
            pair.conn.notify.note(2, "x")
            pair.conn.notification("note")(3)
            await pair.conn.drain()
            await wait_until(lambda: len(handler.notes) == 3)
            assert handler.notes == [[1], [2, "x"], [3]]
        finally:
            await pair.aclose()

    arun(main)


@pytest.mark.parametrize("kind", KINDS)
def test_implicit_callbacks_run_in_the_callers_task_in_order(arun: Any, kind: str) -> None:
    async def main() -> None:
        pair = await make_pair(kind, Server, Client)
        try:
            me = asyncio.current_task()
            seen: list[tuple[str, bool]] = []

            def progress(message: str) -> None:
                seen.append((message, asyncio.current_task() is me))

            result = await pair.conn.request.count(5, progress)
            assert result == "Counted to 5"
            assert seen == [(f"Counted to {i}", True) for i in range(1, 6)]

            async def square(value: int) -> int:
                await asyncio.sleep(0)
                assert asyncio.current_task() is me
                return value * value

            assert await pair.conn.request.acount(4, square) == [0, 1, 4, 9]
            # Callback names are valid only until the final response: none is left.
            assert pair.conn._callbacks == {}
        finally:
            await pair.aclose()

    arun(main)


@pytest.mark.parametrize("kind", KINDS)
def test_explicit_callback_by_method_name(arun: Any, kind: str) -> None:
    async def main() -> None:
        pair = await make_pair(kind, Server, Client)
        try:
            await pair.conn.request.call_named("on_named", "hello")
            client_handler = _instantiate(pair.conn, Client)
            await asyncio.wait_for(client_handler.got_named.wait(), 5)
            assert client_handler.named == ["hello"]
        finally:
            await pair.aclose()

    arun(main)


@pytest.mark.parametrize("kind", KINDS)
def test_batches(arun: Any, kind: str) -> None:
    async def main() -> None:
        pair = await make_pair(kind, Server, Client)
        try:
            handler = _instantiate(pair.server_conn, Server)
            batch = pair.conn.create_batchedcalls_proxy()
            assert batch.request.echo("a") == 0
            batch.notification.note("batched")
            assert batch.request.add(1, 2) == 1
            assert batch.request.missing() == 2
            assert len(batch) == 4
            results = await batch.send()
            assert results is not None
            assert results[:2] == ("a", 3)
            assert isinstance(results[2], RpcMethodNotFoundError)
            await wait_until(lambda: handler.notes == [["batched"]])
            # The handler form: send() returns at once, the handler gets the tuple.
            batch.reset()
            batch.request.echo(7)
            got: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            assert await batch.send(got.set_result) is None
            assert await asyncio.wait_for(got, 5) == (7,)
        finally:
            await pair.aclose()

    arun(main)


@pytest.mark.parametrize("kind", KINDS)
def test_errors_keep_code_message_and_data(arun: Any, kind: str) -> None:
    async def main() -> None:
        pair = await make_pair(kind, Server, Client)
        try:
            with pytest.raises(RpcError) as info:
                await pair.conn.request.fail(4242)
            assert (info.value.code, info.value.message, info.value.data) == (
                4242,
                "custom failure",
                {"why": "asked"},
            )
            with pytest.raises(RpcInternalError) as internal:
                await pair.conn.request.crash()
            assert "secret" not in str(internal.value.data)  # tracebacks stay local
            with pytest.raises(RpcInvalidParamsError):
                await pair.conn.request.add(1)
            with pytest.raises(RpcMethodNotFoundError):
                await pair.conn.request.nope()
            with pytest.raises(ValueError):
                await pair.conn.request.add(1, b=2)
        finally:
            await pair.aclose()

    arun(main)


@pytest.mark.parametrize("kind", KINDS)
def test_current_call_in_handlers(arun: Any, kind: str) -> None:
    async def main() -> None:
        pair = await make_pair(kind, Server, Client)
        try:
            info = await pair.conn.request.context()
            assert info["method"] == "context"
            assert isinstance(info["id"], int)
            assert info["is_asyncio_event"] and info["same_connection"]
            thread_info = await pair.conn.request.thread_context()
            assert thread_info == {"method": "thread_context", "is_thread_event": True}
        finally:
            await pair.aclose()

    arun(main)


@pytest.mark.parametrize("kind", KINDS)
def test_timeout_cancels_the_handler(arun: Any, kind: str) -> None:
    async def main() -> None:
        pair = await make_pair(kind, Server, Client)
        try:
            handler = _instantiate(pair.server_conn, Server)
            loop = asyncio.get_running_loop()
            start = loop.time()
            with pytest.raises(RpcTimeoutError):
                await pair.conn.request("wait_forever", timeout=0.2)()
            assert 0.15 < loop.time() - start < 2.0
            # $/cancelRequest reached the server: its handler task was cancelled.
            await asyncio.wait_for(handler.cancelled.wait(), 5)
            assert pair.conn._waiters == {}
            # The connection still works.
            assert await pair.conn.request.echo("after") == "after"
        finally:
            await pair.aclose()

    arun(main)


@pytest.mark.parametrize("kind", KINDS)
def test_default_timeouts(arun: Any, kind: str) -> None:
    async def main() -> None:
        pair = await make_pair(kind, Server, Client, default_timeout=0.1)
        try:
            with pytest.raises(RpcTimeoutError):
                await pair.conn.request.wait_forever()
            pair.conn.default_timeout = None
            pair.client.default_timeout = 0.1
            with pytest.raises(RpcTimeoutError):
                await pair.conn.request("wait_forever", timeout=0.1)()
            with pytest.raises(ValueError):
                await pair.conn.request("echo", timeout=-5)(1)
        finally:
            await pair.aclose()

    arun(main)


@pytest.mark.parametrize("kind", KINDS)
def test_cancelling_the_awaiting_task_cancels_the_remote_handler(arun: Any, kind: str) -> None:
    async def main() -> None:
        pair = await make_pair(kind, Server, Client)
        try:
            handler = _instantiate(pair.server_conn, Server)
            task = asyncio.create_task(pair.conn.request.wait_forever())
            await asyncio.wait_for(handler.started.wait(), 5)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.wait_for(handler.cancelled.wait(), 5)
            assert await pair.conn.request.echo(1) == 1
            # The other way: the server's call into the client, cancelled by its task.
            client_handler = _instantiate(pair.conn, Client)
            reverse = asyncio.create_task(pair.server_conn.request.client_wait())
            await asyncio.wait_for(client_handler.waiting.wait(), 5)
            reverse.cancel()
            with pytest.raises(asyncio.CancelledError):
                await reverse
            await asyncio.wait_for(client_handler.cancelled.wait(), 5)
            assert pair.conn._serving == {}
            future = pair.conn.future.wait_forever()
            handler.cancelled.clear()
            await wait_until(lambda: pair.server_conn._serving != {})
            future.cancel()
            await asyncio.wait_for(handler.cancelled.wait(), 5)
        finally:
            await pair.aclose()

    arun(main)


@pytest.mark.parametrize("kind", KINDS)
def test_closing_fails_pending_calls_at_once(arun: Any, kind: str) -> None:
    async def main() -> None:
        pair = await make_pair(kind, Server, Client)
        try:
            handler = _instantiate(pair.server_conn, Server)
            pending = [asyncio.create_task(pair.conn.request.wait_forever()) for _ in range(3)]
            await asyncio.wait_for(handler.started.wait(), 5)
            loop = asyncio.get_running_loop()
            start = loop.time()
            await pair.server_conn.aclose()  # the other side goes away
            for task in pending:
                with pytest.raises(ConnectionClosedError):
                    await task
            assert loop.time() - start < 1.0
            assert pair.conn.closed
            with pytest.raises(ConnectionClosedError):
                await pair.conn.request.echo(1)
            with pytest.raises(ConnectionClosedError):
                pair.conn.notification.note(1)
        finally:
            await pair.aclose()

    arun(main)


def test_calls_from_another_thread(arun: Any) -> None:
    async def main() -> None:
        pair = await make_pair("tcp", Server, Client)
        try:
            conn = pair.conn
            results: dict[str, Any] = {}

            def worker() -> None:
                results["call"] = conn.call_threadsafe("echo", "from thread")
                results["blocking"] = conn.blocking.add(4, 5)
                conn.notify_threadsafe("note", "thread note")
                try:
                    conn.call_threadsafe("fail", 7)
                except RpcError as exc:
                    results["error"] = exc.code
                try:
                    conn.blocking("wait_forever", timeout=0.1)()
                except RpcTimeoutError:
                    results["timeout"] = True

            thread = threading.Thread(target=worker, name="test-caller")
            thread.start()
            await wait_until(lambda: not thread.is_alive(), 10)
            thread.join()
            assert results == {"call": "from thread", "blocking": 9, "error": 7, "timeout": True}
            handler = _instantiate(pair.server_conn, Server)
            await wait_until(lambda: handler.notes == [["thread note"]])
            # On the loop's own thread it would deadlock: refused.
            with pytest.raises(LocalProtocolError):
                conn.call_threadsafe("echo", 1)
            with pytest.raises(LocalProtocolError):
                conn.blocking.echo(1)
        finally:
            await pair.aclose()

    arun(main)


class Gate(Handler):
    """Handlers that wait for the test to open a gate, counting how many run at once."""

    gate: asyncio.Event
    running = 0
    peak = 0
    started: list[int]

    async def hold(self, n: int) -> int:
        cls = type(self)
        cls.running += 1
        cls.peak = max(cls.peak, cls.running)
        cls.started.append(n)
        await cls.gate.wait()
        cls.running -= 1
        return n


def test_back_pressure_bounds_incoming_work(arun: Any) -> None:
    async def main() -> None:
        Gate.gate = asyncio.Event()
        Gate.running = Gate.peak = 0
        Gate.started = []
        pair = await make_pair("tcp", Gate, None, server_options={"max_pending_requests": 4})
        try:
            futures = [pair.conn.future.hold(i) for i in range(20)]
            await wait_until(lambda: len(Gate.started) == 4)
            # The server stops reading at its bound: the other 16 wait in the socket.
            for _ in range(20):
                await asyncio.sleep(0.005)
            assert len(Gate.started) == 4
            assert not pair.server_conn._endpoint.wants_data()
            Gate.gate.set()
            assert await asyncio.wait_for(asyncio.gather(*futures), 10) == list(range(20))
            assert Gate.peak == 4
        finally:
            await pair.aclose()

    arun(main)


def test_jsonrpc_v1_dialect(arun: Any) -> None:
    async def main() -> None:
        pair = await make_pair("tcp", Server, Client, dialect=JSONRPC_V1)
        try:
            assert await pair.conn.request.add(1, 2) == 3
            with pytest.raises(RpcMethodNotFoundError):
                await pair.conn.request.nope()
        finally:
            await pair.aclose()

    arun(main)


def test_module_pipe_pair(arun: Any) -> None:
    async def main() -> None:
        a, b = pipe_pair(Client, Server)
        assert await a.request.echo(1) == 1
        assert await b.request.client_double(2) == 4
        await a.aclose()
        await b.wait_closed()
        assert a.closed and b.closed
        assert a.peer.is_shut_down and b.peer.is_shut_down

    arun(main)


def test_async_proxy_reports_results(arun: Any) -> None:
    async def main() -> None:
        pair = await make_pair("pipe", Server, Client)
        try:
            results: dict[Any, Any] = {}
            done = asyncio.Event()

            async def handler(key: Any, value: Any) -> None:
                results[key] = value
                if len(results) == 2:
                    done.set()

            proxy = pair.conn.create_async_proxy(handler)
            k1 = proxy.echo("x")
            k2 = proxy("nope")()
            assert k1 != k2
            await asyncio.wait_for(done.wait(), 5)
            assert results[k1] == "x"
            assert isinstance(results[k2], RpcMethodNotFoundError)
        finally:
            await pair.aclose()

    arun(main)


class Hooks(Handler):
    events: list[str]
    closed: asyncio.Event

    async def on_connect(self) -> None:
        type(self).events.append("connect")

    def on_disconnect(self) -> None:
        type(self).events.append("disconnect")

    async def ping(self) -> str:
        return "pong"


def test_connect_and_disconnect_hooks(arun: Any) -> None:
    async def main() -> None:
        Hooks.events = []
        peer = AsyncPeer(default_handler=Hooks)
        other = AsyncPeer()
        try:
            a, b = other.pipe_pair(peer)
            assert await a.request.ping() == "pong"
            await wait_until(lambda: Hooks.events == ["connect"])
            await a.aclose()
            await b.wait_closed()
            await wait_until(lambda: Hooks.events == ["connect", "disconnect"])
        finally:
            await other.shutdown()
            await peer.shutdown()

    arun(main)


def test_cancelled_error_raised_by_handler_is_minus_32800(arun: Any) -> None:
    class Refuses(Handler):
        async def refuse(self) -> None:
            raise RpcCancelledError()

    async def main() -> None:
        pair = await make_pair("pipe", Refuses)
        try:
            with pytest.raises(RpcCancelledError) as info:
                await pair.conn.request.refuse()
            assert info.value.code == -32800
        finally:
            await pair.aclose()

    arun(main)


def test_writes_wait_for_a_slow_reader(arun: Any) -> None:
    async def main() -> None:
        reading = asyncio.Event()
        received = 0
        done = asyncio.Event()

        async def slow_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal received
            await reading.wait()  # does not read until told to
            while data := await reader.read(1 << 16):
                received += len(data)
            writer.close()
            await writer.wait_closed()
            done.set()

        server = await asyncio.start_server(slow_server, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        peer = AsyncPeer()
        try:
            conn = await peer.connect(f"tcp://127.0.0.1:{port}")
            chunk = "x" * (1 << 20)
            for _ in range(32):  # 32 MiB: far more than the socket buffers hold
                conn.notification.bulk(chunk)
            # The writer task waits in drain(): the bytes stay queued, not lost.
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(conn.drain()), 0.3)
            assert conn._writer_task is not None  # parked in the transport's drain()
            reading.set()
            await asyncio.wait_for(conn.drain(), 20)
            await conn.aclose()
            await asyncio.wait_for(done.wait(), 20)
            assert received >= 32 * (1 << 20)
        finally:
            await peer.shutdown()
            server.close()
            await server.wait_closed()

    arun(main)


class _Referable(str):
    """A string a weak reference can follow."""


@pytest.mark.parametrize("kind", KINDS)
def test_a_call_in_flight_does_not_keep_its_arguments(arun: Any, kind: str) -> None:
    # Once the request is encoded and queued, only its bytes are needed: a large
    # argument's memory is freed then, not when the reply comes.
    async def main() -> None:
        pair = await make_pair(kind, Server, Client)
        try:
            argument = _Referable("x" * 100_000)
            alive = weakref.ref(argument)
            call = asyncio.create_task(pair.conn.request.hold(argument))
            del argument
            server = _instantiate(pair.server_conn, Server)
            await asyncio.wait_for(server.started.wait(), 5)
            assert not call.done()
            still_held = alive() is not None
            assert not still_held, "the call in flight still holds its argument"
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
        finally:
            await pair.aclose()

    arun(main)
