"""Workloads, and the client-side drivers that run them (in the client process).

Every driver returns a :class:`Measurement`; the caller wraps the timed part with the
client's CPU clock and the server's ``stats()`` so warm-up and set-up are not counted
(except in ``conns``, where opening and closing connections is the point).
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SIZES", "WORKLOADS", "Measurement", "Workload", "run_async", "run_sync"]

SMALL = "hello, world"


@dataclass
class Workload:
    """One workload: ``n`` calls (or notifications) in full mode, ``quick`` in --quick."""

    name: str
    n: int
    quick: int
    description: str
    small: bool = True  #: small messages (the stdlib-json pylsp target covers these)
    window: int = 1
    payload_kind: str = "small"


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in [
        Workload("seq", 4000, 30, "sequential echo, one call in flight"),
        Workload("inflight-1", 3000, 30, "echo, window of 1 future in flight", window=1),
        Workload("inflight-8", 12000, 64, "echo, window of 8 in flight", window=8),
        Workload("inflight-32", 20000, 128, "echo, window of 32 in flight", window=32),
        Workload(
            "inflight-128",
            30000,
            512,
            "echo, window of 128 in flight on one connection",
            window=128,
        ),
        Workload("shared", 8000, 80, "threads: 8 threads share one connection; asyncio: 128 tasks"),
        Workload(
            "str-1MiB", 20, 2, "1 MiB string echoed, sequential", small=False, payload_kind="str"
        ),
        Workload(
            "ints-100k",
            20,
            2,
            "100,000-integer list echoed, sequential",
            small=False,
            payload_kind="ints",
        ),
        Workload("notify", 50000, 300, "one-way notification flood, then count() must equal n"),
        Workload(
            "conns", 200 * 50, 10 * 5, "200 connections x 50 calls (open, round-robin calls, close)"
        ),
        Workload(
            "idle-10k",
            10_000,
            50,
            "asyncio only: open 10,000 idle connections to one server, then its RSS",
        ),
    ]
}

#: (connections, calls per connection) of the ``conns`` workload.
SIZES = {"full": (200, 50), "quick": (10, 5)}


def payload_for(workload: Workload) -> Any:
    if workload.payload_kind == "str":
        return "x" * (1024 * 1024)
    if workload.payload_kind == "ints":
        return list(range(100_000))
    return SMALL


@dataclass
class Measurement:
    calls: int = 0
    wall: float = 0.0
    latencies: list[int] = field(default_factory=list)  #: nanoseconds
    payload_bytes: int = 0  #: JSON bytes of one payload, for MB/s
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _timed_calls(client: Any, n: int, arg: Any, latencies: list[int], check: bool) -> None:
    clock = time.perf_counter_ns
    call = client.call
    append = latencies.append
    for _ in range(n):
        start = clock()
        result = call("echo", arg)
        append(clock() - start)
        if check and len(result) != len(arg):
            raise AssertionError("echo returned something else")


# -- synchronous clients (threads) -----------------------------------------------------------


def run_sync(
    workload: Workload, n: int, control: Any, open_client: Any, conns: tuple[int, int]
) -> Measurement:
    """Run ``workload`` with ``control`` (already connected and warmed up)."""
    m = Measurement(calls=n)
    arg = payload_for(workload)
    start = time.perf_counter()
    if workload.name.startswith("inflight"):
        if getattr(control, "pipelined", None) is not None:
            control.pipelined(workload.window, n, arg, m.latencies)
        else:
            _sliding_window(control, workload.window, n, arg, m.latencies)
    elif workload.name == "shared":
        _shared_threads(control, 8, n, arg, m.latencies)
    elif workload.name == "notify":
        for i in range(n):
            control.notify("tick", i)
        seen = control.call("count")
        if seen != n:
            m.error = f"server counted {seen} notifications, {n} were sent"
    elif workload.name == "conns":
        count, per = conns
        clients = [open_client() for _ in range(count)]
        for _ in range(per):
            for client in clients:
                _timed_calls(client, 1, arg, m.latencies, False)
        for client in clients:
            client.close()
        m.calls = count * per
    else:
        _timed_calls(control, n, arg, m.latencies, workload.payload_kind != "small")
    m.wall = time.perf_counter() - start
    return m


def _sliding_window(client: Any, window: int, n: int, arg: Any, latencies: list[int]) -> None:
    clock = time.perf_counter_ns
    submit = client.submit
    in_flight: collections.deque[tuple[int, Any]] = collections.deque()
    for _ in range(n):
        if len(in_flight) >= window:
            started, future = in_flight.popleft()
            future.result()
            latencies.append(clock() - started)
        in_flight.append((clock(), submit("echo", arg)))
    while in_flight:
        started, future = in_flight.popleft()
        future.result()
        latencies.append(clock() - started)


def _shared_threads(client: Any, threads: int, n: int, arg: Any, latencies: list[int]) -> None:
    per = n // threads
    barrier = threading.Barrier(threads)
    results: list[list[int]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []

    def work(mine: list[int]) -> None:
        try:
            barrier.wait()
            _timed_calls(client, per, arg, mine, False)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(r,)) for r in results]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors:
        raise errors[0]
    for r in results:
        latencies.extend(r)


# -- asyncio clients ------------------------------------------------------------------------------


async def _timed_acalls(client: Any, n: int, arg: Any, latencies: list[int], check: bool) -> None:
    clock = time.perf_counter_ns
    for _ in range(n):
        start = clock()
        result = await client.call("echo", arg)
        latencies.append(clock() - start)
        if check and len(result) != len(arg):
            raise AssertionError("echo returned something else")


async def run_async(
    workload: Workload, n: int, control: Any, open_client: Any, conns: tuple[int, int]
) -> Measurement:
    m = Measurement(calls=n)
    arg = payload_for(workload)
    start = time.perf_counter()
    if workload.name.startswith("inflight"):
        # Rounds of ``window`` calls gathered at once.
        window = workload.window
        done = 0
        while done < n:
            k = min(window, n - done)
            await asyncio.gather(
                *(_timed_acalls(control, 1, arg, m.latencies, False) for _ in range(k))
            )
            done += k
    elif workload.name == "shared":
        tasks = min(128, n)
        await asyncio.gather(
            *(_timed_acalls(control, n // tasks, arg, m.latencies, False) for _ in range(tasks))
        )
        m.calls = (n // tasks) * tasks
    elif workload.name == "notify":
        for i in range(n):
            await control.notify("tick", i)
        seen = await control.call("count")
        if seen != n:
            m.error = f"server counted {seen} notifications, {n} were sent"
    elif workload.name == "conns":
        count, per = conns
        clients = [await open_client() for _ in range(count)]
        for _ in range(per):
            for client in clients:
                await _timed_acalls(client, 1, arg, m.latencies, False)
        for client in clients:
            await client.close()
        m.calls = count * per
    elif workload.name == "idle-10k":
        clients = [await open_client() for _ in range(n)]
        # The server's memory with every connection open (and idle).
        m.extra["stats_open"] = await control.call("stats")
        for client in clients:
            await client.close()
    else:
        await _timed_acalls(control, n, arg, m.latencies, workload.payload_kind != "small")
    m.wall = time.perf_counter() - start
    return m
