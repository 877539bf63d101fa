"""The transport conformance suite (tests/transports/conformance.py) with asyncio peers.

Two modes per transport:

- ``async-async``: an AsyncPeer client and an AsyncPeer server. The checks are written
  for blocking connections; an AsyncConnection used from a thread other than its loop's
  is one (``conn.request.x()`` blocks, ``conn.future.x()`` gives a concurrent future), so
  the checks drive it from the test thread while the loop runs in a background thread.
- ``threaded-async``: a ThreadedPeer client and an AsyncPeer server (for ``exec`` the
  parent is one runtime and the child the other, both ways).

The loop runs in debug mode, which also catches any loop call made from a wrong thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import sys
import tempfile
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from rpcbd import ThreadedPeer
from rpcbd.aio import AsyncConnection, AsyncPeer
from tests.transports import conformance
from tests.transports.conformance import (
    CHECKS,
    ConformanceHandler,
    Pair,
    socat_ptys,
    wire_recording,
)

HERE = os.path.dirname(os.path.abspath(__file__))
#: The big-message size here: the transports' own suite sends 8 MiB through each; this
#: suite checks the runtime, and 2 MiB (many reads, many drains) keeps it quick.
BIG = 2 * 1024 * 1024
ASYNC_CHILD = os.path.join(HERE, "conformance_child.py")
THREADED_CHILD = os.path.join(os.path.dirname(HERE), "transports", "stdio_child.py")


class LoopThread:
    """An event loop (debug mode) running in a background thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.set_debug(True)
        self.thread = threading.Thread(target=self.loop.run_forever, name="test-aio-loop")
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        async def leftovers() -> list[asyncio.Task[Any]]:
            current = asyncio.current_task()
            return [t for t in asyncio.all_tasks() if t is not current and not t.done()]

        left = self.run(leftovers())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()
        assert not left, f"tasks outlived the peers' shutdown: {left}"


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    runner = LoopThread()
    try:
        yield runner
    finally:
        runner.stop()


@pytest.fixture(scope="module")
def tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


@pytest.fixture(autouse=True)
def raw_writes_for_async_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    """The garbage check writes past the endpoint with threaded internals; give it the
    asyncio equivalent for AsyncConnection clients."""
    threaded_raw_write = conformance._raw_write

    def raw_write(connection: Any, data: bytes) -> None:
        if isinstance(connection, AsyncConnection):
            write = connection._transport.write([data])
            asyncio.run_coroutine_threadsafe(write, connection.loop).result(10)
        else:
            threaded_raw_write(connection, data)

    monkeypatch.setattr(conformance, "_raw_write", raw_write)


class Setup:
    """Makes the peers of one mode and opens connections with them."""

    def __init__(self, runner: LoopThread, mode: str, options: dict[str, Any]) -> None:
        self.runner = runner
        self.mode = mode
        self.server = AsyncPeer(default_handler=ConformanceHandler, **options)
        self.client: AsyncPeer | ThreadedPeer = (
            AsyncPeer(default_handler=ConformanceHandler, **options)
            if mode == "async-async"
            else ThreadedPeer(
                default_handler=ConformanceHandler, shutdown_on_parent_exit=False, **options
            )
        )

    def connect(self, url: str, **options: Any) -> Any:
        client = self.client
        if isinstance(client, AsyncPeer):
            return self.runner.run(client.connect(url, **options))
        return client.connect(url, **options)

    def close(self) -> None:
        client = self.client
        if isinstance(client, AsyncPeer):
            self.runner.run(client.shutdown())
        else:
            client.shutdown()
        self.runner.run(self.server.shutdown())


@contextlib.contextmanager
def _setup(runner: LoopThread, mode: str, options: dict[str, Any]) -> Iterator[Setup]:
    setup = Setup(runner, mode, options)
    try:
        yield setup
    finally:
        setup.close()


Factory = Callable[..., Any]


def _listening(
    url: str,
    framing: str | None,
    oversize: str,
    server_options: dict[str, Any] | None = None,
    client_options: dict[str, Any] | None = None,
) -> Callable[[LoopThread, str], Factory]:
    def bind(runner: LoopThread, mode: str) -> Factory:
        @contextlib.contextmanager
        def factory(trace: bool = False, **options: Any) -> Iterator[Pair]:
            with wire_recording(trace) as wire, _setup(runner, mode, options) as setup:
                listener = runner.run(
                    setup.server.listen(url, framing=framing, **(server_options or {}))
                )

                def reconnect() -> Any:
                    return setup.connect(listener.url, framing=framing, **(client_options or {}))

                yield Pair(reconnect(), framing, oversize, reconnect=reconnect, big=BIG, wire=wire)

        return factory

    return bind


def _pipe(runner: LoopThread, mode: str) -> Factory:
    @contextlib.contextmanager
    def factory(trace: bool = False, **options: Any) -> Iterator[Pair]:
        with wire_recording(trace) as wire, _setup(runner, mode, options) as setup:

            async def make() -> Any:
                if isinstance(setup.client, AsyncPeer):
                    return setup.client.pipe_pair(setup.server)[0]
                # The threaded end of a pipe from the asyncio server to a threaded peer.
                return setup.server.pipe_pair(setup.client)[1]

            yield Pair(runner.run(make()), None, "reply", big=BIG, wire=wire)

    return factory


def _loop(runner: LoopThread, mode: str) -> Factory:
    if mode != "async-async":
        pytest.skip("loop:// has one end: only the asyncio-to-itself mode applies")

    @contextlib.contextmanager
    def factory(trace: bool = False, **options: Any) -> Iterator[Pair]:
        with wire_recording(trace) as wire, _setup(runner, mode, options) as setup:
            connection = setup.connect("loop://")
            yield Pair(connection, "newline", "either", loopback=True, big=256 * 1024, wire=wire)

    return factory


def _pty(runner: LoopThread, mode: str) -> Factory:
    @contextlib.contextmanager
    def factory(trace: bool = False, **options: Any) -> Iterator[Pair]:
        with (
            socat_ptys() as (a, b),
            wire_recording(trace) as wire,
            _setup(runner, mode, options) as setup,
        ):
            runner.run(setup.server.connect(f"serial://{a}?baudrate=115200"))
            connection = setup.connect(f"serial://{b}?baudrate=115200")
            yield Pair(connection, "newline", "either", big=BIG, wire=wire)

    return factory


def _exec(framing: str | None, oversize: str, threaded_child: bool = False) -> Any:
    def bind(runner: LoopThread, mode: str) -> Factory:
        if threaded_child and mode != "async-async":
            pytest.skip("a threaded parent with a threaded child involves no asyncio")

        @contextlib.contextmanager
        def factory(trace: bool = False, **options: Any) -> Iterator[Pair]:
            argv = [sys.executable, THREADED_CHILD if threaded_child else ASYNC_CHILD]
            if framing:
                argv += ["--framing", framing]
            if "max_message_size" in options:
                argv += ["--max-message-size", str(options["max_message_size"])]
            with wire_recording(trace) as wire, _setup(runner, mode, options) as setup:
                client = setup.client
                if isinstance(client, AsyncPeer):
                    connection = runner.run(client.spawn(argv, framing=framing))
                else:
                    connection = client.spawn(argv, framing=framing)
                yield Pair(connection, framing or "content-length", oversize, big=BIG, wire=wire)

        return factory

    return bind


def _factories() -> dict[str, Any]:
    socket_dir = tempfile.mkdtemp(prefix="rpcbd-aio-test-")
    return {
        "pipe": _pipe,
        "tcp": _listening("tcp://127.0.0.1:0", "newline", "either"),
        "tcp-content-length": _listening("tcp://127.0.0.1:0", "content-length", "reply"),
        "tls": "tls",
        "unix": _listening(f"unix://{socket_dir}/conformance.sock", "newline", "either"),
        "unix-netstring": _listening(f"unix://{socket_dir}/netstring.sock", "netstring", "reply"),
        "ws": _listening("ws://127.0.0.1:0/rpc", None, "close"),
        "wss": "wss",
        "serial-loop": _loop,
        "serial-pty": _pty,
        "exec": _exec(None, "reply"),
        "exec-newline": _exec("newline", "either"),
        "exec-threaded-child": _exec(None, "reply", threaded_child=True),
    }


FACTORIES = _factories()


@pytest.fixture(params=["async-async", "threaded-async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=sorted(FACTORIES))
def transport(
    request: pytest.FixtureRequest,
    mode: str,
    loop_thread: LoopThread,
    tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> Factory:
    name: str = request.param
    bind = FACTORIES[name]
    if name in ("tls", "wss"):
        server_context, client_context = tls_contexts
        bind = _listening(
            "tls://127.0.0.1:0" if name == "tls" else "wss://127.0.0.1:0/rpc",
            "newline" if name == "tls" else None,
            "either" if name == "tls" else "close",
            server_options={"ssl_context": server_context},
            client_options={"ssl_context": client_context},
        )
    factory: Factory = bind(loop_thread, mode)
    return factory


@pytest.mark.parametrize("check", sorted(CHECKS))
def test_conformance(check: str, transport: Factory, request: pytest.FixtureRequest) -> None:
    if check == "peer_closes" and "serial-pty" in request.node.name:
        pytest.skip(
            "a serial line has no end of stream: when the far end closes its port nothing "
            "reaches this end (the threaded suite fails this check on ptys the same way)"
        )
    CHECKS[check](transport)
