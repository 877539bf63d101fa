"""Limits of the threaded runtime: calls in flight, nesting depth, half-sent frames."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from rpcbd import Handler, LocalProtocolError, RpcInternalError, ThreadedPeer

from .helpers import Service, wait_until


def test_callers_wait_for_room_under_max_calls_in_flight() -> None:
    gate = threading.Event()
    most = [0]
    running: list[int] = []
    lock = threading.Lock()

    class Svc(Handler):
        def work(self, n: int) -> int:
            with lock:
                running.append(n)
                most[0] = max(most[0], len(running))
            gate.wait(10)
            with lock:
                running.remove(n)
            return n

    server = ThreadedPeer(default_handler=Svc, workers=8)
    client = ThreadedPeer(max_calls_in_flight=3)
    try:
        connection = client.connect(server.listen("tcp://127.0.0.1:0").url)
        results: list[int] = []

        def call(n: int) -> None:
            results.append(connection.request.work(n))

        threads = [threading.Thread(target=call, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        assert wait_until(lambda: len(running) == 3)
        # Three callers wait for room instead of sending.
        assert connection._endpoint.calls_in_flight == 3
        assert connection._room_waiters == 3
        gate.set()
        for thread in threads:
            thread.join(10)
        assert sorted(results) == list(range(6))
        assert most[0] == 3
    finally:
        gate.set()
        client.shutdown()
        server.shutdown()


def test_too_deep_nesting_gets_an_error_reply() -> None:
    server = ThreadedPeer(default_handler=Service, max_nesting_depth=20)
    try:
        listener = server.listen("tcp://127.0.0.1:0")
        deep = "[" * 30 + "]" * 30
        with socket.create_connection(("127.0.0.1", listener.port), timeout=5) as sock:
            sock.sendall(
                b'{"jsonrpc":"2.0","method":"echo","params":[' + deep.encode() + b'],"id":1}\n'
            )
            sock.sendall(b'{"jsonrpc":"2.0","method":"echo","params":[[[1]]],"id":2}\n')
            replies = b""
            while replies.count(b"\n") < 2:
                chunk = sock.recv(4096)
                assert chunk
                replies += chunk
        first, second = (json.loads(line) for line in replies.splitlines())
        assert first["error"]["code"] == -32600
        assert first["error"]["data"] == {"reason": "nesting too deep", "limit": 20}
        assert second == {"jsonrpc": "2.0", "result": [[1]], "id": 2}
    finally:
        server.shutdown()


def test_half_sent_frame_is_dropped_after_partial_message_timeout() -> None:
    server = ThreadedPeer(default_handler=Service, partial_message_timeout=0.3)
    try:
        listener = server.listen("tcp://127.0.0.1:0")
        with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
            sock.sendall(b'{"jsonrpc":"2.0","method":"echo",')  # ... and nothing more
            started = time.monotonic()
            assert sock.recv(4096) == b""  # the server closed the connection
            assert time.monotonic() - started < 5
        assert wait_until(lambda: not server.connections)
    finally:
        server.shutdown()


def test_whole_frames_keep_a_connection_open_past_the_timeout() -> None:
    server = ThreadedPeer(default_handler=Service, partial_message_timeout=0.2)
    client = ThreadedPeer()
    try:
        connection = client.connect(server.listen("tcp://127.0.0.1:0").url)
        deadline = time.monotonic() + 0.6
        while time.monotonic() < deadline:
            assert connection.request.echo(1) == 1
        assert not connection.closed
    finally:
        client.shutdown()
        server.shutdown()


def test_a_message_over_the_limit_fails_at_once_on_the_sending_side() -> None:
    """The peer would skip an over-size frame without being able to read its id, so the
    call could never end; the sender refuses it instead (and a too-large result becomes
    an internal error reply)."""

    class Big(Handler):
        assume_methods_block = False

        def blob(self, size: int) -> str:
            return "x" * size

    server = ThreadedPeer(default_handler=Big, max_message_size=4096)
    client = ThreadedPeer(max_message_size=4096)
    try:
        connection = client.connect(server.listen("tcp://127.0.0.1:0").url)
        with pytest.raises(LocalProtocolError, match="max_message_size"):
            connection.request.blob("y" * 5000)
        with pytest.raises(RpcInternalError):
            connection.request.blob(5000)
        assert connection.request.blob(10) == "x" * 10
    finally:
        client.shutdown()
        server.shutdown()


def test_handlers_calling_back_do_not_starve_their_pool() -> None:
    """Every worker of a 2-thread pool runs a handler that waits for a call back whose
    own handler needs a worker of the same pool (a peer talking to itself). A worker
    waiting for a reply lets the pool start another thread, so nothing deadlocks."""

    class Loopy(Handler):
        def outer(self, n: int) -> int:
            return int(self.connection.request.inner(n)) + 1

        def inner(self, n: int) -> int:
            return n * 10

    peer = ThreadedPeer(default_handler=Loopy, workers=2)
    try:
        first, _second = peer.pipe_pair()
        futures = [first.future("outer", timeout=20)(n) for n in range(6)]
        assert [f.result(30) for f in futures] == [n * 10 + 1 for n in range(6)]
    finally:
        peer.shutdown()
