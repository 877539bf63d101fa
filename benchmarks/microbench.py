"""Unprofiled costs of single hot-path operations (``python -m benchmarks.microbench``).

cProfile (``benchmarks.profile_hot_path``) says *where* time goes; this measures *how
much* each suspect costs without the profiler's overhead, next to the cheaper alternative
proposed in RESULTS.md, so every finding has a number. Each figure is the best of 5 runs.
"""

from __future__ import annotations

import json
import queue
import re
import sys
import threading
import time
import timeit
from collections.abc import Callable
from typing import Any

__all__ = ["main"]


def _best(fn: Callable[[], Any], number: int) -> float:
    """Microseconds per call, best of 5."""
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def _row(label: str, us: float) -> str:
    return f"| {label} | {us:.2f} |"


def _handoff_us(rounds: int = 20000) -> float:
    """One-way wake-up of a thread blocked on a SimpleQueue (round trip / 2)."""
    ping: queue.SimpleQueue[int] = queue.SimpleQueue()
    pong: queue.SimpleQueue[int] = queue.SimpleQueue()

    def echo() -> None:
        while True:
            item = ping.get()
            pong.put(item)
            if item < 0:
                return

    thread = threading.Thread(target=echo)
    thread.start()
    for _ in range(1000):
        ping.put(1)
        pong.get()
    start = time.perf_counter()
    for _ in range(rounds):
        ping.put(1)
        pong.get()
    elapsed = time.perf_counter() - start
    ping.put(-1)
    thread.join()
    return elapsed / rounds / 2 * 1e6


def main() -> int:
    import orjson

    from rpcbd.codecs.serializer import OrjsonSerializer, StdlibSerializer
    from rpcbd.core.endpoint import Endpoint
    from rpcbd.dispatch import Handler, bind_params, method_table
    from rpcbd.proxy import MethodProxy

    rows = ["| operation | µs |", "|---|---|"]

    # -- parameter binding
    class H(Handler):
        def echo(self, x: Any) -> Any:
            return x

    info = method_table(H)["echo"]
    params = ["hello, world"]
    rows.append(
        _row(
            "bind_params(echo, [x]) as rpcbd does it now",
            _best(lambda: bind_params(info, params), 200000),
        )
    )
    rows.append(
        _row(
            "  inspect.Signature.bind(x) alone (every call, before the precomputed shape check)",
            _best(lambda: info.signature.bind(*params), 200000),
        )
    )

    # -- serializers
    small = b'{"jsonrpc":"2.0","id":1,"method":"echo","params":["hello, world"]}'
    big_str = orjson.dumps("x" * (1024 * 1024))
    big_ints = orjson.dumps(list(range(100_000)))
    fast, strict = OrjsonSerializer(), StdlibSerializer()
    for label, data, number in (
        ("request (67 B)", small, 100000),
        ("1 MiB string", big_str, 20),
        ("100k ints", big_ints, 20),
    ):
        rows.append(
            _row(f"OrjsonSerializer.loads {label}", _best(lambda d=data: fast.loads(d), number))
        )
        rows.append(_row(f"  orjson.loads {label}", _best(lambda d=data: orjson.loads(d), number)))
        rows.append(
            _row(
                f"StdlibSerializer.loads {label}",
                _best(lambda d=data: strict.loads(d), max(1, number // 5)),
            )
        )
        rows.append(
            _row(f"  json.loads {label}", _best(lambda d=data: json.loads(d), max(1, number // 5)))
        )
    long_digits = re.compile(rb"[0-9]{19}")
    table = bytes(48 if 48 <= i <= 57 else 32 for i in range(256))
    needle = b"0" * 19
    for label, data, number in (
        ("request", small, 200000),
        ("1 MiB string", big_str, 20),
        ("100k ints", big_ints, 20),
    ):
        rows.append(
            _row(
                f"_LONG_DIGITS regex search, {label}",
                _best(lambda d=data: long_digits.search(d), number),
            )
        )
        rows.append(
            _row(
                f"  proposed: b'0'*19 in data.translate(digits->'0'), {label}",
                _best(lambda d=data: needle in d.translate(table), number),
            )
        )
    message = {"jsonrpc": "2.0", "id": 1, "result": "hello, world"}
    rows.append(_row("OrjsonSerializer.dumps reply", _best(lambda: fast.dumps(message), 200000)))
    rows.append(_row("  orjson.dumps reply", _best(lambda: orjson.dumps(message), 200000)))
    rows.append(_row("StdlibSerializer.dumps reply", _best(lambda: strict.dumps(message), 100000)))

    # -- the sans-IO endpoint, both sides of one call
    client, server = Endpoint(serializer=fast), Endpoint(serializer=fast)

    def client_round() -> None:
        id = client.send_request("echo", ["hello, world"])
        client.data_to_send()
        client.receive_data(b'{"jsonrpc":"2.0","id":%d,"result":"hello, world"}\n' % id)
        client.events_received()

    rows.append(
        _row(
            "Endpoint send_request+data_to_send+receive_data(reply)+events_received (client)",
            _best(client_round, 50000),
        )
    )
    request_line = small + b"\n"

    def server_round() -> None:
        server.receive_data(request_line)
        for event in server.events_received():
            server.send_response(event, event.params[0])  # type: ignore[attr-defined]
        server.data_to_send()

    rows.append(
        _row(
            "Endpoint receive_data+events_received+send_response+data_to_send (server)",
            _best(server_round, 50000),
        )
    )

    def floor_server() -> None:
        m = orjson.loads(small)
        orjson.dumps({"jsonrpc": "2.0", "id": m["id"], "result": m["params"][0]}) + b"\n"

    rows.append(_row("  floor: orjson.loads + orjson.dumps + framing", _best(floor_server, 200000)))

    # -- runtime pieces
    cond = threading.Condition(threading.Lock())

    def notify_no_waiters() -> None:
        with cond:
            cond.notify_all()

    rows.append(
        _row(
            "Condition.notify_all() with no waiter (under its lock)",
            _best(notify_no_waiters, 200000),
        )
    )
    proxy = MethodProxy(lambda method, args, kwargs, options: None)
    rows.append(
        _row(
            "connection.request.echo(x) proxy overhead (MethodProxy getattr+call)",
            _best(lambda: proxy.echo("x"), 200000),
        )
    )
    rows.append(
        _row("thread hand-off: wake a thread blocked on SimpleQueue (one way)", _handoff_us())
    )

    # -- futures (connection.future.* makes one per call)
    from concurrent.futures import Future
    from functools import partial

    def future_plain() -> None:
        f: Future[Any] = Future()
        f.set_result(1)

    def done(_id: int, _f: Future[Any]) -> None:
        pass

    def future_with_callback() -> None:
        f: Future[Any] = Future()
        f.add_done_callback(partial(done, 1))
        f.set_result(1)

    rows.append(_row("concurrent.futures.Future() + set_result", _best(future_plain, 100000)))
    rows.append(
        _row(
            "  + add_done_callback(partial(...)) (cancellation hook per call)",
            _best(future_with_callback, 100000),
        )
    )

    # -- reading: select() before recv() (lets a caller take over reading) vs recv() alone
    import selectors
    import socket

    left, right = socket.socketpair()
    selector = selectors.DefaultSelector()
    selector.register(right, selectors.EVENT_READ)
    line = b'{"jsonrpc":"2.0","id":1,"result":"hello, world"}\n'

    def recv_only() -> None:
        left.send(line)
        right.recv(262144)

    def select_then_recv() -> None:
        left.send(line)
        selector.select(None)
        right.recv(262144)

    rows.append(_row("send + recv of one reply on a socketpair", _best(recv_only, 50000)))
    rows.append(
        _row(
            "send + select + recv (the reader waits for readability first)",
            _best(select_then_recv, 50000),
        )
    )
    selector.close()
    left.close()
    right.close()

    print(f"python {sys.version.split()[0]}; best of 5")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
