"""The ``rpcbd`` command line: ``demo``, ``serve``, ``call``, ``notify`` and ``bridge``.

Exit status (shell friendly, the same for every command):

===  ==========================================================================
0    success
1    the peer replied with a JSON-RPC error (``error <code>: <message>`` on stderr)
2    usage error: bad arguments, unknown URL scheme, handler that cannot be loaded
3    connection or transport error: refused, closed, timed out
===  ==========================================================================

``--trace`` prints the wire trace to stderr (``--> {...}`` sent, ``<-- {...}`` received),
so stdout keeps only what a script wants (the result of ``call``, the URL ``serve``
listens on).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any, NamedTuple

from rpcbd import __version__
from rpcbd._compiled import build_description
from rpcbd.codecs.base import Dialect, Framing
from rpcbd.codecs.framing import get_framing
from rpcbd.codecs.jsonrpc1 import JSONRPC_V1
from rpcbd.codecs.jsonrpc2 import JSONRPC_V2
from rpcbd.exceptions import FramingError, RpcError, RpcTimeoutError, TransportError
from rpcbd.transports import lookup_transport
from rpcbd.transports.base import ListenerBackend, Transport

__all__ = [
    "EXIT_OK",
    "EXIT_REMOTE_ERROR",
    "EXIT_TRANSPORT_ERROR",
    "EXIT_USAGE",
    "Bridge",
    "build_parser",
    "load_handler",
    "main",
    "parse_value",
]

EXIT_OK = 0
EXIT_REMOTE_ERROR = 1
EXIT_USAGE = 2
EXIT_TRANSPORT_ERROR = 3

log = logging.getLogger("rpcbd.cli")
wire_log = logging.getLogger("rpcbd.wire")

#: How long ``call``/``notify``/``bridge`` try to open a connection before giving up.
CONNECT_TIMEOUT = 10.0


class UsageError(Exception):
    """Bad command-line input found after parsing (exit status 2)."""


# -- helpers ---------------------------------------------------------------------------


def parse_value(text: str) -> Any:
    """A command-line argument as a JSON value; text that is not valid JSON is a string.

    ``3`` is a number, ``'"3"'`` and ``hello`` are strings, ``'[1, 2]'`` is a list,
    ``true``/``null`` are ``True``/``None``.
    """
    try:
        return json.loads(text)
    except ValueError:
        return text


def _parse_kw(items: Sequence[str]) -> dict[str, Any]:
    named: dict[str, Any] = {}
    for item in items:
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise UsageError(f"--kw expects NAME=VALUE, got {item!r}")
        named[key] = parse_value(value)
    return named


def load_handler(spec: str) -> type:
    """Load a handler class from ``module:Class`` or ``path/to/file.py:Class``.

    The current directory is importable, as with ``python -m``.

    Raises:
        UsageError: the spec is malformed, or the module or class cannot be loaded.
    """
    module_name, colon, class_name = spec.rpartition(":")
    if not colon or not module_name or not class_name:
        raise UsageError(f"--handler expects module:Class or file.py:Class, got {spec!r}")
    try:
        if module_name.endswith(".py"):
            name = os.path.splitext(os.path.basename(module_name))[0]
            loader_spec = importlib.util.spec_from_file_location(name, module_name)
            if loader_spec is None or loader_spec.loader is None:
                raise ImportError(f"cannot load {module_name}")
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[name] = module
            loader_spec.loader.exec_module(module)
        else:
            if os.getcwd() not in sys.path and "" not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(module_name)
    except (ImportError, OSError, SyntaxError) as exc:
        raise UsageError(f"cannot import {module_name}: {exc}") from exc
    handler = getattr(module, class_name, None)
    if not isinstance(handler, type):
        raise UsageError(f"{module_name} has no class {class_name}")
    return handler


def _dialect(args: argparse.Namespace) -> Dialect:
    return JSONRPC_V1 if args.v1 else JSONRPC_V2


def _check_framing(name: str | None) -> None:
    """Refuse an unknown framing name before anything is opened."""
    if name is not None:
        try:
            get_framing(name)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc


class _TraceFormatter(logging.Formatter):
    """Wire trace lines as the seed docs print them: ``--> {...}``, optionally prefixed."""

    def __init__(self, prefix: str = "") -> None:
        super().__init__()
        self.prefix = prefix

    def format(self, record: logging.LogRecord) -> str:
        return self.prefix + record.getMessage()


def _setup_logging(args: argparse.Namespace, level: int = logging.WARNING) -> None:
    """Log to stderr; with --trace, also the wire (which must be set up before connecting:
    a connection decides when it opens whether to trace)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    if getattr(args, "trace", False):
        trace = logging.StreamHandler(sys.stderr)
        trace.setFormatter(_TraceFormatter())
        wire_log.addHandler(trace)
        wire_log.setLevel(logging.DEBUG)
        wire_log.propagate = False


def _transport_error(command: str, target: str, exc: BaseException) -> int:
    if isinstance(exc, RpcTimeoutError):
        message = f"timed out: {exc}"
    else:
        message = str(exc) or type(exc).__name__
    print(f"rpcbd {command}: {target}: {message}", file=sys.stderr)
    return EXIT_TRANSPORT_ERROR


# -- commands --------------------------------------------------------------------------


def _cmd_demo(args: argparse.Namespace) -> int:
    from rpcbd.demo import run_demo

    if args.trace:
        _setup_logging(args)
    return run_demo()


class _CallLog(logging.Handler):
    """Turns the wire trace into one log line per incoming call, and per error reply."""

    def __init__(self, trace: bool) -> None:
        super().__init__(logging.DEBUG)
        self.trace = trace

    def emit(self, record: logging.LogRecord) -> None:
        direction, _, payload = record.getMessage().partition(" ")
        if self.trace:
            print(f"{direction} {payload}", file=sys.stderr, flush=True)
        try:
            value = json.loads(payload)
        except ValueError:
            if direction == "<--":
                log.warning("received something that is not JSON: %.200s", payload)
            return
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, dict):
                continue
            if direction == "<--" and isinstance(item.get("method"), str):
                kind = "call" if item.get("id") is not None else "notification"
                params = json.dumps(item.get("params", []), ensure_ascii=False)
                if len(params) > 200:
                    params = params[:197] + "..."
                source = (record.threadName or "").removeprefix("rpcbd-reader ")
                log.info("%s %s %s from %s", kind, item["method"], params, source)
            elif direction == "-->" and isinstance(item.get("error"), dict):
                error = item["error"]
                log.info(
                    "replied error %s: %s (id %s)",
                    error.get("code"),
                    error.get("message"),
                    item.get("id"),
                )


def _connection_logger() -> type:
    from rpcbd.dispatch import Handler

    class ConnectionLog(Handler):
        # No methods: only the hooks, run inline on the reader thread.
        assume_methods_block = False

        def on_connect(self) -> None:
            log.info("connection from %s", self.connection.description)

        def on_disconnect(self) -> None:
            log.info("connection from %s closed", self.connection.description)

    return ConnectionLog


def _cmd_serve(args: argparse.Namespace) -> int:
    from rpcbd.demo import DemoHandler
    from rpcbd.threaded.peer import ThreadedPeer

    handler = load_handler(args.handler) if args.handler else DemoHandler
    _check_framing(args.framing)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    # rpcbd logs connections itself; the websockets package would log each one again.
    logging.getLogger("websockets").setLevel(logging.WARNING)
    # Calls are logged from the wire trace: the runtime traces every message it reads, and
    # this sees them all without wrapping the user's handler.
    wire_log.addHandler(_CallLog(args.trace))
    wire_log.setLevel(logging.DEBUG)
    wire_log.propagate = False
    try:
        peer = ThreadedPeer(_dialect(args), default_handler=handler, framing=args.framing)
    except (TypeError, ValueError) as exc:  # e.g. a handler whose methods need decorators
        raise UsageError(f"cannot serve {handler.__name__}: {exc}") from exc
    try:
        hooks = peer.create_standard_dispatcher(numthreads=1)
        hooks.add_handler_class(_connection_logger())
        peer.default_incoming_connection_group.add_dispatcher(hooks)
        try:
            listener = peer.listen(args.url)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        except OSError as exc:
            return _transport_error("serve", args.url, exc)
        # The first line of stdout is the real URL (useful with port 0).
        print(f"listening on {listener.url}", flush=True)
        log.info(
            "serving %s (JSON-RPC %s) on %s; Ctrl-C stops",
            handler.__name__,
            peer.dialect.version,
            listener.url,
        )
        peer.serve_forever()
    finally:
        peer.shutdown()
    log.info("stopped")
    return EXIT_OK


def _print_callback(*args: Any, **kwargs: Any) -> None:
    values = [json.dumps(a, ensure_ascii=False) for a in args]
    values += [f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in kwargs.items()]
    print(f"callback({', '.join(values)})", file=sys.stderr, flush=True)


def _cmd_call(args: argparse.Namespace) -> int:
    from rpcbd.threaded.peer import ThreadedPeer

    notify = args.command == "notify"
    positional = [parse_value(a) for a in args.args]
    named = _parse_kw(args.kw)
    if positional and named:
        raise UsageError("JSON-RPC params are positional or named, not both: drop ARG or --kw")
    if args.v1 and named:
        raise UsageError("JSON-RPC 1.0 has no named params (--kw); drop --v1 or use ARGs")
    if args.timeout is not None and args.timeout < 0:
        raise UsageError("--timeout must be 0 or more seconds")
    _check_framing(args.framing)
    if getattr(args, "callback", False):
        if named:
            named["callback"] = _print_callback
        else:
            positional.append(_print_callback)
    _setup_logging(args)
    peer = ThreadedPeer(
        _dialect(args),
        framing=args.framing,
        default_timeout=args.timeout,
        connect_timeout=CONNECT_TIMEOUT,
    )
    try:
        try:
            connection = peer.connect(args.url)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        except OSError as exc:
            return _transport_error(args.command, args.url, exc)
        try:
            if notify:
                connection.notification(args.method)(*positional, **named)
                connection.close()  # sends what is queued first
                return EXIT_OK
            result = connection.request(args.method)(*positional, **named)
        except RpcError as exc:
            print(f"error {exc.code}: {exc.message}", file=sys.stderr)
            if exc.data is not None:
                print(f"data: {json.dumps(exc.data, ensure_ascii=False)}", file=sys.stderr)
            return EXIT_REMOTE_ERROR
        except (TransportError, OSError) as exc:
            return _transport_error(args.command, args.url, exc)
        indent = 2 if args.pretty else None
        print(json.dumps(result, ensure_ascii=False, indent=indent))
        return EXIT_OK
    finally:
        peer.shutdown()


# -- bridge ----------------------------------------------------------------------------


class _Side:
    """One end of the bridge: a URL, how to open it, and the framing used on it."""

    def __init__(self, url: str, listen: bool, framing: str | None, extra: dict[str, Any]) -> None:
        from rpcbd.threaded.peer import DEFAULT_OPTIONS

        self.url = url
        self.listen = listen
        self.framing = framing
        self.entry = lookup_transport(url)  # ValueError for an unknown scheme
        if framing is not None:
            get_framing(framing)  # ValueError for an unknown framing, before opening
        unknown = sorted(set(extra) - set(DEFAULT_OPTIONS))
        if unknown:
            raise TypeError(f"unknown option(s) {', '.join(unknown)}")
        self._options = {**DEFAULT_OPTIONS, "connect_timeout": CONNECT_TIMEOUT, **extra}
        self._options["framing"] = framing

    def options(self) -> dict[str, Any]:
        return dict(self._options)

    def connect(self) -> Transport:
        transport: Transport = self.entry.resolve("connect")(self.url, self.options())
        return transport

    def open_listener(self) -> ListenerBackend:
        backend: ListenerBackend = self.entry.resolve("listen")(self.url, self.options())
        return backend

    def framing_for(self, transport: Transport) -> Framing | None:
        if transport.message_based:
            return None  # one message per frame already (WebSocket)
        return get_framing(self.framing or transport.default_framing or "newline")


class _Direction(NamedTuple):
    """One direction of a bridged pair."""

    src: Transport
    src_framing: Framing | None
    dst: Transport
    dst_framing: Framing | None
    arrow: str


class Bridge:
    """Relays whole messages between two transports, each side with its own framing.

    ``Bridge(url_a, url_b, listen_a=False, listen_b=False, framing_a=None,
    framing_b=None, **options)``; ``options`` are transport options given to both sides
    (``max_message_size``, ``ssl_context``, ``static_dir``, ...). :meth:`start`, then
    :meth:`wait` or :meth:`stop`. ``rpcbd bridge`` is this class on the command line.

    Side A either connects to ``url_a`` or, with ``listen_a``, listens there; the same
    for B; at most one side listens. Each connection accepted on the listening side gets
    its own connection on the other side, and the pair lives and dies together. With no
    listening side the bridge relays one pair and :meth:`run` returns when it ends.

    Messages are cut out of each stream with that side's framing and written with the
    other side's, so ``newline`` can face ``content-length``, and a WebSocket (one message
    per frame) can face a TCP stream. The bridge does not parse JSON-RPC: anything both
    ends agree on passes through.
    """

    def __init__(
        self,
        url_a: str,
        url_b: str,
        *,
        listen_a: bool = False,
        listen_b: bool = False,
        framing_a: str | None = None,
        framing_b: str | None = None,
        **options: Any,
    ) -> None:
        if listen_a and listen_b:
            raise ValueError("at most one side of a bridge can listen (--listen-a or --listen-b)")
        self.a = _Side(url_a, listen_a, framing_a, options)
        self.b = _Side(url_b, listen_b, framing_b, options)
        self.max_message_size: int = self.a.options()["max_message_size"]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pairs: set[tuple[Transport, Transport]] = set()
        self._threads: list[threading.Thread] = []
        self._listener: ListenerBackend | None = None

    def start(self) -> str | None:
        """Open the listening side (if any) and return its URL; else connect both sides
        and start relaying. Raises OSError / ValueError when a side cannot be opened."""
        if self.a.listen or self.b.listen:
            side = self.a if self.a.listen else self.b
            self._listener = side.open_listener()
            self._listener.start(self._accepted)
            return self._listener.url
        first = self.a.connect()
        try:
            second = self.b.connect()
        except BaseException:
            first.abort()
            first.close()
            raise
        self._relay(first, second)
        return None

    def _accepted(self, transport: Transport) -> None:
        listening, other = (self.a, self.b) if self.a.listen else (self.b, self.a)
        try:
            peer = other.connect()
        except (OSError, ValueError) as exc:
            log.error("%s: cannot open %s: %s", transport.description, other.url, exc)
            transport.abort()
            transport.close()
            return
        log.info("%s <-> %s", transport.description, peer.description)
        if listening is self.a:
            self._relay(transport, peer)
        else:
            self._relay(peer, transport)

    def _relay(self, ta: Transport, tb: Transport) -> None:
        pair = (ta, tb)
        done = threading.Barrier(2, action=lambda: self._finished(pair))
        with self._lock:
            if self._stop.is_set():
                for t in pair:
                    t.abort()
                    t.close()
                return
            self._pairs.add(pair)
            self._threads = [t for t in self._threads if t.is_alive()]
            for src, side_src, dst, side_dst, arrow in (
                (ta, self.a, tb, self.b, "-->"),
                (tb, self.b, ta, self.a, "<--"),
            ):
                direction = _Direction(
                    src, side_src.framing_for(src), dst, side_dst.framing_for(dst), arrow
                )
                thread = threading.Thread(
                    target=self._pump,
                    args=(direction, done),
                    name=f"rpcbd-bridge {src.description} {arrow} {dst.description}",
                )
                self._threads.append(thread)
                thread.start()

    def _finished(self, pair: tuple[Transport, Transport]) -> None:
        for transport in pair:
            transport.close()
        with self._lock:
            self._pairs.discard(pair)
            if not self._pairs and not self._listener:
                self._stop.set()  # a connect-connect bridge ends with its only pair
        log.info("%s <-> %s closed", pair[0].description, pair[1].description)

    def _pump(self, direction: _Direction, done: threading.Barrier) -> None:
        src, src_framing, dst, dst_framing, arrow = direction
        deframer = src_framing.deframer(self.max_message_size) if src_framing else None
        try:
            while True:
                data = src.read()
                if data is None:
                    break
                if isinstance(data, str):
                    data = data.encode("utf-8")
                frames: list[bytes] = []
                if deframer is None:
                    frames.append(data)
                else:
                    deframer.feed(data)
                    while True:
                        frame = deframer.next_frame()
                        if frame is None:
                            break
                        if isinstance(frame, FramingError):
                            log.warning("%s: %s", src.description, frame)
                            if not frame.recoverable:
                                return
                            continue
                        frames.append(frame)
                if not frames:
                    continue
                if wire_log.isEnabledFor(logging.DEBUG):
                    for frame in frames:
                        wire_log.debug("%s %s", arrow, frame.decode("utf-8", "replace"))
                dst.write([dst_framing.frame(f) for f in frames] if dst_framing else frames)
        except (OSError, TransportError) as exc:
            log.debug("%s %s %s: %s", src.description, arrow, dst.description, exc)
        finally:
            # Either direction ending ends the pair: wake the other pump too.
            src.abort()
            dst.abort()
            with contextlib.suppress(threading.BrokenBarrierError):
                done.wait()

    def wait(self) -> None:
        """Block until :meth:`stop` (or, without a listener, until the pair closes)."""
        # Bounded waits so signal handlers run in the main thread.
        while not self._stop.wait(3600):
            pass

    def serve_forever(self) -> None:
        """:meth:`wait`, then :meth:`stop`. In the main thread, Ctrl-C and SIGTERM end the
        wait (the previous signal handlers are restored)."""
        previous: dict[signal.Signals, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, lambda *_: self._stop.set())
        try:
            self.wait()
        finally:
            self.stop()
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def stop(self) -> None:
        """Close the listener and every pair, and join the relay threads. Idempotent."""
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            pairs = list(self._pairs)
            threads = list(self._threads)
        for pair in pairs:
            for transport in pair:
                transport.abort()
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join()


def _cmd_bridge(args: argparse.Namespace) -> int:
    try:
        bridge = Bridge(
            args.url_a,
            args.url_b,
            listen_a=args.listen_a,
            listen_b=args.listen_b,
            framing_a=args.framing_a,
            framing_b=args.framing_b,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr
    )
    logging.getLogger("websockets").setLevel(logging.WARNING)
    if args.trace:
        trace = logging.StreamHandler(sys.stderr)
        trace.setFormatter(_TraceFormatter())
        wire_log.addHandler(trace)
        wire_log.setLevel(logging.DEBUG)
        wire_log.propagate = False
    try:
        url = bridge.start()
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    except OSError as exc:
        return _transport_error("bridge", f"{args.url_a} / {args.url_b}", exc)
    if url is not None:
        print(f"listening on {url}", flush=True)
        other = bridge.b if bridge.a.listen else bridge.a
        log.info("bridging %s to %s; Ctrl-C stops", url, other.url)
    bridge.serve_forever()
    return EXIT_OK


# -- parser ----------------------------------------------------------------------------


class _VersionAction(argparse.Action):
    """``--version``: the version, the build (pure Python or compiled) and the JSON library.

    Worked out only when asked: telling the build imports every compiled module (the
    asyncio runtime's too), which other commands need not pay for at start-up.
    """

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        kwargs.setdefault("help", "show the version and how rpcbd was built, then exit")
        super().__init__(option_strings, dest=argparse.SUPPRESS, nargs=0, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        sys.stdout.write(f"rpcbd {__version__} ({build_description()})\n")
        parser.exit()


_EPILOG = """\
exit status: 0 ok, 1 the peer replied with an error, 2 usage error,
3 connection or transport error.

URLs: tcp://HOST:PORT (PORT 0 picks a free one), tls://, unix:///path, ws://HOST:PORT/path,
serial:///dev/ttyX?baudrate=N (and pyserial URLs such as loop://), stdio:, exec:CMD ARGS.

Start with:  rpcbd demo
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``rpcbd`` command."""
    trace = argparse.ArgumentParser(add_help=False)
    trace.add_argument(
        "--trace",
        action="store_true",
        help="print the wire trace (--> sent, <-- received) to stderr",
    )
    wire = argparse.ArgumentParser(add_help=False)
    wire.add_argument(
        "--framing",
        metavar="F",
        help="framing of stream transports: newline, content-length, eot, netstring, "
        "length-prefix, json-stream (default: the transport's own)",
    )
    wire.add_argument("--v1", action="store_true", help="speak JSON-RPC 1.0 instead of 2.0")

    parser = argparse.ArgumentParser(
        prog="rpcbd",
        description="Bi-directional JSON-RPC from the command line.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_VersionAction)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        parents=[trace],
        help="a guided tour: server and client over TCP, calls both ways, callbacks, errors",
        description="Start a server and a client over TCP on a free loopback port and show "
        "a call each way, an implicit callback, error replies and the wire trace.",
    )
    demo.set_defaults(run=_cmd_demo)

    serve = commands.add_parser(
        "serve",
        parents=[trace, wire],
        help="serve a handler class on a URL",
        description="Serve a handler class (default: the demo handler with echo, count, "
        "divide, ask and log) and log connections and calls to stderr. The first line "
        "of stdout is the URL listened on. Ctrl-C or SIGTERM stops cleanly.",
        epilog="example: rpcbd serve tcp://127.0.0.1:0 --handler myapp.handlers:Example",
    )
    serve.add_argument("url", metavar="URL", help="where to listen, e.g. tcp://127.0.0.1:9999")
    serve.add_argument(
        "--handler",
        metavar="MODULE:CLASS",
        help="the Handler subclass to serve (module:Class or path/file.py:Class)",
    )
    serve.set_defaults(run=_cmd_serve)

    for name, summary in (
        ("call", "call a method and print its result as JSON"),
        ("notify", "send a notification (no reply)"),
    ):
        sub = commands.add_parser(
            name,
            parents=[trace, wire],
            help=summary,
            description=summary[0].upper() + summary[1:] + ". Each ARG is parsed as JSON; "
            "text that is not valid JSON is sent as a string.",
            epilog=f"example: rpcbd {name} tcp://127.0.0.1:9999 echo '{{\"a\": [1, 2]}}'\n"
            + _EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.add_argument("url", metavar="URL", help="where to connect")
        sub.add_argument("method", metavar="METHOD", help="the method name")
        sub.add_argument("args", metavar="ARG", nargs="*", help="positional params, as JSON")
        sub.add_argument(
            "--kw",
            metavar="NAME=VALUE",
            action="append",
            default=[],
            help="a named param (VALUE as JSON); repeat for more",
        )
        sub.add_argument(
            "--timeout",
            metavar="SECONDS",
            type=float,
            default=None,
            help="give up after this long without hearing from the peer (default: wait)",
        )
        if name == "call":
            sub.add_argument(
                "--callback",
                action="store_true",
                help="pass a callback as the last param (or as callback=, with --kw); "
                "each time the peer calls it, print callback(...) to stderr",
            )
            sub.add_argument("--pretty", action="store_true", help="indent the JSON result")
        sub.set_defaults(run=_cmd_call)

    bridge = commands.add_parser(
        "bridge",
        parents=[trace],
        help="relay messages between two transports, each with its own framing",
        description="Relay every message between URL_A and URL_B. Each side connects, or "
        "listens with --listen-a / --listen-b (at most one); every connection accepted "
        "there gets its own connection to the other side. Messages are re-framed, so "
        "the framings (and kinds of transport) can differ. --trace shows A-to-B messages "
        "as --> and B-to-A as <--.",
        epilog="example: rpcbd bridge ws://127.0.0.1:8765/ tcp://127.0.0.1:9999 --listen-a\n"
        "         rpcbd bridge tcp://127.0.0.1:0 tcp://127.0.0.1:9999 --listen-a "
        "--framing-b content-length",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bridge.add_argument("url_a", metavar="URL_A")
    bridge.add_argument("url_b", metavar="URL_B")
    bridge.add_argument("--listen-a", action="store_true", help="listen on URL_A")
    bridge.add_argument("--listen-b", action="store_true", help="listen on URL_B")
    bridge.add_argument("--framing-a", metavar="F", help="framing on side A")
    bridge.add_argument("--framing-b", metavar="F", help="framing on side B")
    bridge.set_defaults(run=_cmd_bridge)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rpcbd`` command with ``argv`` (default: ``sys.argv[1:]``); return the
    exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        status: int = args.run(args)
    except UsageError as exc:
        print(f"rpcbd {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    return status
