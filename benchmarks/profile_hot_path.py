"""Profile rpcbd's hot path (threaded or asyncio runtime) with cProfile, in every thread of client and server.

``python -m benchmarks.profile_hot_path [--runtime threaded|aio] [--workload W] [--calls N] [--top K]``

The server runs in a forked process; both processes profile each of their threads (cProfile
only sees the thread it was enabled in, so ``threading.Thread.run`` is wrapped) and merge
the results. Costs are printed per call (microseconds of ``tottime`` per echo call), which
is what the findings in RESULTS.md quote. cProfile inflates cheap Python calls, so compare
rows with each other rather than with the unprofiled timings.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import multiprocessing
import os
import pstats
import sys
import threading
import time
from typing import Any

from benchmarks.impls import _bench_handler

__all__ = ["main"]

_PROFILES: list[cProfile.Profile] = []
_BLOCKING = (
    "'recv' of",
    "posix.read",
    "'_accept' of",
    "'get' of '_queue.SimpleQueue'",
    "'acquire' of '_thread.lock'",
    "method 'poll' of",
    "'select' of",
    "'wait' of",
)
_LOCK = threading.Lock()
#: Warm-up calls (small echoes) before profiling the client. The server profiles from its
#: start, so they count in its per-call figures: few for the large payloads, whose real
#: calls would otherwise be averaged with hundreds of cheap ones.
WARMUP = 500


def _warmup(workload: str) -> int:
    return 3 if workload in ("str-1MiB", "ints-100k") else WARMUP


def _profile_all_threads() -> cProfile.Profile:
    """Profile the calling thread, and every thread started from now on."""
    original = threading.Thread.run

    def run(self: threading.Thread) -> None:
        profile = cProfile.Profile()
        with _LOCK:
            _PROFILES.append(profile)
        profile.enable()
        try:
            original(self)
        finally:
            profile.disable()

    threading.Thread.run = run  # type: ignore[method-assign]
    main = cProfile.Profile()
    _PROFILES.append(main)
    main.enable()
    return main


def _report(title: str, calls: int, top: int) -> str:
    for profile in _PROFILES:
        profile.disable()
    stats = pstats.Stats(_PROFILES[0])
    for profile in _PROFILES[1:]:
        try:
            stats.add(profile)
        except TypeError:
            pass  # a thread that never ran anything
    rows = []
    for (filename, line, name), (_cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append(
            (
                tt,
                ct,
                nc,
                f"{os.path.relpath(filename) if filename.startswith('/') else filename}:{line}({name})",
            )
        )
    # Time spent blocked (waiting for the peer, a lock or the next connection) is not CPU
    # cost: listed apart and left out of the totals.
    waits = [r for r in rows if any(w in r[3] for w in _BLOCKING)]
    rows = [r for r in rows if not any(w in r[3] for w in _BLOCKING)]
    rows.sort(reverse=True)
    out = io.StringIO()
    out.write(f"\n== {title}: top {top} by own time, per echo call ({calls} calls) ==\n")
    out.write(f"{'own µs/call':>11} {'cum µs/call':>11} {'calls/call':>10}  function\n")
    for tt, ct, nc, where in rows[:top]:
        out.write(
            f"{tt / calls * 1e6:11.2f} {ct / calls * 1e6:11.2f} {nc / calls:10.2f}  {where}\n"
        )
    out.write(
        "blocking waits (not counted): "
        + ", ".join(
            f"{w[3].split('(', 1)[1].rstrip(')')} {w[0] / calls * 1e6:.0f}"
            for w in sorted(waits, reverse=True)[:5]
        )
        + " µs/call\n"
    )
    rpcbd_rows = [r for r in rows if "rpcbd/" in r[3] and "benchmarks/" not in r[3]]
    total = sum(r[0] for r in rows)
    rpcbd_total = sum(r[0] for r in rpcbd_rows)
    out.write(
        f"total own time {total / calls * 1e6:.1f} µs/call, of which rpcbd code {rpcbd_total / calls * 1e6:.1f} µs/call\n"
    )
    return out.getvalue()


def _server(pipe: Any, calls: int, top: int, cpu: int | None, warmup: int) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    from rpcbd import ThreadedPeer

    _profile_all_threads()
    peer = ThreadedPeer(default_handler=_bench_handler(False), shutdown_on_parent_exit=False)
    listener = peer.listen("tcp://127.0.0.1:0")
    pipe.send(listener.url)
    pipe.recv()
    peer.shutdown(timeout=5)
    # The server profiles from its start: the client's warm-up calls are counted too.
    pipe.send(_report("server", calls + warmup, top))
    os._exit(0)


def _aio_server(pipe: Any, calls: int, top: int, cpu: int | None, warmup: int) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    import asyncio

    from rpcbd.aio import AsyncPeer

    async def serve() -> None:
        peer = AsyncPeer(default_handler=_bench_handler(False))
        listener = await peer.listen("tcp://127.0.0.1:0")
        pipe.send(listener.url)
        await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
        await peer.shutdown()

    _profile_all_threads()
    asyncio.run(serve())
    pipe.send(_report("server", calls + warmup, top))
    os._exit(0)


async def _aio_client(url: str, workload: str, calls: int) -> float:
    import asyncio

    from rpcbd.aio import AsyncPeer

    peer = AsyncPeer()
    connection = await peer.connect(url)
    for _ in range(_warmup(workload)):
        await connection.request.echo("warm-up")
    _profile_all_threads()
    started = time.perf_counter()
    if workload == "seq":
        for _ in range(calls):
            await connection.request.echo("hello, world")
    elif workload == "notify":
        for i in range(calls):
            connection.notification.tick(i)
        assert await connection.request.count() == calls
    elif workload in ("str-1MiB", "ints-100k"):
        payload: Any = "x" * (1024 * 1024) if workload == "str-1MiB" else list(range(100_000))
        for _ in range(calls):
            await connection.request.echo(payload)
    elif workload == "conns":
        # Connection set-up and tear-down: open, one call, close.
        for _ in range(calls):
            other = await peer.connect(url)
            await other.request.echo("hello, world")
            await other.aclose()
    else:
        for _ in range(calls // 128):
            await asyncio.gather(*(connection.request.echo("hello, world") for _ in range(128)))
    wall = time.perf_counter() - started
    await connection.aclose()
    await peer.shutdown()
    return wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_hot_path")
    parser.add_argument(
        "--workload",
        choices=("seq", "inflight-128", "str-1MiB", "ints-100k", "notify", "conns"),
        default="seq",
    )
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--pin", action="store_true")
    parser.add_argument("--runtime", choices=("threaded", "aio"), default="threaded")
    args = parser.parse_args(argv)

    ctx = multiprocessing.get_context("fork")
    parent_end, child_end = ctx.Pipe()
    target = _server if args.runtime == "threaded" else _aio_server
    server = ctx.Process(
        target=target,
        args=(child_end, args.calls, args.top, 0 if args.pin else None, _warmup(args.workload)),
    )
    server.start()
    url = parent_end.recv()
    if args.pin:
        os.sched_setaffinity(0, {1})
    if args.runtime == "aio":
        import asyncio

        wall = asyncio.run(_aio_client(url, args.workload, args.calls))
        client_report = _report("client", args.calls, args.top)
        parent_end.send("stop")
        server_report = parent_end.recv()
        server.join()
        print(
            f"aio {args.workload}: {args.calls} calls in {wall:.2f} s under cProfile ({args.calls / wall:.0f} calls/s)"
        )
        sys.stdout.write(client_report)
        sys.stdout.write(server_report)
        return 0

    from rpcbd import ThreadedPeer

    peer = ThreadedPeer(shutdown_on_parent_exit=False)
    connection = peer.connect(url)
    for _ in range(_warmup(args.workload)):
        connection.request.echo("warm-up")
    _profile_all_threads()
    started = time.perf_counter()
    if args.workload == "seq":
        for _ in range(args.calls):
            connection.request.echo("hello, world")
    elif args.workload in ("str-1MiB", "ints-100k"):
        payload: Any = "x" * (1024 * 1024) if args.workload == "str-1MiB" else list(range(100_000))
        for _ in range(args.calls):
            connection.request.echo(payload)
    elif args.workload == "notify":
        for i in range(args.calls):
            connection.notification.tick(i)
        assert connection.request.count() == args.calls
    elif args.workload == "conns":
        for _ in range(args.calls):
            other = peer.connect(url)
            other.request.echo("hello, world")
            other.close()
    else:
        window: list[Any] = []
        for _ in range(args.calls):
            if len(window) >= 128:
                window.pop(0).result()
            window.append(connection.future.echo("hello, world"))
        for future in window:
            future.result()
    wall = time.perf_counter() - started
    connection.close()
    peer.shutdown(timeout=5)
    client_report = _report("client", args.calls, args.top)
    parent_end.send("stop")
    server_report = parent_end.recv()
    server.join()
    print(
        f"{args.workload}: {args.calls} calls in {wall:.2f} s under cProfile ({args.calls / wall:.0f} calls/s)"
    )
    sys.stdout.write(client_report)
    sys.stdout.write(server_report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
