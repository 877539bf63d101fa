"""The built-in demo: a handler to play with, and the guided tour ``rpcbd demo`` prints.

:class:`DemoHandler` is what ``rpcbd serve URL`` serves when no ``--handler`` is given::

    $ rpcbd serve tcp://127.0.0.1:9999 &
    $ rpcbd call tcp://127.0.0.1:9999 echo '"Hello World!"'
    "Hello World!"
    $ rpcbd call tcp://127.0.0.1:9999 count 3 --callback

:func:`run_demo` starts a server and a client in this process, over real TCP on a free
loopback port, and shows a call each way, an implicit callback, error replies and the wire
trace.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from rpcbd.codecs.jsonrpc2 import JSONRPC_V2
from rpcbd.dispatch import Handler, mayblock
from rpcbd.exceptions import RpcError
from rpcbd.threaded.peer import ThreadedPeer

__all__ = ["BAD_ARGUMENTS", "DemoClient", "DemoHandler", "run_demo"]

log = logging.getLogger("rpcbd.demo")

#: The error code :meth:`DemoHandler.divide` replies with when its arguments are not
#: numbers: an application-defined code, outside the range JSON-RPC reserves
#: (-32768 to -32000).
BAD_ARGUMENTS = 4001


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class DemoHandler(Handler):
    """The demo service: ``echo``, ``count`` (with progress callbacks), ``divide``,
    ``ask`` (calls the caller back) and ``log`` (for notifications).

    Quick methods run on the connection's reader thread; ``count`` and ``ask`` wait on the
    other side, so they are ``@mayblock`` and run on the worker pool.
    """

    assume_methods_block = False

    def echo(self, data: Any = None) -> Any:
        """Return ``data`` unchanged."""
        return data

    @mayblock
    def count(self, n: int, callback: Callable[[str], None] | None = None) -> str:
        """Count from 1 to ``n``, calling ``callback("Counted to i")`` at each step
        (an implicit callback: the caller passed a function), and return the last line.

        Raises:
            RpcError: ``n`` is not a non-negative integer (code :data:`BAD_ARGUMENTS`).
        """
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise RpcError(BAD_ARGUMENTS, "count needs a non-negative integer", {"n": n})
        line = "Counted to 0"
        for i in range(1, n + 1):
            line = f"Counted to {i}"
            if callback is not None:
                callback(line)
        return line

    def divide(self, a: float, b: float) -> float:
        """Return ``a / b``.

        Dividing by zero raises ``ZeroDivisionError``, which the caller receives as an
        internal error (-32603); the traceback is logged here and never sent.

        Raises:
            RpcError: ``a`` or ``b`` is not a number (code :data:`BAD_ARGUMENTS`, with
                ``data`` naming the types received).
        """
        if not (_is_number(a) and _is_number(b)):
            raise RpcError(
                BAD_ARGUMENTS,
                "divide needs two numbers",
                {"a": type(a).__name__, "b": type(b).__name__},
            )
        return a / b

    @mayblock
    def ask(self, method: str, *params: Any) -> Any:
        """Call ``method`` on the caller, with ``params``, and return its answer: the
        server calling the client back while the client's own call is in flight."""
        return self.connection.request(method)(*params)

    def log(self, *words: Any) -> None:
        """Log the words (send it as a notification: nothing comes back)."""
        log.info("%s says: %s", self.connection.description, " ".join(map(str, words)))


class DemoClient(Handler):
    """What the demo's client serves, so the server can call it back."""

    assume_methods_block = False

    def whoami(self) -> str:
        """Say who this is."""
        return "the rpcbd demo client"


# -- output ----------------------------------------------------------------------------


class _Style:
    """ANSI colours when writing to a terminal (and ``NO_COLOR`` is not set)."""

    def __init__(self, stream: TextIO) -> None:
        isatty = getattr(stream, "isatty", None)
        self.enabled = bool(isatty and isatty()) and not os.environ.get("NO_COLOR")

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.enabled else text

    def title(self, text: str) -> str:
        return self._wrap("1;36", text)

    def code(self, text: str) -> str:
        return self._wrap("1", text)

    def sent(self, text: str) -> str:
        return self._wrap("32", text)

    def received(self, text: str) -> str:
        return self._wrap("33", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)

    def error(self, text: str) -> str:
        return self._wrap("31", text)


class _WireRecorder(logging.Handler):
    """Keeps the client's wire trace (from the ``rpcbd.wire`` logger) until printed.

    Both peers live in this process and log to the same logger; the client's messages are
    the ones logged by the main thread (sending) and by the client connection's reader
    thread (receiving, and replying to the server's calls, which ``DemoClient`` serves
    inline).
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.threads: set[str] = {threading.main_thread().name}
        self.lines: list[tuple[str, str]] = []
        self._lines_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if record.threadName not in self.threads:
            return
        direction, _, payload = record.getMessage().partition(" ")
        with self._lines_lock:
            self.lines.append((direction, payload))

    def take(self) -> list[tuple[str, str]]:
        with self._lines_lock:
            lines, self.lines = self.lines, []
        return lines


class _LogRecorder(logging.Handler):
    """Keeps rpcbd's own log records, so the demo can mention them instead of letting
    tracebacks interrupt the tour."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class _Tour:
    def __init__(self, out: TextIO, wire: _WireRecorder) -> None:
        self.out = out
        self.style = _Style(out)
        self.wire = wire
        self.number = 0

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def section(self, title: str, *explanation: str) -> None:
        self.number += 1
        heading = f"{self.number}. {title}"
        self.say()
        self.say(self.style.title(heading))
        self.say(self.style.title("-" * len(heading)))
        for line in explanation:
            self.say(line)
        self.wire.take()  # start this section's trace afresh

    def code(self, text: str) -> None:
        self.say("    " + self.style.code(text))

    def result(self, label: str, value: Any) -> None:
        self.say(f"    {self.style.dim(label)} {value}")

    def trace(self) -> None:
        lines = self.wire.take()
        if not lines:
            return
        self.say(self.style.dim("  on the wire:"))
        for direction, payload in lines:
            paint = self.style.sent if direction == "-->" else self.style.received
            self.say("    " + paint(f"{direction} {payload}"))


@contextlib.contextmanager
def _captured_logging(wire: _WireRecorder, logs: _LogRecorder) -> Iterator[None]:
    wire_logger = logging.getLogger("rpcbd.wire")
    rpcbd_logger = logging.getLogger("rpcbd")
    saved = (wire_logger.level, rpcbd_logger.level, rpcbd_logger.propagate)
    # The runtime decides when a connection opens whether to trace it, so this must be
    # in place before the peers connect.
    wire_logger.setLevel(logging.DEBUG)
    wire_logger.addHandler(wire)
    rpcbd_logger.setLevel(logging.INFO)
    rpcbd_logger.addHandler(logs)
    rpcbd_logger.propagate = False  # the tour reports these itself
    try:
        yield
    finally:
        wire_logger.removeHandler(wire)
        rpcbd_logger.removeHandler(logs)
        wire_logger.setLevel(saved[0])
        rpcbd_logger.setLevel(saved[1])
        rpcbd_logger.propagate = saved[2]


def run_demo(out: TextIO | None = None) -> int:
    """Run the guided tour, printing to ``out`` (default: stdout). Returns 0 (the exit
    status of ``rpcbd demo``); raises if something did not behave as the tour says."""
    out = out or sys.stdout
    wire = _WireRecorder()
    logs = _LogRecorder()
    tour = _Tour(out, wire)
    style = tour.style
    with _captured_logging(wire, logs):
        server = ThreadedPeer(JSONRPC_V2, default_handler=DemoHandler)
        client = ThreadedPeer(JSONRPC_V2, default_handler=DemoClient)
        try:
            listener = server.listen("tcp://127.0.0.1:0")
            connection = client.connect(listener.url)
            wire.threads.add(f"rpcbd-reader {connection.description}")
            tour.say(style.title("rpcbd demo: bi-directional JSON-RPC over real TCP"))
            tour.say(style.title("=" * 49))
            tour.say()
            tour.say(f"A server (DemoHandler) listens on {listener.url}, a client connects.")
            tour.say("Both are ThreadedPeers in this process. Under each step, the wire as the")
            tour.say(f"client sees it: {style.sent('-->')} sent, {style.received('<--')} received.")

            tour.section(
                "A call from the client to the server",
                "connection.request.<name>(...) blocks until the reply arrives.",
            )
            tour.code("connection.request.echo('Hello World!')")
            tour.result("returned", repr(connection.request.echo("Hello World!")))
            tour.trace()

            tour.section(
                "A notification: no reply",
                "connection.notification.<name>(...) sends and returns at once.",
            )
            tour.code("connection.notification.log('hello', 'server')")
            connection.notification.log("hello", "server")
            tour.result("returned", "at once; no reply will come")
            tour.trace()

            tour.section(
                "The server calls the client, during the client's call",
                "Connections are symmetric. The server's ask() calls whoami() on the client,",
                "which the client's own handler (DemoClient) answers, before ask() replies.",
            )
            tour.code("connection.request.ask('whoami')")
            tour.result("returned", repr(connection.request.ask("whoami")))
            tour.trace()

            tour.section(
                "An implicit callback, run while the call is in flight",
                "Pass a Python function as an argument: rpcbd sends it as rpc.callback.<uuid>.",
                "The server calls that name; the function runs in the caller's own thread.",
            )
            tour.code("connection.request.count(5, progress)")

            def progress(line: str) -> None:
                where = threading.current_thread().name
                tour.result("progress:", f"{line}  {style.dim('(in ' + where + ')')}")

            tour.result("returned", repr(connection.request.count(5, progress)))
            tour.trace()

            tour.section(
                "Errors come back as exceptions",
                "A handler that raises RpcError(code, message, data) replies with exactly that.",
                "Any other exception is an internal error (-32603): the traceback is logged",
                "by the server and never crosses the wire.",
            )
            for a, b in ((1, 0), ("one", 2)):
                tour.code(f"connection.request.divide({a!r}, {b!r})")
                try:
                    connection.request.divide(a, b)
                except RpcError as exc:
                    data = "" if exc.data is None else f", data={json.dumps(exc.data)}"
                    tour.result(
                        "raised",
                        style.error(
                            f"{type(exc).__name__}(code={exc.code}, {exc.message!r}{data})"
                        ),
                    )
                else:  # pragma: no cover - the demo handler always fails here
                    raise AssertionError("divide should have failed")
            failures = [r for r in logs.records if r.exc_info]
            if failures:
                record = failures[-1]
                assert record.exc_info is not None
                exc_type, exc_value = record.exc_info[0], record.exc_info[1]
                name = exc_type.__name__ if exc_type else "exception"
                tour.result(
                    "server log:", f"{record.getMessage()} ({name}: {exc_value}; traceback kept)"
                )
            tour.trace()

            tour.section(
                "Shutting down",
                "peer.shutdown() closes listeners and connections and stops every thread.",
            )
        finally:
            client.shutdown()
            server.shutdown()
    tour.say("    Done. Next: rpcbd serve tcp://127.0.0.1:9999, then in another shell")
    tour.say("    rpcbd call tcp://127.0.0.1:9999 count 3 --callback --trace")
    return 0
