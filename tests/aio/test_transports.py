"""The asyncio transports, each through its URL: tcp, tls, unix, ws, exec/stdio, serial."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import sys
import tempfile
from typing import Any

import pytest

from rpcbd import ConnectionClosedError, Handler, TransportError
from rpcbd.aio import AsyncPeer
from rpcbd.aio.transports import connect_serial
from rpcbd.transports import lookup_transport
from tests.aio.conftest import wait_until

CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "child_server.py")


class Service(Handler):
    async def echo(self, value: Any) -> Any:
        return value

    async def ask_client(self, value: int) -> Any:
        return await self.connection.request.parent_double(value)


class Parent(Handler):
    async def parent_double(self, value: int) -> int:
        return 2 * value


def require_async(scheme: str, which: str = "aconnect") -> None:
    """Skip when the URL registry (owned by the transports work) lacks the entry."""
    try:
        entry = lookup_transport(f"{scheme}:")
    except ValueError:
        pytest.skip(f"no {scheme}: entry in rpcbd.transports yet")
    if getattr(entry, which) is None:
        pytest.skip(f"the {scheme}: registry entry has no {which} yet")


async def roundtrip(url: str, **options: Any) -> str:
    """Serve on ``url``, connect, call both ways; returns the listener's URL."""
    server = AsyncPeer(default_handler=Service, **options.pop("server_options", {}))
    client = AsyncPeer(default_handler=Parent)
    try:
        listener = await server.listen(url)
        assert listener.url
        async with await client.connect(listener.url, **options) as conn:
            assert await conn.request.echo({"x": [1, "é"]}) == {"x": [1, "é"]}
            assert await conn.request.ask_client(21) == 42
            results = await asyncio.gather(*(conn.request.echo(i) for i in range(50)))
            assert results == list(range(50))
            await wait_until(lambda: len(listener.connections) == 1)
            accepted = listener.connections[0]
            assert await accepted.request.parent_double(5) == 10
        await wait_until(lambda: not listener.connections)
        await listener.aclose()
        return listener.url
    finally:
        await client.shutdown()
        await server.shutdown()


def test_tcp(arun: Any) -> None:
    async def main() -> None:
        url = await roundtrip("tcp://127.0.0.1:0")
        assert url.startswith("tcp://127.0.0.1:") and not url.endswith(":0")

    arun(main)


def test_tcp_listener_attributes_and_refused_connect(arun: Any) -> None:
    async def main() -> None:
        async with AsyncPeer() as peer:
            listener = await peer.listen("tcp://127.0.0.1:0")
            assert listener.address == ("127.0.0.1", listener.port)
            assert listener.url == f"tcp://127.0.0.1:{listener.port}"
            assert peer.listeners == [listener]
            await listener.aclose()
            assert peer.listeners == []
            with pytest.raises(OSError):
                await peer.connect(listener.url)

    arun(main)


def test_tls(arun: Any) -> None:
    trustme = pytest.importorskip("trustme")
    require_async("tls", "alisten")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)

    async def main() -> None:
        url = await roundtrip(
            "tls://127.0.0.1:0",
            ssl_context=client_context,
            server_options={"ssl_context": server_context},
        )
        assert url.startswith("tls://")

    arun(main)


def test_unix(arun: Any) -> None:
    require_async("unix", "alisten")

    async def main() -> None:
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "rpcbd.sock")
            url = await roundtrip(f"unix://{path}")
            assert url == f"unix://{path}"
            assert not os.path.exists(path)  # removed when the listener closed

    arun(main)


def test_websocket(arun: Any) -> None:
    require_async("ws", "alisten")

    async def main() -> None:
        url = await roundtrip("ws://127.0.0.1:0/rpc")
        assert url.startswith("ws://127.0.0.1:") and url.endswith("/rpc")

    arun(main)


def test_websocket_origin_policy_and_authenticate(arun: Any) -> None:
    require_async("ws", "alisten")
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    async def handshake(url: str, origin: str | None) -> int:
        try:
            async with connect(url, origin=origin, proxy=None):  # type: ignore[arg-type]
                return 101
        except InvalidStatus as exc:
            return int(exc.response.status_code)

    async def main() -> None:
        async with AsyncPeer(default_handler=Service) as peer:
            default = await peer.listen("ws://127.0.0.1:0/")
            assert await handshake(default.url, None) == 101  # not a browser
            assert await handshake(default.url, "http://localhost:3000") == 101
            assert await handshake(default.url, "http://127.0.0.1:8080") == 101
            assert await handshake(default.url, "http://evil.example") == 403
            assert await handshake(default.url + "other", None) == 404  # wrong path
            # The page the server itself serves (Origin = the Host it was reached at).
            assert await handshake(default.url, f"http://127.0.0.1:{default.port}") == 101
            allow = await peer.listen("ws://127.0.0.1:0/", origins=["https://app.example"])
            assert await handshake(allow.url, "https://app.example") == 101
            assert await handshake(allow.url, "http://localhost:3000") == 403
            seen: list[str] = []

            def authenticate(request: Any) -> bool:
                seen.append(request.path)
                return request.headers.get("Authorization") == "Bearer ok"

            guarded = await peer.listen("ws://127.0.0.1:0/", authenticate=authenticate)
            assert await handshake(guarded.url, None) == 401
            async with connect(
                guarded.url, additional_headers={"Authorization": "Bearer ok"}, proxy=None
            ):
                pass
            assert seen == ["/", "/"]

    arun(main)


def test_exec_child_is_served_and_reaped(arun: Any) -> None:
    require_async("exec")

    async def main() -> None:
        async with AsyncPeer(default_handler=Parent) as peer:
            conn = await peer.spawn([sys.executable, CHILD])
            assert await conn.request.echo("hi") == "hi"
            assert await conn.request.ask_parent(4) == 8  # the child calls back
            pid = await conn.request.pid()
            process = conn._transport.process
            assert process.pid == pid
            await conn.aclose()
            assert process.returncode is not None  # reaped

    arun(main)


def test_peer_killed_mid_call_fails_pending_awaits_at_once(arun: Any) -> None:
    require_async("exec")

    async def main() -> None:
        async with AsyncPeer() as peer:
            conn = await peer.spawn([sys.executable, CHILD])
            pid = await conn.request.pid()
            calls = [asyncio.create_task(conn.request.hang()) for _ in range(3)]
            await wait_until(lambda: conn._endpoint.calls_in_flight == 3)
            loop = asyncio.get_running_loop()
            start = loop.time()
            os.kill(pid, signal.SIGKILL)
            for call in calls:
                with pytest.raises(TransportError):
                    await call
            assert loop.time() - start < 1.0
            await conn.wait_closed()
            assert conn._transport.process.returncode == -signal.SIGKILL

    arun(main)


def test_serial_over_socket_url(arun: Any) -> None:
    """pyserial's ``socket://`` URL reaches an asyncio TCP server: a serial client."""

    async def main() -> None:
        server = AsyncPeer(default_handler=Service)
        client = AsyncPeer(default_handler=Parent)
        try:
            listener = await server.listen("tcp://127.0.0.1:0")
            transport = await connect_serial(f"socket://127.0.0.1:{listener.port}", {})
            conn = await client.connect_transport(transport)
            assert await conn.request.echo("over serial") == "over serial"
            assert await conn.request.ask_client(3) == 6
            await conn.aclose()
        finally:
            await client.shutdown()
            await server.shutdown()

    arun(main)


def test_serial_loop_url_through_the_registry(arun: Any) -> None:
    """``loop://`` echoes what is written: a connection that calls itself."""
    require_async("loop")

    async def main() -> None:
        async with AsyncPeer(default_handler=Service) as peer:
            conn = await peer.connect("loop://")
            assert await conn.request.echo([1, 2]) == [1, 2]
            await conn.aclose()

    arun(main)


def test_serial_listen_is_refused(arun: Any) -> None:
    require_async("serial")

    async def main() -> None:
        async with AsyncPeer() as peer:
            with pytest.raises(ValueError, match=r"(?i)point to point|cannot be listened"):
                await peer.listen("serial:///dev/ttyS0")

    arun(main)


def test_closing_one_side_closes_the_other(arun: Any) -> None:
    async def main() -> None:
        async with AsyncPeer(default_handler=Service) as server, AsyncPeer() as client:
            listener = await server.listen("tcp://127.0.0.1:0")
            conn = await client.connect(listener.url)
            await wait_until(lambda: len(listener.connections) == 1)
            await listener.connections[0].aclose()
            await asyncio.wait_for(conn.wait_closed(), 5)
            with pytest.raises(ConnectionClosedError):
                await conn.request.echo(1)

    arun(main)
