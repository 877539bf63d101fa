"""Instructions per call, counted by valgrind: a CPU cost that does not move with machine load.

``python -m benchmarks.instructions [--calls N] [--json-lib orjson|stdlib]``

Wall-clock and CPU-time figures on a shared 2-vCPU machine swing by 2x between runs (and
CPU time itself grows when the other core is busy: shared caches). ``valgrind --tool=callgrind``
counts the instructions a process executes, which is the same whatever else the machine
does. Each side of a connection is measured alone: the measured process runs under
valgrind, its peer runs normally.

For each (side, workload) the process runs twice, with ``N`` and ``2N`` calls; the
difference divided by ``N`` is the cost per call, free of start-up and import costs.
Every figure comes with its floor from the same run — the same work on raw sockets with
the same JSON library and no rpcbd — and the ratio between them.

Workloads: ``seq`` (a blocking echo call, one in flight) and ``notify`` (a notification;
one request at the end makes sure all arrived). The rpcbd side is the threaded runtime
over TCP with an inline (``@willnotblock``) handler, as in ``benchmarks.run``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import textwrap

from rpcbd._compiled import compiled_modules

__all__ = ["main"]

# A server prints its URL, serves until its stdin closes, then exits: the same servers as
# benchmarks.run's (an inline handler; raw sockets answering each read in one write).
_RPCBD_SERVER = """
import sys
from benchmarks.impls import rpcbd_threaded_server

rpcbd_threaded_server("tcp", False, lambda url: print(url, flush=True), sys.stdin.read)
"""

_FLOOR_SERVER = """
import sys
from benchmarks.impls import floor_threads_server

floor_threads_server(lambda url: print(url, flush=True), sys.stdin.read, sys.argv[1], True)
"""

# A client connects to argv[1], makes argv[3] calls of workload argv[2], then exits.
_RPCBD_CLIENT = """
import sys
from rpcbd import ThreadedPeer

url, workload, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
peer = ThreadedPeer()
connection = peer.connect(url)
echo = connection.request.echo
for _ in range(200):
    echo("warm-up")
if workload == "seq":
    for _ in range(calls):
        echo("hello")
else:
    tick = connection.notification.echo
    for _ in range(calls):
        tick("hello")
    echo("last")
peer.shutdown()
"""

_FLOOR_CLIENT = """
import socket, sys
from benchmarks.impls import FloorClient

url, workload, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
client = FloorClient(url, sys.argv[4])
for _ in range(200):
    client.call("echo", "warm-up")
if workload == "seq":
    for _ in range(calls):
        client.call("echo", "hello")
else:
    for _ in range(calls):
        client.notify("echo", "hello")
    client.call("echo", "last")
client.close()
"""

_COLLECTED = re.compile(r"Collected : (\d+)")


def _valgrind(argv: list[str]) -> list[str]:
    return ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv]


def _instructions(stderr: str) -> int:
    match = _COLLECTED.search(stderr)
    if match is None:
        raise RuntimeError(f"valgrind printed no instruction count:\n{stderr[-2000:]}")
    return int(match.group(1))


def _build() -> str:
    """Which rpcbd the measured processes import: pure Python or the compiled build."""
    compiled = len(compiled_modules())
    return f"rpcbd compiled with mypyc ({compiled} modules)" if compiled else "rpcbd pure Python"


def _measure(side: str, server: str, client: str, workload: str, calls: int, lib: str) -> int:
    """Instructions executed by the ``side`` process ("client" or "server") for ``calls``
    calls, start-up included."""
    # The checkout (for `benchmarks`) after any PYTHONPATH given: a compiled build placed
    # first (docs/performance.md) stays first.
    path = [part for part in (os.environ.get("PYTHONPATH"), os.getcwd()) if part]
    env = {**os.environ, "RPCBD_JSON": lib, "PYTHONPATH": os.pathsep.join(path)}
    server_argv = [sys.executable, "-c", server, lib]
    if side == "server":
        server_argv = _valgrind(server_argv)
    process = subprocess.Popen(
        server_argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None and process.stdin is not None
        url = process.stdout.readline().strip()
        client_argv = [sys.executable, "-c", client, url, workload, str(calls), lib]
        if side == "client":
            client_argv = _valgrind(client_argv)
        done = subprocess.run(
            client_argv, check=False, capture_output=True, text=True, env=env, timeout=600
        )
        if done.returncode != 0:
            raise RuntimeError(f"client failed:\n{done.stderr[-2000:]}")
        _, server_err = process.communicate(timeout=600)  # closes stdin: the server exits
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return _instructions(done.stderr if side == "client" else server_err)


def per_call(side: str, server: str, client: str, workload: str, calls: int, lib: str) -> float:
    """Instructions per call: the ``2N``-call run minus the ``N``-call run, over ``N``."""
    once = _measure(side, server, client, workload, calls, lib)
    twice = _measure(side, server, client, workload, 2 * calls, lib)
    return (twice - once) / calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="N (default 2000)")
    parser.add_argument("--json-lib", choices=("orjson", "stdlib"), default="orjson")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    print(f"instructions per call, N={args.calls}, JSON library {args.json_lib}, {_build()}")
    print()
    print("| workload | side | rpcbd-threaded-tcp | floor-threads | ratio |")
    print("|---|---|---|---|---|")
    for workload in ("seq", "notify"):
        for side in ("client", "server"):
            # The measured side is rpcbd or the floor; its peer is always the floor's, so
            # both figures count the same work on the other end.
            rpcbd = per_call(
                side,
                _RPCBD_SERVER if side == "server" else _FLOOR_SERVER,
                _RPCBD_CLIENT if side == "client" else _FLOOR_CLIENT,
                workload,
                args.calls,
                args.json_lib,
            )
            floor = per_call(
                side, _FLOOR_SERVER, _FLOOR_CLIENT, workload, args.calls, args.json_lib
            )
            print(
                f"| {workload} | {side} | {rpcbd:,.0f} | {floor:,.0f} | {rpcbd / floor:.1f}x |",
                flush=True,
            )
    print()
    print(
        textwrap.fill("Each figure: instructions of that process for 2N calls minus for N, over N.")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
