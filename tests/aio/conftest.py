"""Helpers of the asyncio tests: pytest-asyncio is not used; each test runs its own loop."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import warnings
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

Runner = Callable[..., Any]


def _open_fds() -> set[int]:
    return set(map(int, os.listdir("/proc/self/fd"))) if os.path.isdir("/proc/self/fd") else set()


def run_async(
    main: Callable[[], Awaitable[Any]],
    *,
    timeout: float = 20.0,
    check_leaks: bool = True,
    check_fds: bool = True,
    debug: bool = True,
) -> Any:
    """Run ``main()`` in a fresh loop in debug mode (unless ``debug=False``) with
    warnings as errors.

    With ``check_leaks``, fail if a task, a thread or a file descriptor made during the
    run outlives it (the test must have shut its peers down).
    """
    threads_before = set(threading.enumerate())
    fds_before = _open_fds()
    leftover: list[asyncio.Task[Any]] = []

    async def wrapper() -> Any:
        try:
            return await asyncio.wait_for(main(), timeout)
        finally:
            current = asyncio.current_task()
            leftover.extend(t for t in asyncio.all_tasks() if t is not current and not t.done())

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = asyncio.run(wrapper(), debug=debug)
    if check_leaks:
        assert not leftover, f"tasks outlived the test: {leftover}"
        threads = {t for t in threading.enumerate() if t.is_alive()} - threads_before
        # A thread may still be returning after it signalled the loop (asyncio's own
        # "waitpid" threads do that): give each a bounded moment to end.
        for thread in threads:
            thread.join(2.0)
        threads = {t for t in threads if t.is_alive()}
        assert not threads, f"threads outlived the test: {sorted(t.name for t in threads)}"
        fds = {fd for fd in _open_fds() - fds_before if os.path.exists(f"/proc/self/fd/{fd}")}
        if not check_fds:
            # Collect the leaked sockets here, quietly, rather than in a later test.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResourceWarning)
                gc.collect()
        assert not check_fds or not fds, f"file descriptors outlived the test: {sorted(fds)}"
    return result


@pytest.fixture
def arun() -> Iterator[Runner]:
    """``arun(coroutine_function, timeout=...)`` runs it with leak checks."""
    yield run_async


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``predicate`` on the loop until true (a deadline, not a sleep)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.002)


class Pair:
    """A client and a server peer joined by one connection (pipe or tcp)."""

    def __init__(self, client: Any, server: Any, conn: Any, server_conn: Any) -> None:
        self.client = client
        self.server = server
        self.conn = conn
        self.server_conn = server_conn

    async def aclose(self) -> None:
        await self.client.shutdown()
        await self.server.shutdown()


async def make_pair(
    kind: str,
    server_handler: type | None = None,
    client_handler: type | None = None,
    **options: Any,
) -> Pair:
    from rpcbd.aio import AsyncPeer

    server_options = options.pop("server_options", {})
    client = AsyncPeer(default_handler=client_handler, **options)
    server = AsyncPeer(default_handler=server_handler, **{**options, **server_options})
    if kind == "pipe":
        conn, server_conn = client.pipe_pair(server)
    else:
        listener = await server.listen("tcp://127.0.0.1:0")
        conn = await client.connect(listener.url)
        await wait_until(lambda: bool(listener.connections))
        server_conn = listener.connections[0]
    return Pair(client, server, conn, server_conn)
