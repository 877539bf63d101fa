"""The conformance suite every transport must pass.

A transport is tested through a :class:`Pair`: a client :class:`~rpcbd.Connection` whose
other end is served by :class:`ConformanceHandler` (and the client's own peer serves the same
handler, so the server can call back). The checks are plain functions taking a pair factory;
``test_conformance.py`` runs each of them against each transport.

A factory is called as ``factory(**options)`` and returns a context manager yielding a
:class:`Pair`; the options (``max_message_size``, ...) apply to both ends. ``trace=True``
records the client's wire trace (``Pair.wire``).

Loopback transports (pyserial's ``loop://``) have a single end that talks to itself: the
client is its own server, which the checks allow for.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import subprocess
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import pytest

from rpcbd import (
    Connection,
    Handler,
    LocalProtocolError,
    RpcError,
    RpcMethodNotFoundError,
    TransportError,
    current_call,
    willnotblock,
)
from rpcbd.codecs.framing import get_framing

__all__ = [
    "CHECKS",
    "ConformanceHandler",
    "Echo",
    "Pair",
    "PairFactory",
    "WireRecorder",
    "notes_of",
    "socat_ptys",
]

#: The biggest message the suite sends in one piece.
BIG = 8 * 1024 * 1024
#: The limit used by the over-the-limit check, and what it sends.
SMALL_LIMIT = 64 * 1024
OVER_LIMIT = 100 * 1024
#: Upper bound for anything the suite waits for; typical waits are milliseconds.
DEADLINE = 15.0

_notes: weakref.WeakKeyDictionary[Connection, list[Any]] = weakref.WeakKeyDictionary()
_notes_lock = threading.Lock()


def _record(connection: Connection, value: Any) -> None:
    with _notes_lock:
        _notes.setdefault(connection, []).append(value)


def notes_of(connection: Connection) -> list[Any]:
    """What the handler recorded on ``connection`` (notifications and call-backs), in order."""
    with _notes_lock:
        return list(_notes.get(connection, []))


class ConformanceHandler(Handler):
    """Served on both ends of every pair."""

    assume_methods_block = True

    def echo(self, value: Any) -> Any:
        return value

    def fail(self) -> None:
        raise RpcError(-32001, "refused on purpose", {"why": "conformance"})

    def ping_back(self, value: Any) -> Any:
        """Calls the caller while the caller's call is in flight."""
        return self.connection.request.echo(["back", value])

    @willnotblock
    def note(self, value: Any) -> None:
        # willnotblock: runs on the reader thread, so notes are recorded in arrival order.
        _record(self.connection, value)

    @willnotblock
    def notes(self) -> list[Any]:
        return notes_of(self.connection)

    def notify_me(self, count: int) -> int:
        for index in range(count):
            self.connection.notification.note(f"s{index}")
        return count

    def please_call(self, token: str) -> None:
        """A notification; answered later by an unsolicited call to the other side."""
        reply = self.connection.request.record_call(token)
        self.connection.notification.note(f"record_call said {reply}")

    @willnotblock
    def record_call(self, token: str) -> str:
        _record(self.connection, f"called {token}")
        return "ok"

    def hang(self) -> str:
        """Blocks until the connection closes (or a generous safety timeout)."""
        self.connection.notification.note("hanging")
        current_call().cancel_event.wait(DEADLINE)
        return "released"

    @willnotblock
    def close_me(self) -> None:
        self.connection.close()


class WireRecorder(logging.Handler):
    """Collects the client's received payloads from the ``rpcbd.wire`` trace."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.received: list[str] = []
        self._cond = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        direction, payload = record.args  # type: ignore[misc]
        if direction == "<--":
            with self._cond:
                self.received.append(payload[:500])
                self._cond.notify_all()

    def wait_for(self, text: str, timeout: float = DEADLINE) -> str:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for payload in self.received:
                    if text in payload:
                        return payload
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"no received message contains {text!r}: {self.received[-5:]}"
                    )
                self._cond.wait(remaining)


@contextlib.contextmanager
def wire_recording(enabled: bool) -> Iterator[WireRecorder | None]:
    """Enable the wire trace while connections are made (it is fixed at creation)."""
    if not enabled:
        yield None
        return
    logger = logging.getLogger("rpcbd.wire")
    recorder = WireRecorder()
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(recorder)
    try:
        yield recorder
    finally:
        logger.removeHandler(recorder)
        logger.setLevel(old_level)


@dataclass
class Pair:
    """One client connection to a server running :class:`ConformanceHandler`.

    Attributes:
        client: the connection the checks use.
        framing: the client's framing name; None for message transports.
        oversize: what a message over ``max_message_size`` must do: ``"reply"`` (an
            error reply, the connection lives on), ``"close"``, or ``"either"`` (framings
            that can do both, like newline, which skips to the next line).
        reconnect: opens another client connection to the same server, or None when the
            transport is point to point.
        loopback: the client is its own server (``loop://``).
        big: the size of the big-message check (smaller for very slow transports).
        wire: the client's received messages when made with ``trace=True``.
        end_of_stream: whether the peer closing is visible here. A serial line has no
            end of stream (nothing tells one end that the other closed the port), so
            there only this side's close is checked.
    """

    client: Connection
    framing: str | None
    oversize: str
    reconnect: Callable[[], Connection] | None = None
    loopback: bool = False
    big: int = BIG
    wire: WireRecorder | None = None
    end_of_stream: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


PairFactory = Callable[..., AbstractContextManager[Pair]]


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    """Poll ``predicate`` with a deadline (for effects that have no event to wait on)."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def _raw_write(connection: Connection, data: bytes) -> None:
    """Write bytes past the endpoint, as a misbehaving peer would."""
    with connection._write_lock:
        connection._transport.write([data])


# -- the checks ---------------------------------------------------------------------------


def check_requests_both_ways(factory: PairFactory) -> None:
    with factory() as pair:
        client = pair.client
        assert client.request.echo("hello") == "hello"
        assert client.request.echo({"a": [1, 2.5, None, True]}) == {"a": [1, 2.5, None, True]}
        # The server calls the client while the client's call is in flight.
        assert client.request.ping_back(42) == ["back", 42]
        with pytest.raises(RpcError) as info:
            client.request.fail()
        assert (info.value.code, info.value.data) == (-32001, {"why": "conformance"})
        with pytest.raises(RpcMethodNotFoundError):
            client.request.no_such_method()
        # The server calls the client on its own initiative (not inside a call).
        client.notification.please_call("t1")
        wait_until(lambda: "called t1" in notes_of(client), "the server's call")
        wait_until(lambda: "record_call said ok" in notes_of(client), "the call's reply")


def check_notifications(factory: PairFactory) -> None:
    with factory() as pair:
        client = pair.client
        sent = [f"c{index}" for index in range(20)]
        for value in sent:
            client.notification.note(value)
        # Same connection, in order: the request is read after the notifications.
        received = [v for v in client.request.notes() if str(v).startswith("c")]
        assert received == sent
        assert client.request.notify_me(5) == 5
        # The server's notifications were sent (and read) before its reply.
        assert [v for v in notes_of(client) if str(v).startswith("s")] == [
            f"s{i}" for i in range(5)
        ]


def check_concurrent_calls(factory: PairFactory) -> None:
    with factory() as pair:
        client = pair.client

        def one(index: int) -> Any:
            if index % 8 == 0:
                return client.request.ping_back(index)
            return client.request.echo([index, "x" * index])

        with ThreadPoolExecutor(64) as pool:
            results = list(pool.map(one, range(64)))
        expected = [["back", i] if i % 8 == 0 else [i, "x" * i] for i in range(64)]
        assert results == expected


def check_big_message(factory: PairFactory) -> None:
    with factory() as pair:
        payload = "".join(chr(0x61 + i % 26) for i in range(1024)) * (pair.big // 1024)
        started = time.perf_counter()
        assert pair.client.request.echo(payload) == payload
        pair.extra["seconds"] = time.perf_counter() - started
        assert pair.client.request.echo("still fine") == "still fine"


def check_over_limit(factory: PairFactory) -> None:
    with factory(max_message_size=SMALL_LIMIT, trace=True) as pair:
        client = pair.client
        wire = pair.wire
        assert wire is not None
        # The sender refuses a message over its own limit at once ...
        with pytest.raises(LocalProtocolError, match="max_message_size"):
            client.request.echo("y" * OVER_LIMIT)
        # ... so, to see what the receiver does, act as a sender with a larger limit.
        client._endpoint._max_message_size = 2 * OVER_LIMIT
        future = client.future.echo("y" * OVER_LIMIT)
        # Either the receiver skips the message and replies -32600 with the reason (the
        # framing lets it find the next message), or it closes the connection.
        wait_until(
            lambda: client.closed or any("message too large" in m for m in wire.received),
            "an error reply or the connection closing",
        )
        replied = not client.closed
        expected = {"reply": True, "close": False}.get(pair.oversize, replied)
        assert replied == expected, f"expected {pair.oversize}"
        if replied:
            reply = wire.wait_for("message too large")
            assert "-32600" in reply and str(SMALL_LIMIT) in reply
            future.cancel()  # its id could not be read, so no reply will ever come
            assert client.request.echo("after") == "after"
        else:
            with pytest.raises(TransportError):
                future.result(timeout=DEADLINE)
            if pair.reconnect is not None:
                with pair.reconnect() as again:
                    assert again.request.echo("server still serves") == "server still serves"


def check_peer_closes(factory: PairFactory) -> None:
    with factory() as pair:
        client = pair.client
        if not pair.end_of_stream:
            assert client.request.echo("a serial line stays open") == "a serial line stays open"
            pair.extra["skipped_remote_close"] = True
        else:
            pending = client.future.hang()
            wait_until(lambda: "hanging" in notes_of(client), "the handler to start")
            started = time.monotonic()
            client.notification.close_me()
            with pytest.raises(TransportError):
                pending.result(timeout=DEADLINE)
            elapsed = time.monotonic() - started
            pair.extra["fail_seconds"] = elapsed
            assert elapsed < 5.0
            wait_until(lambda: client.closed, "the connection to close")
            with pytest.raises(TransportError):
                client.request.echo("too late")
    # Closing from this side fails calls in flight at once, too.
    with factory() as pair:
        client = pair.client
        pending = client.future.hang()
        wait_until(lambda: "hanging" in notes_of(client), "the handler to start")
        started = time.monotonic()
        client.close()
        with pytest.raises(TransportError):
            pending.result(timeout=DEADLINE)
        assert time.monotonic() - started < 5.0


def check_garbage(factory: PairFactory) -> None:
    with factory(trace=True) as pair:
        client = pair.client
        # A well-framed message that is not JSON: -32700, and the connection goes on.
        garbage = b'{"jsonrpc": "2.0", "method": oops'
        _raw_write(
            client, garbage if pair.framing is None else get_framing(pair.framing).frame(garbage)
        )
        assert pair.wire is not None
        assert "-32700" in pair.wire.wait_for("-32700")
        assert client.request.echo("after garbage") == "after garbage"
        # Valid JSON that is not a request: -32600.
        nonsense = b'{"hello": "world"}'
        _raw_write(
            client, nonsense if pair.framing is None else get_framing(pair.framing).frame(nonsense)
        )
        assert "-32600" in pair.wire.wait_for("-32600")
        assert client.request.echo("after nonsense") == "after nonsense"
        # Bytes that break the framing itself: the connection may close, but the server
        # keeps serving.
        if pair.framing is not None and not pair.loopback:
            _raw_write(client, b"\x00\xff\xfe garbage \r\n\r\n" + bytes(range(256)) + b"\n")
            try:
                assert client.request("echo", timeout=DEADLINE)("maybe") == "maybe"
            except TransportError:
                assert client.closed
            if pair.reconnect is not None:
                with pair.reconnect() as again:
                    assert again.request.echo("still serving") == "still serving"


#: Every check, by name (the test ids).
CHECKS: dict[str, Callable[[PairFactory], None]] = {
    "requests_both_ways": check_requests_both_ways,
    "notifications": check_notifications,
    "concurrent_calls": check_concurrent_calls,
    "big_message": check_big_message,
    "over_limit": check_over_limit,
    "peer_closes": check_peer_closes,
    "garbage": check_garbage,
}


class Echo(Handler):
    """The one-method handler the per-transport tests serve."""

    assume_methods_block = False

    def echo(self, value: Any) -> Any:
        return value


@contextlib.contextmanager
def socat_ptys() -> Iterator[tuple[str, str]]:
    """A real pty pair joined by ``socat`` (skips the test when socat is missing)."""
    if shutil.which("socat") is None:
        pytest.skip("socat is not installed (apt-get install socat)")
    process = subprocess.Popen(
        ["socat", "-d", "-d", "pty,raw,echo=0", "pty,raw,echo=0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        paths: list[str] = []
        for line in process.stderr:
            found = re.search(r"PTY is (\S+)", line)
            if found:
                paths.append(found.group(1))
            if "starting data transfer loop" in line:
                break
        assert len(paths) == 2, f"socat did not report two ptys: {paths}"
        yield paths[0], paths[1]
    finally:
        process.terminate()
        process.wait()
        assert process.stderr is not None
        process.stderr.close()
