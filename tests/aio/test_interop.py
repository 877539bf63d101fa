"""Threaded <-> asyncio: a ThreadedPeer and an AsyncPeer talk over tcp, unix, ws and an
in-memory pipe, calling each other with callbacks both ways."""

from __future__ import annotations

import asyncio
import tempfile
import threading
from collections.abc import Callable
from typing import Any

import pytest

from rpcbd import Handler, RpcMethodNotFoundError, ThreadedPeer, mayblock
from rpcbd.aio import AsyncPeer
from tests.aio.conftest import wait_until


class ThreadedService(Handler):
    def echo(self, value: Any) -> Any:
        return value

    @mayblock
    def count(self, n: int, callback: Callable[[str], None]) -> str:
        for i in range(1, n + 1):
            callback(f"Counted to {i}")
        return f"Counted to {n}"

    @mayblock
    def ask_other(self, value: int) -> Any:
        return self.connection.request.double(value)

    def double(self, value: int) -> int:
        return 2 * value


class AsyncService(Handler):
    async def echo(self, value: Any) -> Any:
        return value

    async def count(self, n: int, callback: Any) -> str:
        for i in range(1, n + 1):
            callback(f"Counted to {i}")
        return f"Counted to {n}"

    async def ask_other(self, value: int) -> Any:
        return await self.connection.request.double(value)

    async def double(self, value: int) -> int:
        return 2 * value


def _urls() -> list[str]:
    return ["tcp://127.0.0.1:0", "unix://{dir}/interop.sock", "ws://127.0.0.1:0/rpc"]


@pytest.mark.parametrize("url", _urls())
def test_async_client_threaded_server(arun: Any, url: str) -> None:
    async def main() -> None:
        with tempfile.TemporaryDirectory() as directory:
            threaded = ThreadedPeer(default_handler=ThreadedService, shutdown_on_parent_exit=False)
            client = AsyncPeer(default_handler=AsyncService)
            try:
                listener = threaded.listen(url.format(dir=directory))
                conn = await client.connect(listener.url)
                assert await conn.request.echo([1, "two"]) == [1, "two"]
                lines: list[str] = []
                assert await conn.request.count(3, lines.append) == "Counted to 3"
                assert lines == ["Counted to 1", "Counted to 2", "Counted to 3"]
                # The threaded server calls the asyncio client during the call.
                assert await conn.request.ask_other(21) == 42
                with pytest.raises(RpcMethodNotFoundError):
                    await conn.request.missing()
                batch = conn.create_batchedcalls_proxy()
                batch.request.echo(1)
                batch.request.double(2)
                assert await batch.send() == (1, 4)
                await conn.aclose()
            finally:
                await client.shutdown()
                await asyncio.to_thread(threaded.shutdown)

    arun(main)


@pytest.mark.parametrize("url", _urls())
def test_threaded_client_async_server(arun: Any, url: str) -> None:
    async def main() -> None:
        with tempfile.TemporaryDirectory() as directory:
            server = AsyncPeer(default_handler=AsyncService)
            threaded = ThreadedPeer(default_handler=ThreadedService, shutdown_on_parent_exit=False)
            try:
                listener = await server.listen(url.format(dir=directory))

                def client_side() -> dict[str, Any]:
                    out: dict[str, Any] = {}
                    conn = threaded.connect(listener.url)
                    out["echo"] = conn.request.echo({"a": 1})
                    lines: list[tuple[str, str]] = []
                    out["count"] = conn.request.count(
                        3, lambda line: lines.append((line, threading.current_thread().name))
                    )
                    out["lines"] = lines
                    out["ask"] = conn.request.ask_other(5)
                    out["caller"] = threading.current_thread().name
                    conn.close()
                    return out

                out = await asyncio.to_thread(client_side)
                assert out["echo"] == {"a": 1}
                assert out["count"] == "Counted to 3"
                # Threaded implicit callbacks run in the caller's own thread, in order.
                assert out["lines"] == [(f"Counted to {i}", out["caller"]) for i in (1, 2, 3)]
                assert out["ask"] == 10
                await wait_until(lambda: not listener.connections)
            finally:
                await asyncio.to_thread(threaded.shutdown)
                await server.shutdown()

    arun(main)


def test_pipe_between_async_and_threaded_peers(arun: Any) -> None:
    async def main() -> None:
        apeer = AsyncPeer(default_handler=AsyncService)
        threaded = ThreadedPeer(default_handler=ThreadedService, shutdown_on_parent_exit=False)
        try:
            aconn, tconn = apeer.pipe_pair(threaded)
            assert await aconn.request.echo("x") == "x"
            assert await aconn.request.ask_other(4) == 8
            assert await asyncio.to_thread(tconn.request.ask_other, 6) == 12
            assert await asyncio.to_thread(tconn.request.echo, [1]) == [1]
            await aconn.aclose()
            await asyncio.to_thread(tconn.wait_closed, 5)
            assert tconn.closed
        finally:
            await apeer.shutdown()
            await asyncio.to_thread(threaded.shutdown)

    arun(main)


def test_threaded_peer_closes_pipe(arun: Any) -> None:
    async def main() -> None:
        apeer = AsyncPeer(default_handler=AsyncService)
        threaded = ThreadedPeer(default_handler=ThreadedService, shutdown_on_parent_exit=False)
        try:
            aconn, tconn = apeer.pipe_pair(threaded)
            assert await aconn.request.echo(1) == 1
            await asyncio.to_thread(tconn.close)
            await asyncio.wait_for(aconn.wait_closed(), 5)
            assert aconn.closed
        finally:
            await apeer.shutdown()
            await asyncio.to_thread(threaded.shutdown)

    arun(main)
