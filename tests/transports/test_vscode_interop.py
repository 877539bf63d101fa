"""Interop with an implementation nobody here wrote: npm's ``vscode-jsonrpc``.

tests/interop/peer.js runs a script against us over (a) TCP and (b) its stdin/stdout as our
child process, both with content-length framing: requests and notifications both ways, an
error reply each way, and a cancellation (``$/cancelRequest`` from node reaching a handler
that sees ``current_call().cancelled``, answered -32800).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from rpcbd import Connection, Handler, RpcError, ThreadedPeer, current_call, exposed

from .conformance import wait_until

INTEROP = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "interop")
PEER_JS = os.path.join(INTEROP, "peer.js")
DEADLINE = 30.0


def _node() -> str:
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.skip("Node.js is not installed (apt-get install nodejs npm)")
    if not os.path.isdir(os.path.join(INTEROP, "node_modules", "vscode-jsonrpc")):
        pytest.skip("vscode-jsonrpc is not installed: run `npm install` in tests/interop")
    return node


class PySide(Handler):
    assume_methods_block = True

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.saw_cancel: bool | None = None
        self.report: dict[str, Any] | None = None
        self.reported = threading.Event()

    @exposed(name="py/echo")
    def echo(self, value: Any) -> Any:
        return value

    @exposed(name="py/add")
    def add(self, a: int, b: int) -> int:
        return a + b

    @exposed(name="py/greet")
    def greet(self, name: str) -> str:
        return f"hello {name}"

    @exposed(name="py/fail")
    def fail(self) -> None:
        raise RpcError(-32001, "python refused", {"side": "python"})

    @exposed(name="py/note")
    def note(self, text: str) -> None:
        self.notes.append(text)

    @exposed(name="py/callNode")
    def call_node(self, a: int, b: int) -> dict[str, Any]:
        total = self.connection.request("node/add")(a, b)
        try:
            self.connection.request("node/fail")()
        except RpcError as exc:
            failure = {"code": exc.code, "message": exc.message, "data": exc.data}
        self.connection.notification("node/note")("a notification from python")
        return {"sum": total, "failure": failure}

    @exposed(name="py/slow")
    def slow(self, seconds: float) -> str:
        call = current_call()
        self.connection.notification("node/started")()
        call.cancel_event.wait(seconds)
        self.saw_cancel = call.cancelled
        call.raise_if_cancelled()
        return "finished without being cancelled"

    @exposed(name="py/sawCancel")
    def saw_cancel_(self) -> bool | None:
        return self.saw_cancel

    @exposed(name="py/report")
    def report_(self, **report: Any) -> None:
        self.report = report
        self.reported.set()


@pytest.fixture
def peer() -> Iterator[ThreadedPeer]:
    peer = ThreadedPeer(default_handler=PySide)
    try:
        yield peer
    finally:
        peer.shutdown()


def _check(connection: Connection) -> None:
    handler = connection._handler_instance(PySide)
    assert isinstance(handler, PySide)
    assert handler.reported.wait(DEADLINE), "node sent no report"
    report = handler.report
    assert report is not None
    assert "failure" not in report, report["failure"]
    assert report["echo"] == "hello from node"
    assert report["add"] == 5
    assert report["greet"] == "hello vscode-jsonrpc"
    assert report["error"] == {
        "code": -32001,
        "message": "python refused",
        "data": {"side": "python"},
    }
    assert report["unknown"] == -32601
    assert handler.notes == ["a notification from node"]
    assert report["nested"] == {
        "sum": 42,
        "failure": {"code": -32002, "message": "node refused", "data": {"side": "node"}},
    }
    assert report["note"] == "a notification from python"
    assert report["cancel"]["code"] == -32800
    assert report["sawCancel"] is True
    # Python calls node outside any call of node's.
    assert connection.request("node/add")(1, 2) == 3


def test_vscode_jsonrpc_over_tcp(peer: ThreadedPeer) -> None:
    node = _node()
    listener = peer.listen("tcp://127.0.0.1:0", framing="content-length")
    process = subprocess.Popen(
        [node, PEER_JS, "tcp", str(listener.port)], stderr=subprocess.PIPE, text=True
    )
    try:
        accepted: list[Connection] = []

        def one_connection() -> bool:
            accepted[:] = listener.connections
            return bool(accepted)

        wait_until(one_connection, "node to connect", DEADLINE)
        connection = accepted[0]
        _check(connection)
        connection.close()
        assert process.wait(DEADLINE) == 0  # node exits when we close the connection
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stderr is not None
        errors = process.stderr.read()
        process.stderr.close()
    assert "script failed" not in errors, errors


def test_vscode_jsonrpc_over_child_stdio(peer: ThreadedPeer) -> None:
    node = _node()
    connection = peer.spawn([node, PEER_JS, "stdio"])  # content-length framing by default
    process = connection._transport.process  # type: ignore[attr-defined]
    _check(connection)
    connection.close()  # closes node's stdin; node exits; the child is reaped
    assert process.returncode == 0
