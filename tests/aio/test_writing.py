"""How AsyncConnection writes: at once when it can, one write for a burst, a writer task
only under back pressure (or for a transport that cannot write without waiting), and a
bounded final flush. Whichever path writes, the peer gets the bytes in the order the
endpoint queued them.

Most tests drive a scripted stream transport, so that what is read, what is written
(write by write) and when the transport has room are all decided by the test."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rpcbd.aio.connection
import rpcbd.aio.transports
from rpcbd import Handler, willnotblock
from rpcbd.aio import AsyncConnection, AsyncPeer
from rpcbd.aio.connection import BURST_WRITE
from rpcbd.aio.transports import AsyncTransport, memory_pair
from rpcbd.exceptions import ConnectionClosedError
from tests.aio.conftest import run_async, wait_until

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class ScriptedStream(AsyncTransport):
    """A newline stream whose reads, writes and room are scripted by the test.

    ``writes`` has one entry per write (``write_nowait`` or ``write``), the chunks joined.
    While ``full`` is true, ``write_nowait`` reports back pressure and ``drain`` (and
    ``write``) wait until the test calls :meth:`make_room`.
    """

    description = "scripted"

    def __init__(self, *, nowait: bool = True) -> None:
        self.writes_nowait = nowait
        self.incoming: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.writes: list[bytes] = []
        self.full = False
        self._room = asyncio.Event()
        self.aborted = False

    def feed(self, data: bytes | None) -> None:
        self.incoming.put_nowait(data)

    def make_room(self) -> None:
        self.full = False
        self._room.set()

    @property
    def wire(self) -> bytes:
        return b"".join(self.writes)

    async def read(self) -> bytes | None:
        if self.aborted:
            return None
        data = await self.incoming.get()
        return None if self.aborted else data

    def write_nowait(self, chunks: list[bytes]) -> bool:
        if self.aborted:
            raise ConnectionClosedError("aborted")
        self.writes.append(b"".join(chunks))
        return self.full

    async def drain(self) -> None:
        while self.full and not self.aborted:
            self._room.clear()
            await self._room.wait()
        if self.aborted:
            raise ConnectionClosedError("aborted")

    async def write(self, chunks: list[bytes]) -> None:
        await self.drain()
        self.write_nowait(chunks)
        await self.drain()

    def abort(self) -> None:
        if not self.aborted:
            self.aborted = True
            self.incoming.put_nowait(None)
            self._room.set()

    async def aclose(self) -> None:
        self.abort()


class Inline(Handler):
    @willnotblock
    def echo(self, value: Any) -> Any:
        return value

    @willnotblock
    def note(self, value: Any) -> None:
        pass


def lines(wire: bytes) -> list[Any]:
    return [json.loads(line) for line in wire.splitlines()]


def request(id: int, method: str, *params: Any) -> bytes:
    return json.dumps(
        {"jsonrpc": "2.0", "id": id, "method": method, "params": list(params)}
    ).encode()


async def open_scripted(
    peer: AsyncPeer, *, nowait: bool = True
) -> tuple[AsyncConnection, ScriptedStream]:
    transport = ScriptedStream(nowait=nowait)
    connection = await peer.connect_transport(transport)
    return connection, transport


async def next_turns(count: int = 3) -> None:
    """Let the loop run a few turns (the end-of-turn write, a writer task's steps)."""
    for _ in range(count):
        await asyncio.sleep(0)


class TestDirectWrites:
    def test_a_lone_message_is_written_at_once_without_a_writer_task(self) -> None:
        async def main() -> None:
            async with AsyncPeer() as peer:
                conn, transport = await open_scripted(peer)
                conn.notification.note(1)
                # Written inside the call: no task, no turn of the loop in between.
                assert lines(transport.wire) == [
                    {"jsonrpc": "2.0", "method": "note", "params": [1]}
                ]
                assert conn._writer_task is None
                await conn.aclose()

        run_async(main)

    def test_a_burst_from_many_tasks_is_one_write_at_the_end_of_the_turn(self) -> None:
        async def main() -> None:
            async with AsyncPeer() as peer:
                conn, transport = await open_scripted(peer)

                async def send(i: int) -> None:
                    conn.notification.note(i)

                await asyncio.gather(*(send(i) for i in range(32)))
                await next_turns()
                # The first is written at once, the other 31 (under BURST_WRITE bytes)
                # together after the turn.
                assert len(transport.writes) == 2
                assert len(transport.writes[1]) < BURST_WRITE
                assert [m["params"] for m in lines(transport.wire)] == [[i] for i in range(32)]
                await conn.aclose()

        run_async(main)

    def test_a_flood_of_notifications_in_one_turn_is_written_every_burst_write_bytes(
        self,
    ) -> None:
        async def main() -> None:
            async with AsyncPeer() as peer:
                conn, transport = await open_scripted(peer)
                for i in range(1000):  # one task, never yielding: one long turn
                    conn.notification.note(i)
                # Written while the flood is being made (the peer can start on it), not
                # all at the end of the turn.
                size = max(len(line) + 1 for line in transport.wire.splitlines())
                assert len(transport.writes) >= len(transport.wire) // (BURST_WRITE + size)
                assert all(BURST_WRITE <= len(w) < BURST_WRITE + size for w in transport.writes[1:])
                assert conn._endpoint.bytes_to_send < BURST_WRITE
                await next_turns()
                assert [m["params"] for m in lines(transport.wire)] == [[i] for i in range(1000)]
                await conn.aclose()

        run_async(main)

    def test_after_a_read_the_next_message_is_written_at_once_again(self) -> None:
        async def main() -> None:
            async with AsyncPeer(default_handler=Inline) as peer:
                conn, transport = await open_scripted(peer)
                conn.notification.note(1)
                conn.notification.note(2)  # the second before a read waits for the turn's end
                assert len(transport.writes) == 1
                await next_turns()
                assert len(transport.writes) == 2
                transport.feed(request(7, "echo", "x") + b"\n")
                await next_turns()
                assert lines(transport.writes[-1]) == [{"jsonrpc": "2.0", "id": 7, "result": "x"}]
                count = len(transport.writes)
                future = conn.future.echo(3)  # the first message since the read
                assert len(transport.writes) == count + 1
                assert lines(transport.writes[-1])[0]["method"] == "echo"
                transport.feed(b'{"jsonrpc":"2.0","id":1,"result":3}\n')
                assert await future == 3
                await conn.aclose()

        run_async(main)

    def test_replies_of_inline_handlers_found_in_one_read_go_out_in_one_write(self) -> None:
        async def main() -> None:
            async with AsyncPeer(default_handler=Inline) as peer:
                conn, transport = await open_scripted(peer)
                transport.feed(b"".join(request(i, "echo", i) + b"\n" for i in range(10)))
                await next_turns()
                assert len(transport.writes) == 1
                assert lines(transport.wire) == [
                    {"jsonrpc": "2.0", "id": i, "result": i} for i in range(10)
                ]
                await conn.aclose()

        run_async(main)


class TestBackPressure:
    def test_the_writer_task_exists_only_while_the_transport_is_full(self) -> None:
        async def main() -> None:
            async with AsyncPeer() as peer:
                conn, transport = await open_scripted(peer)
                transport.full = True
                conn.notification.note(0)  # written, and the transport is now full
                assert conn._writer_task is not None
                for i in range(1, 5):
                    conn.notification.note(i)  # queued: the writer task writes them
                await next_turns()
                assert len(transport.writes) == 1
                drained = asyncio.ensure_future(conn.drain())
                await next_turns()
                assert not drained.done()
                transport.make_room()
                await asyncio.wait_for(drained, 5)
                assert conn._writer_task is None
                assert len(transport.writes) == 2  # the four queued ones in one write
                conn.notification.note(5)
                assert len(transport.writes) == 3  # at once again
                assert [m["params"] for m in lines(transport.wire)] == [[i] for i in range(6)]
                await conn.aclose()

        run_async(main)

    def test_a_transport_that_cannot_write_without_waiting_gets_a_writer_task(self) -> None:
        async def main() -> None:
            async with AsyncPeer() as peer:
                conn, transport = await open_scripted(peer, nowait=False)
                conn.notification.note(1)
                assert transport.writes == []
                assert conn._writer_task is not None
                conn.notification.note(2)
                await conn.drain()
                assert conn._writer_task is None
                assert [m["params"] for m in lines(transport.wire)] == [[1], [2]]
                await conn.aclose()

        run_async(main)

    def test_a_failed_write_closes_the_connection(self) -> None:
        async def main() -> None:
            async with AsyncPeer() as peer:
                conn, transport = await open_scripted(peer)
                future = conn.future.echo(1)
                transport.aborted = True  # the next write raises
                conn.notification.note(2)
                with pytest.raises(ConnectionClosedError):
                    await future
                await asyncio.wait_for(conn.wait_closed(), 5)
                assert conn.closed

        run_async(main)

    @pytest.mark.parametrize("nowait", [True, False])
    def test_the_final_flush_is_bounded(self, monkeypatch: Any, nowait: bool) -> None:
        monkeypatch.setattr(rpcbd.aio.connection, "CLOSE_FLUSH_TIMEOUT", 0.05)

        async def main() -> None:
            async with AsyncPeer() as peer:
                conn, transport = await open_scripted(peer, nowait=nowait)
                transport.full = True  # and room never comes
                conn.notification.note(1)
                conn.notification.note(2)
                await next_turns()
                start = time.monotonic()
                await asyncio.wait_for(conn.aclose(), 5)
                assert time.monotonic() - start < 2
                assert transport.aborted
                assert conn._writer_task is None

        run_async(main)


class TestOrdering:
    """Messages reach the peer in the order they were queued, whatever wrote them."""

    @SETTINGS
    @given(
        scripts=st.lists(
            st.lists(st.sampled_from(["send", "send", "yield", "full", "room"]), max_size=12),
            min_size=1,
            max_size=5,
        ),
        nowait=st.booleans(),
    )
    def test_any_interleaving_keeps_the_queued_order(
        self, scripts: list[list[str]], nowait: bool
    ) -> None:
        async def main() -> list[int]:
            async with AsyncPeer() as peer:
                conn, transport = await open_scripted(peer, nowait=nowait)
                queued: list[int] = []

                async def run(script: list[str]) -> None:
                    for step in script:
                        if step == "send":
                            queued.append(len(queued))
                            conn.notification.note(queued[-1])
                        elif step == "yield":
                            await asyncio.sleep(0)
                        elif step == "full":
                            transport.full = True
                        else:
                            transport.make_room()

                await asyncio.gather(*(run(script) for script in scripts))
                transport.make_room()
                await asyncio.wait_for(conn.drain(), 5)
                assert conn._writer_task is None
                sent = [m["params"][0] for m in lines(transport.wire)]
                assert sent == queued
                await conn.aclose()
                return sent

        run_async(main)

    def test_tcp_keeps_the_order_of_a_mixed_flood(self) -> None:
        """Over a real socket: big and small messages from several tasks, with the
        kernel's buffers filling up (the writer task takes over and hands back)."""

        async def main() -> None:
            received: list[int] = []
            done = asyncio.Event()

            async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                while line := await reader.readline():
                    received.append(json.loads(line)["params"][0])
                writer.close()
                await writer.wait_closed()
                done.set()

            server = await asyncio.start_server(sink, "127.0.0.1", 0, limit=1 << 22)
            port = server.sockets[0].getsockname()[1]
            queued: list[int] = []
            try:
                async with AsyncPeer() as peer:
                    conn = await peer.connect(f"tcp://127.0.0.1:{port}")

                    async def send(task: int) -> None:
                        for i in range(40):
                            queued.append(len(queued))
                            size = 200_000 if (task + i) % 7 == 0 else 10
                            conn.notification.note(queued[-1], "x" * size)
                            if i % 3 == task % 3:
                                await asyncio.sleep(0)

                    await asyncio.gather(*(send(task) for task in range(4)))
                    await conn.drain()
                    await conn.aclose()
                await asyncio.wait_for(done.wait(), 20)
                assert received == queued
            finally:
                server.close()
                await server.wait_closed()

        run_async(main)


class TestMemoryChannel:
    def test_put_nowait_takes_everything_and_drain_waits_for_room(self) -> None:
        async def main() -> None:
            ours, theirs = memory_pair(capacity=10)
            assert ours.writes_nowait
            assert ours.write_nowait([b"12345"]) is False
            assert ours.write_nowait([b"123456", b"7"]) is True  # 12 bytes > 10
            drained = asyncio.ensure_future(ours.drain())
            await next_turns()
            assert not drained.done()
            assert await theirs.read() == b"12345"
            await asyncio.wait_for(drained, 5)
            assert await theirs.read() == b"123456"
            ours.abort()
            with pytest.raises(ConnectionClosedError):
                ours.write_nowait([b"late"])
            with pytest.raises(ConnectionClosedError):
                await ours.drain()
            assert await theirs.read() == b"7"  # what was queued is still delivered
            assert await theirs.read() is None

        run_async(main)


def test_stream_transport_close_is_bounded_when_the_peer_does_not_read(
    monkeypatch: Any,
) -> None:
    monkeypatch.setattr(rpcbd.aio.transports, "CLOSE_TIMEOUT", 0.1)
    monkeypatch.setattr(rpcbd.aio.connection, "CLOSE_FLUSH_TIMEOUT", 0.1)

    async def main() -> None:
        reading = asyncio.Event()
        finished = asyncio.Event()

        async def stalled(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await reading.wait()  # never reads until the end of the test
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
            finally:
                finished.set()

        server = await asyncio.start_server(stalled, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            async with AsyncPeer() as peer:
                conn = await peer.connect(f"tcp://127.0.0.1:{port}")
                for _ in range(16):  # far more than the socket buffers hold
                    conn.notification.bulk("x" * (1 << 20))
                await next_turns()
                assert conn._writer_task is not None
                start = time.monotonic()
                await asyncio.wait_for(conn.aclose(), 10)
                assert time.monotonic() - start < 5
        finally:
            reading.set()
            await asyncio.wait_for(finished.wait(), 5)
            server.close()
            await server.wait_closed()

    run_async(main)


def test_a_listener_forgets_a_connection_once_it_has_closed() -> None:
    async def main() -> None:
        async with AsyncPeer(default_handler=Inline) as server, AsyncPeer() as client:
            listener = await server.listen("tcp://127.0.0.1:0")
            conns = [await client.connect(listener.url) for _ in range(3)]
            for conn in conns:
                assert await conn.request.echo(1) == 1
            await wait_until(lambda: len(listener.connections) == 3)
            await conns[1].aclose()
            # Gone from the listener's table itself, not just filtered out of the view.
            await wait_until(lambda: len(listener._connections) == 2)
            assert listener.connections == list(listener._connections)

    run_async(main)
