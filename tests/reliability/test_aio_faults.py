"""The same fault and load promises for the asyncio runtime (rpcbd.aio).

- A peer process SIGKILLed mid-call, both directions, over tcp, unix, ws and exec: every
  pending ``await`` fails with TransportError within 2 s.
- 2,000 concurrent raw connections to an AsyncPeer server, each making a call; afterwards
  the server's tasks and descriptors are back to baseline and it keeps serving.

Skipped (with the reason) when rpcbd.aio cannot be imported.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest

from rpcbd import Handler, TransportError, mayblock, willnotblock

from .helpers import (
    CHILD,
    STREAM_SCHEMES,
    descriptors_for,
    listen_url,
    open_fds,
    python,
    require_scheme,
)

aio = pytest.importorskip("rpcbd.aio", reason="the asyncio runtime (rpcbd.aio) is not built yet")
AsyncPeer = aio.AsyncPeer

KILL_BOUND = 2.0
CONNECTIONS = 2000


def _require_async(scheme: str) -> None:
    require_scheme(scheme)
    from rpcbd.transports import lookup_transport

    if lookup_transport(f"{scheme}:x").aconnect is None:
        pytest.skip(f"transport {scheme!r} has no asyncio connector yet")


@pytest.fixture
def short_dir() -> Iterator[str]:
    directory = tempfile.mkdtemp(prefix="rpcbd-aio-", dir="/tmp")
    try:
        yield directory
    finally:
        for name in os.listdir(directory):
            os.unlink(os.path.join(directory, name))
        os.rmdir(directory)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
            process.wait(10)
            if process.stdout is not None:
                process.stdout.close()


def _start(processes: list[subprocess.Popen[bytes]], *args: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [python(), CHILD, *args], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    processes.append(process)
    return process


class Parent(Handler):
    """Our side: counts the child's notifications; calls back into the child."""

    assume_methods_block = False
    started_count = 0
    callback_pids: list[int] = []
    outcomes: list[tuple[BaseException | None, float]] = []

    @willnotblock
    def started(self) -> None:
        Parent.started_count += 1

    @willnotblock
    def callback_started(self, pid: int) -> None:
        Parent.callback_pids.append(pid)

    async def ask_back(self) -> None:
        try:
            await self.connection.request.client_block()
        except BaseException as exc:
            Parent.outcomes.append((exc, time.monotonic()))
            raise
        Parent.outcomes.append((None, time.monotonic()))


def _reset() -> None:
    Parent.started_count = 0
    Parent.callback_pids = []
    Parent.outcomes = []


async def _until(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return bool(predicate())
        await asyncio.sleep(0.005)
    return True


def _run(main: Any, timeout: float = 30.0) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(main(), timeout)

    return asyncio.run(bounded())


@pytest.mark.parametrize("scheme", STREAM_SCHEMES)
def test_server_killed_while_async_client_awaits(
    scheme: str, processes: list[subprocess.Popen[bytes]], short_dir: str
) -> None:
    _require_async(scheme)
    _reset()
    if scheme != "exec":
        process = _start(processes, "serve", listen_url(scheme, short_dir))
        assert process.stdout is not None
        url = process.stdout.readline().decode().strip()
    else:
        url = "exec:" + shlex.join([python(), CHILD, "serve", "stdio:"])

    async def main() -> float:
        peer = AsyncPeer(default_handler=Parent)
        try:
            connection = await peer.connect(url)
            pid = await connection.request.pid()
            calls = [asyncio.ensure_future(connection.request.block()) for _ in range(4)]
            assert await _until(lambda: Parent.started_count == 4, 10)
            killed_at = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            done, pending = await asyncio.wait(calls, timeout=KILL_BOUND)
            elapsed = time.monotonic() - killed_at
            assert not pending, "an await still waits after the peer died"
            for call in done:
                assert isinstance(call.exception(), TransportError), call.exception()
            return elapsed
        finally:
            await peer.shutdown()

    elapsed = _run(main)
    print(f"\n[measure] aio {scheme}: pending calls failed {elapsed * 1000:.1f} ms after SIGKILL")
    assert elapsed < KILL_BOUND


@pytest.mark.parametrize("scheme", STREAM_SCHEMES)
def test_client_killed_while_async_server_calls_back(
    scheme: str, processes: list[subprocess.Popen[bytes]], short_dir: str
) -> None:
    _require_async(scheme)
    _reset()

    async def main() -> float:
        peer = AsyncPeer(default_handler=Parent)
        try:
            if scheme == "exec":
                await peer.connect("exec:" + shlex.join([python(), CHILD, "call", "stdio:"]))
            else:
                listener = await peer.listen(listen_url(scheme, short_dir))
                _start(processes, "call", listener.url)
            assert await _until(lambda: bool(Parent.callback_pids), 10)
            killed_at = time.monotonic()
            os.kill(Parent.callback_pids[0], signal.SIGKILL)
            assert await _until(lambda: bool(Parent.outcomes), KILL_BOUND + 1)
            error, at = Parent.outcomes[0]
            # The call fails with TransportError and, the connection being gone, the
            # handler's own task is cancelled in the same step (rpcbd.aio cancels the
            # tasks serving a closed connection): the await ends with either.
            assert isinstance(error, (TransportError, asyncio.CancelledError)), error
            return at - killed_at
        finally:
            await peer.shutdown()

    elapsed = _run(main)
    print(
        f"\n[measure] aio {scheme}: callback into killed client failed after {elapsed * 1000:.1f} ms"
    )
    assert elapsed < KILL_BOUND


class Echo(Handler):
    async def echo(self, value: Any) -> Any:
        return value

    @mayblock
    def blocking_echo(self, value: Any) -> Any:
        return value


@pytest.fixture
def nofile() -> Iterator[None]:
    with descriptors_for(CONNECTIONS):
        yield


def test_two_thousand_raw_connections_then_back_to_baseline(nofile: None) -> None:
    """Complements tests/aio/test_scale.py (rpcbd clients): here the clients are bare
    sockets, and what is checked is that nothing is left behind once they go."""

    async def main() -> dict[str, float]:
        peer = AsyncPeer(default_handler=Echo)
        timings: dict[str, float] = {}
        try:
            listener = await peer.listen("tcp://127.0.0.1:0")
            tasks_before = len(asyncio.all_tasks())
            fds_before = open_fds()
            started = time.monotonic()
            streams = []
            for wave in range(0, CONNECTIONS, 100):  # under the listen backlog
                streams += await asyncio.gather(
                    *(
                        asyncio.open_connection("127.0.0.1", listener.port)
                        for _ in range(min(100, CONNECTIONS - wave))
                    )
                )
            assert await _until(lambda: len(listener.connections) == CONNECTIONS, 30)
            timings["all open"] = time.monotonic() - started
            for i, (_, writer) in enumerate(streams):
                method = "echo" if i % 2 else "blocking_echo"
                request = {"jsonrpc": "2.0", "method": method, "params": [i], "id": i}
                writer.write(json.dumps(request).encode() + b"\n")

            async def answer(i: int, reader: asyncio.StreamReader) -> None:
                line = await reader.readline()
                assert json.loads(line) == {"jsonrpc": "2.0", "result": i, "id": i}, line

            await asyncio.gather(*(answer(i, r) for i, (r, _) in enumerate(streams)))
            timings["all answered"] = time.monotonic() - started
            for _, writer in streams:
                writer.close()
            await asyncio.gather(*(w.wait_closed() for _, w in streams), return_exceptions=True)
            assert await _until(lambda: not listener.connections, 10), len(listener.connections)
            assert await _until(lambda: len(asyncio.all_tasks()) <= tasks_before, 10), (
                len(asyncio.all_tasks()),
                tasks_before,
            )
            assert await _until(lambda: open_fds() <= fds_before, 10), (open_fds(), fds_before)
            # Still serving.
            reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
            writer.write(b'{"jsonrpc":"2.0","method":"echo","params":["after"],"id":1}\n')
            assert json.loads(await reader.readline())["result"] == "after"
            writer.close()
            await writer.wait_closed()
        finally:
            started = time.monotonic()
            await peer.shutdown()
            timings["shutdown"] = time.monotonic() - started
        return timings

    timings = _run(main, timeout=60)
    print(
        f"\n[measure] aio {CONNECTIONS} raw connections: "
        + ", ".join(f"{k} {v:.2f} s" for k, v in timings.items())
    )
    assert timings["all answered"] < 30
