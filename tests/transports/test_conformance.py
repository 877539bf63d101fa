"""Runs the conformance suite (conformance.py) against every transport."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import ssl
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trustme

from rpcbd import Connection, ThreadedPeer

from .conformance import CHECKS, ConformanceHandler, Pair, socat_ptys, wire_recording

HERE = os.path.dirname(os.path.abspath(__file__))
CHILD = os.path.join(HERE, "stdio_child.py")


@pytest.fixture(scope="module")
def tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A throwaway CA, a certificate for 127.0.0.1, and contexts for both sides."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


@contextlib.contextmanager
def _peers(**options: Any) -> Iterator[tuple[ThreadedPeer, ThreadedPeer]]:
    server = ThreadedPeer(default_handler=ConformanceHandler, **options)
    client = ThreadedPeer(default_handler=ConformanceHandler, **options)
    try:
        yield server, client
    finally:
        client.shutdown()
        server.shutdown()


def _listening(
    url: str,
    framing: str | None,
    oversize: str,
    server_options: dict[str, Any] | None = None,
    client_options: dict[str, Any] | None = None,
) -> Callable[..., Any]:
    """A factory for transports with a listener."""

    @contextlib.contextmanager
    def factory(trace: bool = False, **options: Any) -> Iterator[Pair]:
        with wire_recording(trace) as wire, _peers(**options) as (server, client):
            listener = server.listen(url, framing=framing, **(server_options or {}))

            def reconnect() -> Connection:
                return client.connect(listener.url, framing=framing, **(client_options or {}))

            yield Pair(reconnect(), framing, oversize, reconnect=reconnect, wire=wire)

    return factory


@contextlib.contextmanager
def _pipe(trace: bool = False, **options: Any) -> Iterator[Pair]:
    with wire_recording(trace) as wire, _peers(**options) as (server, client):
        first, _ = client.pipe_pair(server)
        yield Pair(first, None, "reply", wire=wire)


@contextlib.contextmanager
def _loop(trace: bool = False, **options: Any) -> Iterator[Pair]:
    with wire_recording(trace) as wire:
        peer = ThreadedPeer(default_handler=ConformanceHandler, **options)
        try:
            # One port that reads what it writes: the connection is its own server.
            # pyserial's loop:// moves one byte at a time through a queue, hence the
            # smaller big message.
            connection = peer.connect("loop://")
            yield Pair(connection, "newline", "either", loopback=True, big=256 * 1024, wire=wire)
        finally:
            peer.shutdown()


@contextlib.contextmanager
def _pty(trace: bool = False, **options: Any) -> Iterator[Pair]:
    with (
        socat_ptys() as (a, b),
        wire_recording(trace) as wire,
        _peers(**options) as (server, client),
    ):
        server.connect(f"serial://{a}?baudrate=115200")
        connection = client.connect(f"serial://{b}?baudrate=115200")
        yield Pair(connection, "newline", "either", wire=wire, end_of_stream=False)


def _exec(framing: str | None, oversize: str) -> Callable[..., Any]:
    @contextlib.contextmanager
    def factory(trace: bool = False, **options: Any) -> Iterator[Pair]:
        argv = [sys.executable, CHILD]
        if framing:
            argv += ["--framing", framing]
        if "max_message_size" in options:
            argv += ["--max-message-size", str(options["max_message_size"])]
        with wire_recording(trace) as wire:
            peer = ThreadedPeer(default_handler=ConformanceHandler, **options)
            try:
                connection = peer.spawn(argv, framing=framing)
                yield Pair(connection, framing or "content-length", oversize, wire=wire)
            finally:
                peer.shutdown()

    return factory


def _factories() -> dict[str, Callable[..., Any]]:
    # Short, so that the socket paths fit in sun_path; removed when the tests end.
    socket_dir = tempfile.mkdtemp(prefix="rpcbd-test-")
    atexit.register(shutil.rmtree, socket_dir, ignore_errors=True)
    return {
        "pipe": _pipe,
        "tcp": _listening("tcp://127.0.0.1:0", "newline", "either"),
        "tcp-content-length": _listening("tcp://127.0.0.1:0", "content-length", "reply"),
        "tls": "tls",  # needs the certificates: built in the fixture
        "unix": _listening(f"unix://{socket_dir}/conformance.sock", "newline", "either"),
        "unix-netstring": _listening(f"unix://{socket_dir}/netstring.sock", "netstring", "reply"),
        "ws": _listening("ws://127.0.0.1:0/rpc", None, "close"),
        "wss": "wss",
        "serial-loop": _loop,  # one port talking to itself
        "serial-pty": _pty,
        "exec": _exec(None, "reply"),
        "exec-newline": _exec("newline", "either"),
    }


FACTORIES = _factories()


@pytest.fixture(params=sorted(FACTORIES))
def transport(
    request: pytest.FixtureRequest, tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> Callable[..., Any]:
    name: str = request.param
    factory = FACTORIES[name]
    if name in ("tls", "wss"):
        server_context, client_context = tls_contexts
        url = "tls://127.0.0.1:0" if name == "tls" else "wss://127.0.0.1:0/rpc"
        factory = _listening(
            url,
            "newline" if name == "tls" else None,
            "either" if name == "tls" else "close",
            server_options={"ssl_context": server_context},
            client_options={"ssl_context": client_context},
        )
    return factory


@pytest.mark.parametrize("check", sorted(CHECKS))
def test_conformance(check: str, transport: Callable[..., Any]) -> None:
    CHECKS[check](transport)
