"""2,000 concurrent connections to one asyncio server on loopback, each making calls."""

from __future__ import annotations

import asyncio
import resource
import time
from typing import Any

import pytest

from rpcbd import Handler
from rpcbd.aio import AsyncPeer

CONNECTIONS = 2000
#: Each connection uses two descriptors in this process (client and server end).
NEEDED_FDS = 2 * CONNECTIONS + 200


class Counter(Handler):
    async def add(self, a: int, b: int) -> int:
        await asyncio.sleep(0)  # let the other connections' calls interleave
        return a + b


@pytest.fixture
def enough_descriptors() -> Any:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < NEEDED_FDS:
        if hard != resource.RLIM_INFINITY and hard < NEEDED_FDS:
            pytest.skip(f"needs {NEEDED_FDS} file descriptors, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (NEEDED_FDS, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_two_thousand_concurrent_connections(arun: Any, enough_descriptors: Any) -> None:
    timings: dict[str, float] = {}

    async def main() -> None:
        server = AsyncPeer(default_handler=Counter)
        client = AsyncPeer(default_handler=Counter)
        try:
            listener = await server.listen("tcp://127.0.0.1:0")
            start = time.perf_counter()
            conns = []
            # Connect in waves so the listen backlog is never the bottleneck.
            for wave in range(0, CONNECTIONS, 250):
                conns += await asyncio.gather(
                    *(client.connect(listener.url) for _ in range(min(250, CONNECTIONS - wave)))
                )
            timings["connect"] = time.perf_counter() - start
            while len(listener.connections) < CONNECTIONS:
                await asyncio.sleep(0.01)
            start = time.perf_counter()
            # Every connection has its call in flight at the same time.
            results = await asyncio.gather(*(c.request.add(i, 1) for i, c in enumerate(conns)))
            timings["calls"] = time.perf_counter() - start
            assert results == [i + 1 for i in range(CONNECTIONS)]
            # And the other way: the server calls every client at once.
            served = listener.connections
            assert len(served) == CONNECTIONS
            start = time.perf_counter()
            back = await asyncio.gather(*(c.request.add(i, 2) for i, c in enumerate(served)))
            timings["calls back"] = time.perf_counter() - start
            assert back == [i + 2 for i in range(CONNECTIONS)]
            start = time.perf_counter()
        finally:
            await client.shutdown()
            await server.shutdown()
        timings["shutdown"] = time.perf_counter() - start

    # asyncio's debug mode records a traceback for every handle and future: ten times
    # slower at this size. Every other test runs in debug mode; this one checks scale
    # (leaks and warnings are still checked).
    arun(main, timeout=60, debug=False)
    print(f"\n2,000 connections: {timings}")
    assert timings["calls"] < 10 and timings["calls back"] < 10
