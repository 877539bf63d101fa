"""A small worker pool and a deadline timer for the threaded runtime.

Both start their threads lazily, name them, and join them on shutdown, so nothing
outlives ``peer.shutdown()``. Waiting is done on condition variables with exact deadlines:
no polling intervals.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable

__all__ = ["Timer", "WorkerPool", "blocking_section"]

log = logging.getLogger("rpcbd")


# Which pool the current thread works for (unset outside worker threads).
class _WorkerOf(threading.local):
    # A class default, so threads outside any pool read None without a failed lookup
    # (getattr(local, "pool", None) builds and discards an AttributeError every time).
    pool: WorkerPool | None = None


_worker_of = _WorkerOf()


class blocking_section:  # lower case: used like a function, `with blocking_section():`
    """Mark the calling worker thread as blocked on work that may need its own pool.

    A handler that calls back into its caller waits for a reply whose handling (on the
    other side, or on this side for a connection that talks to itself, or for nested
    calls) may need a worker of this very pool. If every worker blocks like that, nothing
    runs the jobs they wait for: a deadlock. While a worker is in this section the pool
    may start one more thread for queued jobs (like Java's ManagedBlocker). Outside a
    worker thread this does nothing.

    A class rather than a ``@contextmanager`` generator: every blocking call enters it,
    and a generator-based context manager costs several times more.
    """

    __slots__ = ("_pool",)

    def __enter__(self) -> None:
        pool = _worker_of.pool
        self._pool = pool
        if pool is not None:
            pool._blocking(+1)

    def __exit__(self, *exc_info: object) -> None:
        if self._pool is not None:
            self._pool._blocking(-1)


class WorkerPool:
    """Runs jobs on up to ``size`` named threads; at most ``max_queue`` jobs wait."""

    def __init__(self, size: int = 8, max_queue: int = 1000, name: str = "rpcbd-worker") -> None:
        if size < 1:
            raise ValueError("a worker pool needs at least one thread")
        self.size = size
        self.max_queue = max_queue
        self.name = name
        self._cond = threading.Condition(threading.Lock())
        self._jobs: deque[Callable[[], None]] = deque()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._blocked = 0  # workers inside blocking_section()
        self._stopping = False

    def submit(self, job: Callable[[], None]) -> bool:
        """Queue ``job``; False if the queue is full or the pool is stopping."""
        with self._cond:
            if self._stopping or len(self._jobs) >= self.max_queue:
                return False
            self._jobs.append(job)
            # A notified worker counts as idle until it wakes, so compare with the queue
            # length: if the queue outgrows the idle workers, another thread is needed.
            if len(self._jobs) <= self._idle:
                self._cond.notify()
            elif len(self._threads) - self._blocked < self.size:
                self._start_thread()
            return True

    def _start_thread(self) -> None:
        # Called holding _cond.
        thread = threading.Thread(target=self._work, name=f"{self.name}-{len(self._threads) + 1}")
        self._threads.append(thread)
        thread.start()

    def _blocking(self, delta: int) -> None:
        with self._cond:
            self._blocked += delta
            # Jobs queued and no thread free to take them: the blocked worker's
            # place goes to a new thread (threads stay until shutdown).
            if (
                delta > 0
                and len(self._jobs) > self._idle
                and not self._stopping
                and len(self._threads) - self._blocked < self.size
            ):
                self._start_thread()

    def _work(self) -> None:
        _worker_of.pool = self
        while True:
            with self._cond:
                while not self._jobs and not self._stopping:
                    self._idle += 1
                    self._cond.wait()
                    self._idle -= 1
                if not self._jobs:
                    return
                job = self._jobs.popleft()
            try:
                job()
            except BaseException:  # a job must not kill the worker
                log.exception("unexpected error in worker job")

    def shutdown(self, deadline: float | None = None) -> None:
        """Run the queued jobs, stop the threads, and join them until ``deadline``
        (a ``time.monotonic()`` value; None waits for them)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            threads = list(self._threads)
        current = threading.current_thread()
        for thread in threads:
            if thread is current:
                continue
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(remaining)


class Timer:
    """Calls functions at deadlines, on one lazily started thread."""

    def __init__(self, name: str = "rpcbd-timer") -> None:
        self._name = name
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._live: set[int] = set()
        self._counter = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def call_at(self, deadline: float, function: Callable[[], None]) -> int:
        """Call ``function`` at ``deadline`` (``time.monotonic()``); returns a handle."""
        with self._cond:
            handle = next(self._counter)
            heapq.heappush(self._heap, (deadline, handle, function))
            self._live.add(handle)
            if self._thread is None and not self._stopping:
                self._thread = threading.Thread(target=self._run, name=self._name)
                self._thread.start()
            if self._heap[0][1] == handle:
                self._cond.notify()
            return handle

    def cancel(self, handle: int) -> None:
        """Forget a pending call (no effect if it ran already)."""
        with self._cond:
            self._live.discard(handle)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping:
                    if not self._heap:
                        self._cond.wait()
                        continue
                    delay = self._heap[0][0] - time.monotonic()
                    if delay <= 0:
                        break
                    self._cond.wait(delay)
                if self._stopping:
                    return
                _, handle, function = heapq.heappop(self._heap)
                if handle not in self._live:
                    continue  # cancelled
                self._live.discard(handle)
            try:
                function()
            except BaseException:
                log.exception("unexpected error in timer callback")

    def shutdown(self) -> None:
        """Stop the thread (pending calls are dropped) and join it."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
