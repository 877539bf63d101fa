"""AsyncPeer: life cycle (nothing outlives shutdown), options, limits, and the wire-level
cancellation rules, checked with raw JSON on an in-memory pipe."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from typing import Any

import pytest

from rpcbd import (
    Handler,
    LocalProtocolError,
    RpcInvalidError,
    RpcServerBusyError,
    RpcServerError,
    RpcTimeoutError,
    TransportError,
    current_call,
    mayblock,
)
from rpcbd.aio import AsyncPeer
from rpcbd.aio.transports import MemoryTransport, memory_pair
from tests.aio.conftest import wait_until


class Work(Handler):
    gate: threading.Event
    ran: list[str]

    async def echo(self, value: Any) -> Any:
        return value

    async def forever(self) -> None:
        await asyncio.Event().wait()

    @mayblock
    def blocked(self) -> str:
        # A thread handler gives up when cancelled (threads cannot be interrupted).
        call = current_call()
        assert call is not None
        type(self).ran.append("blocked")
        if call.cancel_event.wait(30):
            call.raise_if_cancelled()
        return "unblocked"

    @mayblock
    def gated(self) -> str:
        type(self).ran.append("gated")
        type(self).gate.wait(30)
        return "through"

    @mayblock
    def record(self) -> str:
        type(self).ran.append("record")
        return "recorded"

    async def record_async(self) -> str:
        type(self).ran.append("record_async")
        return "recorded"


@pytest.fixture(autouse=True)
def _reset_work() -> Any:
    Work.gate = threading.Event()
    Work.ran = []
    yield
    Work.gate.set()  # never leave a worker thread waiting


def test_shutdown_with_work_in_flight_leaves_nothing_behind(arun: Any) -> None:
    async def main() -> None:
        server = AsyncPeer(default_handler=Work)
        client = AsyncPeer()
        listener = await server.listen("tcp://127.0.0.1:0")
        conns = [await client.connect(listener.url) for _ in range(10)]
        pending = [asyncio.create_task(c.request.forever()) for c in conns]
        pending += [asyncio.create_task(c.request.blocked()) for c in conns[:3]]
        await wait_until(lambda: len(Work.ran) == 3)
        loop = asyncio.get_running_loop()
        start = loop.time()
        await server.shutdown()
        await client.shutdown()
        assert loop.time() - start < 2.0
        for task in pending:
            with pytest.raises(TransportError):
                await task
        assert server.connections == [] and server.listeners == []
        assert server.is_shut_down
        with pytest.raises(LocalProtocolError):
            await server.connect(listener.url)
        await server.shutdown()  # idempotent

    arun(main)  # the runner fails on any task, thread or descriptor left over


def test_idle_shutdown_is_prompt(arun: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with AsyncPeer(default_handler=Work) as peer:
            listener = await peer.listen("tcp://127.0.0.1:0")
            conn = await peer.connect(listener.url)
            assert await conn.request.echo(1) == 1
            assert await conn.request.record() == "recorded"  # starts the thread pool
            start = loop.time()
        assert loop.time() - start < 1.0  # "well under a second when idle"

    arun(main)


def test_serve_forever_returns_after_shutdown(arun: Any) -> None:
    async def main() -> None:
        peer = AsyncPeer(default_handler=Work)
        await peer.listen("tcp://127.0.0.1:0")
        serving = asyncio.create_task(peer.serve_forever())
        await asyncio.sleep(0)
        assert not serving.done()
        await peer.shutdown()
        await asyncio.wait_for(serving, 2)
        # And once shut down it returns at once.
        await asyncio.wait_for(peer.serve_forever(), 2)

    arun(main)


def test_options_merge_and_override(arun: Any) -> None:
    with pytest.raises(TypeError, match="unknown option"):
        AsyncPeer(no_such_option=1)

    async def main() -> None:
        async with AsyncPeer(default_handler=Work, framing="content-length") as server:
            listener = await server.listen("tcp://127.0.0.1:0", max_message_size=1000)
            with pytest.raises(TypeError):
                await server.listen("tcp://127.0.0.1:0", bogus=True)
            async with AsyncPeer(framing="content-length") as client:
                conn = await client.connect(listener.url)
                assert await conn.request.echo("small") == "small"
                # Over the listener's limit: the body is skipped and answered -32600 with
                # id null (the id was never read), so the call itself can only time out;
                # the connection lives on.
                with pytest.raises(RpcTimeoutError):
                    await conn.request("echo", timeout=0.3)("x" * 5000)
                assert await conn.request.echo("again") == "again"
        # The same option on a raw connection shows the reply itself.
        async with AsyncPeer(default_handler=Work) as peer:
            ours, theirs = memory_pair()
            await peer.connect_transport(ours, max_message_size=100)
            raw = Raw(theirs)
            await raw.send(request(1, "echo", ["y" * 500]))
            reply = await raw.receive()
            assert reply["id"] is None and reply["error"]["code"] == RpcInvalidError.code
            assert reply["error"]["data"] == {"reason": "message too large", "limit": 100}
            await raw.send(request(2, "echo", ["ok"]))
            assert (await raw.receive())["result"] == "ok"

    arun(main)


def test_max_connections(arun: Any) -> None:
    async def main() -> None:
        async with AsyncPeer(default_handler=Work) as server, AsyncPeer() as client:
            listener = await server.listen("tcp://127.0.0.1:0", max_connections=1)
            first = await client.connect(listener.url)
            assert await first.request.echo(1) == 1
            second = await client.connect(listener.url)
            await asyncio.wait_for(second.wait_closed(), 5)  # refused by the server
            assert len(listener.connections) == 1

    arun(main)


def test_worker_queue_full_is_server_busy(arun: Any) -> None:
    async def main() -> None:
        async with (
            AsyncPeer(default_handler=Work, workers=1, max_queue=0) as server,
            AsyncPeer() as client,
        ):
            listener = await server.listen("tcp://127.0.0.1:0")
            conn = await client.connect(listener.url)
            first = asyncio.create_task(conn.request.gated())
            await wait_until(lambda: Work.ran == ["gated"])
            # -32000 comes back as RpcServerError (the code's class), data says why.
            with pytest.raises(RpcServerError) as info:
                await conn.request.record()
            assert info.value.code == RpcServerBusyError.code
            assert info.value.data == {"reason": "worker queue full", "limit": 0}
            Work.gate.set()
            assert await first == "through"
            assert await conn.request.record() == "recorded"

    arun(main)


# -- raw wire tests ----------------------------------------------------------------------


class Raw:
    """The far end of an in-memory pipe, speaking raw JSON."""

    def __init__(self, transport: MemoryTransport) -> None:
        self.transport = transport

    async def send(self, message: Any) -> None:
        await self.transport.write([json.dumps(message).encode()])

    async def receive(self) -> Any:
        data = await asyncio.wait_for(self.transport.read(), 5)
        assert data is not None
        return json.loads(data)


async def raw_connection(peer: AsyncPeer) -> Raw:
    ours, theirs = memory_pair()
    await peer.connect_transport(ours)
    return Raw(theirs)


def request(id: int, method: str, params: Any = None) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        message["params"] = params
    return message


def cancel(id: int) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": id}}


def test_cancel_request_cancels_the_task_and_replies_32800(arun: Any) -> None:
    async def main() -> None:
        async with AsyncPeer(default_handler=Work) as peer:
            raw = await raw_connection(peer)
            await raw.send(request(1, "forever"))
            await raw.send(request(2, "echo", ["after"]))
            assert await raw.receive() == {"jsonrpc": "2.0", "id": 2, "result": "after"}
            await raw.send(cancel(1))
            reply = await raw.receive()
            assert reply["id"] == 1 and reply["error"]["code"] == -32800
            # A cancel for an unknown or finished id is ignored; the stream goes on.
            await raw.send(cancel(99))
            await raw.send(request(3, "echo", [3]))
            assert (await raw.receive())["result"] == 3

    arun(main)


def test_thread_handler_sees_cancellation(arun: Any) -> None:
    async def main() -> None:
        async with AsyncPeer(default_handler=Work) as peer:
            raw = await raw_connection(peer)
            await raw.send(request(1, "blocked"))
            await wait_until(lambda: Work.ran == ["blocked"])
            await raw.send(cancel(1))
            reply = await raw.receive()
            assert reply["id"] == 1 and reply["error"]["code"] == -32800

    arun(main)


def test_request_cancelled_while_queued_never_starts(arun: Any) -> None:
    async def main() -> None:
        async with AsyncPeer(default_handler=Work, workers=1) as peer:
            raw = await raw_connection(peer)
            # Thread pool: the one worker is busy, request 2 waits in the queue.
            await raw.send(request(1, "gated"))
            await wait_until(lambda: Work.ran == ["gated"])
            await raw.send(request(2, "record"))
            await raw.send(cancel(2))
            await raw.send(request(3, "echo", ["marker"]))
            assert (await raw.receive())["id"] == 3  # the cancel has been read
            Work.gate.set()
            replies = {r["id"]: r for r in [await raw.receive(), await raw.receive()]}
            assert replies[1]["result"] == "through"
            assert replies[2]["error"]["code"] == -32800
            # Tasks: request and cancel read together; the task is cancelled before it
            # ever runs.
            await raw.send([request(4, "record_async"), cancel(4)])
            batch = await raw.receive()
            assert batch == [
                {
                    "jsonrpc": "2.0",
                    "id": 4,
                    "error": {"code": -32800, "message": batch[0]["error"]["message"]},
                }
            ]
            assert Work.ran == ["gated"]  # neither "record" nor "record_async" ran

    arun(main)


def test_max_calls_in_flight_makes_callers_wait(arun: Any) -> None:
    class Tracked(Handler):
        running = 0
        peak = 0

        async def work(self, n: int) -> int:
            cls = type(self)
            cls.running += 1
            cls.peak = max(cls.peak, cls.running)
            await asyncio.sleep(0.001)
            cls.running -= 1
            return n

    async def main() -> None:
        async with (
            AsyncPeer(default_handler=Tracked) as server,
            AsyncPeer(max_calls_in_flight=4) as client,
        ):
            listener = await server.listen("tcp://127.0.0.1:0")
            conn = await client.connect(listener.url)
            results = await asyncio.gather(*(conn.request.work(i) for i in range(50)))
            assert results == list(range(50))
            assert Tracked.peak <= 4  # never more than 4 calls in flight
            batch = conn.create_batchedcalls_proxy()
            for i in range(5):
                batch.request.work(i)
            with pytest.raises(LocalProtocolError):
                await batch.send()  # 5 calls can never fit under the bound of 4

    arun(main)


def test_partial_message_timeout_closes_a_slow_sender(arun: Any) -> None:
    async def main() -> None:
        async with AsyncPeer(default_handler=Work, partial_message_timeout=0.2) as server:
            listener = await server.listen("tcp://127.0.0.1:0")
            reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
            writer.write(b'{"jsonrpc": "2.0", "id": 1, "meth')  # and then nothing
            await writer.drain()
            loop = asyncio.get_running_loop()
            start = loop.time()
            assert await asyncio.wait_for(reader.read(), 5) == b""  # the server closed
            assert 0.15 < loop.time() - start < 3.0
            writer.close()
            await writer.wait_closed()

    arun(main)


SERVE_SCRIPT = """
import asyncio, sys
sys.path.insert(0, sys.argv[1])
from rpcbd.aio import AsyncPeer

async def main():
    peer = AsyncPeer()
    listener = await peer.listen("tcp://127.0.0.1:0")
    serving = asyncio.create_task(peer.serve_forever())
    await asyncio.sleep(0)  # serve_forever has installed its signal handlers
    print(listener.port, flush=True)
    await serving
    print("clean shutdown", flush=True)

asyncio.run(main())
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serve_forever_shuts_down_on_signal(signum: int) -> None:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE_SCRIPT, root], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        assert port > 0
        process.send_signal(signum)
        assert process.wait(10) == 0
        assert process.stdout.read() == "clean shutdown\n"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
