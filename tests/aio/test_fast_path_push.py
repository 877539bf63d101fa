"""The push path of the asyncio runtime: sockets hand each chunk to the connection from
their protocol's ``data_received`` (no reader task woken per message), and a burst of
requests is written every ``BURST_WRITE`` bytes.

The push path must give exactly what the pull path (a reader task awaiting ``read()``)
gives: the same replies in the same order, whatever the chunking, the pauses for back
pressure and the handler kinds. Most tests drive a ``_SocketProtocol`` over a fake
asyncio transport, so that every chunk, pause and end is decided by the test.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import socket
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rpcbd import Handler, willnotblock
from rpcbd.aio import AsyncConnection, AsyncPeer
from rpcbd.aio.connection import BURST_WRITE, EVENT_BATCH
from rpcbd.aio.transports import (
    SocketTransport,
    StreamTransport,
    _SocketProtocol,
    connect_tcp,
)
from rpcbd.exceptions import ConnectionClosedError
from tests.aio.conftest import run_async, wait_until
from tests.aio.test_writing import ScriptedStream, lines, next_turns, request

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class FakeSocket(asyncio.Transport):
    """An asyncio transport that records writes and reading pauses; close() ends it."""

    def __init__(self, protocol: asyncio.Protocol) -> None:
        super().__init__()
        self._protocol = protocol
        self.writes: list[bytes] = []
        self.reading = True
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            asyncio.get_running_loop().call_soon(self._protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()

    @property
    def wire(self) -> bytes:
        return b"".join(self.writes)


def fake_socket() -> tuple[_SocketProtocol, FakeSocket, SocketTransport]:
    protocol = _SocketProtocol()
    fake = FakeSocket(protocol)
    protocol.connection_made(fake)
    return protocol, fake, SocketTransport(protocol, "fake")


class Inline(Handler):
    @willnotblock
    def echo(self, value: Any) -> Any:
        return value

    @willnotblock
    def note(self, value: Any) -> None:
        pass


class Async(Handler):
    async def echo(self, value: Any) -> Any:
        return value

    async def note(self, value: Any) -> None:
        pass


def notification(method: str, *params: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "method": method, "params": list(params)}).encode()


# -- the transport's push mode, alone ------------------------------------------------------


class TestSocketProtocol:
    def test_nothing_is_delivered_before_resume_then_everything_in_order(self) -> None:
        async def main() -> None:
            protocol, fake, transport = fake_socket()
            got: list[Any] = []
            protocol.data_received(b"a")  # before start: held
            transport.start_receiving(got.append, lambda: got.append("end"))
            protocol.data_received(b"b")  # started but not resumed: held
            assert got == []
            transport.resume_reading()
            assert got == [b"a", b"b"]
            protocol.data_received(b"c")  # delivered from data_received itself
            assert got == [b"a", b"b", b"c"]
            await transport.aclose()

        run_async(main)

    def test_pause_holds_data_and_the_end_comes_after_it(self) -> None:
        async def main() -> None:
            protocol, fake, transport = fake_socket()
            got: list[Any] = []
            transport.start_receiving(got.append, lambda: got.append("end"))
            transport.resume_reading()
            transport.pause_reading()
            assert not fake.reading  # the socket is not read: the peer feels it
            protocol.data_received(b"x")
            protocol.eof_received()
            assert got == []
            transport.resume_reading()
            assert got == [b"x", "end"]
            await transport.aclose()

        run_async(main)

    def test_a_chunk_may_pause_delivery_of_the_rest(self) -> None:
        async def main() -> None:
            protocol, fake, transport = fake_socket()
            got: list[bytes] = []

            def on_data(chunk: bytes) -> None:
                got.append(chunk)
                transport.pause_reading()

            transport.start_receiving(on_data, lambda: None)
            protocol.data_received(b"1")
            protocol.data_received(b"2")
            protocol.data_received(b"3")
            assert got == []
            transport.resume_reading()
            assert got == [b"1"]
            transport.resume_reading()
            assert got == [b"1", b"2"]
            await transport.aclose()

        run_async(main)

    def test_abort_tells_the_end_at_once_and_drops_what_was_held(self) -> None:
        async def main() -> None:
            protocol, fake, transport = fake_socket()
            got: list[Any] = []
            transport.start_receiving(got.append, lambda: got.append("end"))
            protocol.data_received(b"held")
            transport.abort()
            assert got == ["end"]
            protocol.data_received(b"late")
            transport.resume_reading()
            protocol.eof_received()
            assert got == ["end"]  # told once, no data after it
            with pytest.raises(ConnectionClosedError):
                transport.write_nowait([b"x"])
            with pytest.raises(ConnectionClosedError):
                await transport.drain()
            await transport.aclose()
            assert fake.closing

        run_async(main)

    def test_start_after_abort_tells_the_end(self) -> None:
        async def main() -> None:
            protocol, fake, transport = fake_socket()
            transport.abort()
            got: list[Any] = []
            transport.start_receiving(got.append, lambda: got.append("end"))
            assert got == ["end"]
            await transport.aclose()

        run_async(main)

    def test_write_reports_back_pressure_and_drain_waits_for_room(self) -> None:
        async def main() -> None:
            protocol, fake, transport = fake_socket()
            assert transport.write_nowait([b"a"]) is False
            protocol.pause_writing()  # what asyncio does past the high-water mark
            assert transport.write_nowait([b"b", b"c"]) is True
            drained = asyncio.ensure_future(transport.drain())
            await next_turns()
            assert not drained.done()
            protocol.resume_writing()
            await asyncio.wait_for(drained, 5)
            assert fake.writes == [b"a", b"bc"]
            await transport.aclose()

        run_async(main)

    def test_a_lost_connection_fails_a_waiting_drain(self) -> None:
        async def main() -> None:
            protocol, fake, transport = fake_socket()
            protocol.pause_writing()
            drained = asyncio.ensure_future(transport.drain())
            await next_turns()
            protocol.connection_lost(OSError("reset"))
            with pytest.raises(OSError, match="reset"):
                await drained
            with pytest.raises(OSError, match="reset"):
                await transport.drain()
            await transport.aclose()

        run_async(main)

    def test_read_without_push_mode(self) -> None:
        async def main() -> None:
            async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                writer.write(b"hello ")
                writer.write(b"world")
                await writer.drain()
                writer.close()

            server = await asyncio.start_server(serve, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            try:
                transport = await connect_tcp(f"tcp://127.0.0.1:{port}", {})
                assert transport.get_extra_info("peername")[1] == port
                data = b""
                while (chunk := await asyncio.wait_for(transport.read(), 5)) is not None:
                    data += chunk
                assert data == b"hello world"
                assert await transport.read() is None  # the end stays the end
                transport.abort()
                assert await transport.read() is None
                await transport.aclose()
            finally:
                server.close()
                await server.wait_closed()

        run_async(main)


# -- the push path gives what the pull path gives ------------------------------------------


async def _replies(
    peer: AsyncPeer, chunks: list[bytes], yields: list[bool], push: bool, expected: int
) -> list[Any]:
    """Feed ``chunks`` to a connection (push: a fake socket; pull: a scripted stream),
    letting the loop run after chunk i when ``yields[i]``; return the replies."""
    if push:
        protocol, fake, transport = fake_socket()
        conn = await peer.connect_transport(transport)
        for chunk, pause in zip(chunks, yields, strict=True):
            protocol.data_received(chunk)
            if pause:
                await asyncio.sleep(0)
        await wait_until(lambda: len(lines(fake.wire)) >= expected)
        wire = fake.wire
    else:
        scripted = ScriptedStream()
        conn = await peer.connect_transport(scripted)
        for chunk, pause in zip(chunks, yields, strict=True):
            scripted.feed(chunk)
            if pause:
                await asyncio.sleep(0)
        await wait_until(lambda: len(lines(scripted.wire)) >= expected)
        wire = scripted.wire
    await conn.aclose()
    return lines(wire)


@SETTINGS
@given(
    kinds=st.lists(st.sampled_from(["request", "notification"]), min_size=1, max_size=40),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=12),
    yields=st.lists(st.booleans(), min_size=13, max_size=13),
    inline=st.booleans(),
    max_pending=st.sampled_from([1, 3, 128]),
)
def test_any_chunking_gives_the_replies_of_the_pull_path(
    kinds: list[str], cuts: list[int], yields: list[bool], inline: bool, max_pending: int
) -> None:
    messages = [
        request(i, "echo", i) if kind == "request" else notification("note", i)
        for i, kind in enumerate(kinds)
    ]
    stream = b"".join(m + b"\n" for m in messages)
    bounds = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    chunks = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    expected = kinds.count("request")

    async def main() -> None:
        results = []
        for push in (True, False):
            async with AsyncPeer(
                default_handler=Inline if inline else Async, max_pending_requests=max_pending
            ) as peer:
                results.append(await _replies(peer, chunks, yields[: len(chunks)], push, expected))
        assert results[0] == results[1]
        assert results[0] == [
            {"jsonrpc": "2.0", "id": i, "result": i}
            for i, kind in enumerate(kinds)
            if kind == "request"
        ]

    run_async(main)


# -- over real sockets ---------------------------------------------------------------------


@pytest.mark.parametrize("push", [True, False])
@pytest.mark.parametrize("handler", [Inline, Async])
def test_more_requests_than_max_pending_in_one_write_are_all_answered(
    push: bool, handler: type
) -> None:
    """The endpoint stops parsing at max_pending_requests; when inline handlers answer
    them during the dispatch, what it held back must still be taken (it once waited for
    the next read, which never came)."""

    async def main() -> None:
        async with AsyncPeer(default_handler=handler, max_pending_requests=8) as server:
            listener = await server.listen("tcp://127.0.0.1:0")
            if push:
                async with AsyncPeer() as client:
                    conn = await client.connect(listener.url)
                    results = await asyncio.gather(*(conn.request.echo(i) for i in range(50)))
                    assert results == list(range(50))
                    await conn.aclose()
            else:
                # The pull path: a stream transport over the same kind of socket, fed by
                # hand, all requests in one write.
                reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
                writer.write(b"".join(request(i, "echo", i) + b"\n" for i in range(50)))
                got = [json.loads(await reader.readline()) for _ in range(50)]
                assert got == [{"jsonrpc": "2.0", "id": i, "result": i} for i in range(50)]
                writer.close()
                await writer.wait_closed()

    run_async(main)


def test_a_stream_transport_over_a_socket_still_uses_the_pull_path() -> None:
    async def main() -> None:
        async with AsyncPeer(default_handler=Inline, max_pending_requests=4) as server:
            listener = await server.listen("tcp://127.0.0.1:0")
            async with AsyncPeer() as client:
                reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
                transport = StreamTransport(reader, writer, "pull")
                assert not transport.pushes_data
                conn = await client.connect_transport(transport)
                results = await asyncio.gather(*(conn.request.echo(i) for i in range(40)))
                assert results == list(range(40))
                await conn.aclose()

    run_async(main)


def test_back_pressure_stops_reading_the_socket_and_resumes() -> None:
    release = asyncio.Event()

    class Slow(Handler):
        async def wait(self, i: int) -> int:
            await release.wait()
            return i

    async def main() -> None:
        release.clear()
        async with AsyncPeer(default_handler=Slow, max_pending_requests=4) as server:
            listener = await server.listen("tcp://127.0.0.1:0")
            async with AsyncPeer() as client:
                conn = await client.connect(listener.url)
                calls = [asyncio.ensure_future(conn.request.wait(i)) for i in range(20)]
                await wait_until(lambda: bool(listener.connections))
                served: AsyncConnection = listener.connections[0]
                await wait_until(lambda: served._resume is not None)  # paused at 4
                assert served._endpoint.requests_in_flight == 4
                release.set()
                assert await asyncio.gather(*calls) == list(range(20))
                await conn.aclose()

    run_async(main)


def test_a_failure_while_handling_a_pushed_chunk_closes_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        async with AsyncPeer(default_handler=Inline) as peer:
            protocol, fake, transport = fake_socket()
            conn = await peer.connect_transport(transport)
            await next_turns()

            dispatch = conn._dispatch

            def broken_once(events: Any) -> None:
                conn._dispatch = dispatch  # type: ignore[method-assign]
                raise RuntimeError("boom")

            conn._dispatch = broken_once  # type: ignore[method-assign]
            protocol.data_received(request(1, "echo", 1) + b"\n")
            await asyncio.wait_for(conn.wait_closed(), 5)
            assert conn.closed
            assert fake.closing

    with caplog.at_level(logging.ERROR, logger="rpcbd"):
        run_async(main)
    assert any("reader of fake failed" in r.getMessage() for r in caplog.records)


# -- a burst of requests ---------------------------------------------------------------------


def test_a_burst_of_requests_is_written_every_burst_write_bytes() -> None:
    async def main() -> None:
        async with AsyncPeer() as peer:
            scripted = ScriptedStream()
            conn = await peer.connect_transport(scripted)
            futures = [conn.future.echo("x" * 40, i) for i in range(128)]
            await next_turns()
            writes = scripted.writes
            # The first at once, then one write each time BURST_WRITE bytes are queued,
            # then the rest at the end of the turn.
            size = len(writes[0]) + 8  # one request (at most three more digits of id)
            assert len(writes) >= 2 + len(scripted.wire) // (BURST_WRITE + size)
            assert all(BURST_WRITE <= len(w) < BURST_WRITE + size for w in writes[1:-1])
            assert [m["id"] for m in lines(scripted.wire)] == list(range(1, 129))
            for future in futures:
                future.cancel()
            await conn.aclose()

    run_async(main)


def test_a_burst_of_calls_over_tcp_gets_every_reply() -> None:
    async def main() -> None:
        async with AsyncPeer(default_handler=Inline) as server, AsyncPeer() as client:
            listener = await server.listen("tcp://127.0.0.1:0")
            conn = await client.connect(listener.url)
            for _ in range(3):
                results = await asyncio.gather(*(conn.request.echo(i) for i in range(128)))
                assert results == list(range(128))
            await conn.aclose()

    run_async(main)


def test_sockets_push_data() -> None:
    async def main() -> None:
        sock_a, sock_b = socket.socketpair()
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_unix_connection(_SocketProtocol, sock=sock_a)
        transport = SocketTransport(protocol, "pair")
        assert transport.pushes_data and transport.writes_nowait
        sock_b.close()
        assert await asyncio.wait_for(transport.read(), 5) is None
        await transport.aclose()

    run_async(main)


@pytest.mark.parametrize("push", [True, False])
@pytest.mark.parametrize("inline", [True, False])
def test_a_read_of_many_messages_is_dispatched_in_batches(push: bool, inline: bool) -> None:
    """More messages in one read than EVENT_BATCH: the connection takes them from the
    endpoint a batch at a time, and every one is served, in order."""
    kinds = ["request" if i % 3 == 0 else "notification" for i in range(5 * EVENT_BATCH + 7)]
    stream = b"".join(
        (request(i, "echo", i) if kind == "request" else notification("note", i)) + b"\n"
        for i, kind in enumerate(kinds)
    )
    expected = [
        {"jsonrpc": "2.0", "id": i, "result": i}
        for i, kind in enumerate(kinds)
        if kind == "request"
    ]

    async def main() -> None:
        async with AsyncPeer(default_handler=Inline if inline else Async) as peer:
            assert await _replies(peer, [stream], [False], push, len(expected)) == expected

    run_async(main)


def test_after_a_read_of_whole_messages_no_partial_message_is_watched() -> None:
    """The slow-sender timer is decided after the dispatch, when every whole frame has
    been taken: frames left for the next batch are not a message half received."""

    async def main() -> None:
        async with AsyncPeer(default_handler=Inline, partial_message_timeout=30) as peer:
            protocol, fake, transport = fake_socket()
            conn = await peer.connect_transport(transport)
            count = 3 * EVENT_BATCH
            protocol.data_received(b"".join(request(i, "echo", i) + b"\n" for i in range(count)))
            await wait_until(lambda: len(lines(fake.wire)) >= count)
            assert conn._partial_timer is None
            protocol.data_received(request(count, "echo", count)[:10])  # half a message
            await wait_until(lambda: conn._partial_timer is not None)
            await conn.aclose()

    run_async(main)
