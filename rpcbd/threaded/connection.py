"""A connection of the threaded runtime: one Endpoint, one lock, one reader thread.

Every thread follows the same steps (STYLE.md practice 8): under ``_lock`` it feeds or
queues, collects the endpoint's events and takes its output; then, with no lock held, it
writes and dispatches.

Writing: whoever holds ``_write_lock`` writes until the endpoint's buffer is empty and
releases the lock *while holding* ``_lock``, so a message queued by another thread is
either seen by that writer or finds the write lock free. The reader thread never blocks
on the write lock (it would stop reading while the peer waits for us to read: a
deadlock); a caller thread waits for room when too much output is buffered.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import select
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from concurrent.futures import _base as futures_base
from functools import partial
from typing import TYPE_CHECKING, Any

from rpcbd._compiled import mypyc_attr
from rpcbd.calls import (
    CLOSE_FLUSH_TIMEOUT,
    EVENT_BATCH,
    HIGH_WATER,
    BatchBuilder,
    ConnectionBase,
    feed_read,
    holds_callable,
    wire_log,
)
from rpcbd.calls import USE_DEFAULT as _USE_DEFAULT
from rpcbd.calls import CallbackJob as _CallbackJob
from rpcbd.calls import fresh_error as _fresh
from rpcbd.context import CallContext, LazyCallContext, _reset_current, _set_current
from rpcbd.core.endpoint import Endpoint
from rpcbd.core.events import (
    CancelRequested,
    ConnectionClosed,
    ErrorReceived,
    Event,
    InvalidMessageReceived,
    NotificationReceived,
    RequestReceived,
    ResponseReceived,
)
from rpcbd.core.state import State
from rpcbd.dispatch import (
    CALLBACK_PREFIX,
    Handler,
    MethodInfo,
    bind_params,
    plain_positional_args,
)
from rpcbd.exceptions import (
    ConnectionClosedError,
    LocalProtocolError,
    RpcCancelledError,
    RpcError,
    RpcInternalError,
    RpcMethodNotFoundError,
    RpcServerBusyError,
    RpcTimeoutError,
    TransportError,
)
from rpcbd.proxy import MethodProxy, make_params
from rpcbd.threaded.callbacks import RemoteCallback
from rpcbd.threaded.pool import WorkerPool, blocking_section
from rpcbd.typing import Params, RequestId

if TYPE_CHECKING:
    from rpcbd.threaded.peer import ConnectionGroup, Dispatcher, ThreadedPeer
    from rpcbd.transports.base import Transport

__all__ = ["AsyncProxy", "BatchedCallsProxy", "Connection", "RemoteCallback"]

log = logging.getLogger("rpcbd")


_FINISHED = futures_base.FINISHED
_DONE_STATES = (futures_base.CANCELLED, futures_base.CANCELLED_AND_NOTIFIED, _FINISHED)


def _nonblocking_socketpair() -> tuple[socket.socket, socket.socket]:
    pair = socket.socketpair()
    for end in pair:
        end.setblocking(False)
    return pair


class _CallFuture(Future[Any]):
    """The future of ``connection.future.x(...)``: cancelling it gives the call up, and
    waiting for it reads the reply in the waiting thread.

    (Overriding ``cancel`` instead of adding a done-callback per call saves a ``partial``
    and a pass through the future's condition on every call.)
    """

    def __init__(self) -> None:
        super().__init__()
        # The connection that sent the call, and the call's id: cancelling gives it up.
        self.caller: Connection | None = None
        self.call_id: RequestId = None
        # Set before cancelling, so the caller that sets `caller` afterwards can tell
        # without going through the future's condition (see call_future).
        self.cancel_requested = False
        # The connection whose reply completes this future, when a thread waiting in
        # result() or exception() may read that reply itself (see _await_future).
        self.connection: Connection | None = None
        # When the call's timeout timer fires (time.monotonic()), if it has one.
        self.expires_at: float | None = None

    def cancel(self) -> bool:
        self.cancel_requested = True
        cancelled = super().cancel()
        if cancelled:
            if self.caller is not None:
                self.caller._give_up(self.call_id)  # $/cancelRequest; a late reply is dropped
            if self.connection is not None:
                self.connection._wake_future_reader(self)
        return cancelled

    # The future's state is read without its condition where only a finished or
    # cancelled state matters: set_result() and friends store the state last, under the
    # condition, and a finished future never changes again (one attribute read is atomic).

    def done(self) -> bool:
        return self._state in _DONE_STATES

    def result(self, timeout: float | None = None) -> Any:
        state = self._state
        if state == _FINISHED and self._exception is None:
            return self._result  # the common case: no lock
        connection = self.connection
        if connection is not None and state not in _DONE_STATES:
            return connection._await_future(self, timeout, Future.result)
        return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        connection = self.connection
        if connection is not None and self._state not in _DONE_STATES:
            return connection._await_future(self, timeout, Future.exception)  # type: ignore[no-any-return]
        return super().exception(timeout)


class _Readiness:
    """What the reader thread waits on while no caller reads: the descriptor becoming
    readable.

    With epoll, a caller that takes read duty *mutes* the descriptor, so the reader
    thread is not woken by the reply that caller is about to read itself: that saves two
    context switches per call. Elsewhere a plain selector is used and the reader thread
    simply wakes up, finds duty taken and goes back to waiting.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._epoll = select.epoll() if hasattr(select, "epoll") else None
        self._selector: selectors.BaseSelector | None = None
        if self._epoll is not None:
            self._epoll.register(fd, select.EPOLLIN)
        else:
            self._selector = selectors.DefaultSelector()
            self._selector.register(fd, selectors.EVENT_READ)

    def wait(self) -> bool:
        """Block until the descriptor is readable (or fails). Returns whether a muted
        descriptor can have woken us only by input (True) or also by a hang-up or an
        error, which epoll reports even while muted (False; always False without epoll,
        where nothing is muted)."""
        if self._epoll is not None:
            ready = self._epoll.poll()
            return all(not mask & (select.EPOLLHUP | select.EPOLLERR) for _, mask in ready)
        assert self._selector is not None
        self._selector.select()
        return False

    def _modify(self, events: int) -> None:
        if self._epoll is not None:
            try:  # twice per call: try/except costs less than contextlib.suppress
                self._epoll.modify(self._fd, events)
            except (OSError, ValueError):
                pass  # the descriptor (or the epoll set) is closed already: nothing to watch

    def mute(self) -> None:
        """Stop waking the reader thread for input (epoll only; elsewhere a no-op)."""
        self._modify(0)

    def unmute(self) -> None:
        """Watch for input again. Level-triggered: input that arrived while muted and is
        still unread wakes the reader thread at once."""
        if self._epoll is not None:  # (select.EPOLLIN only exists where epoll does)
            self._modify(select.EPOLLIN)

    def close(self) -> None:
        if self._epoll is not None:
            self._epoll.close()
        if self._selector is not None:
            self._selector.close()


class _Waiter:
    """One call in flight: a blocking caller's queue, or a future.

    A future call with implicit callbacks runs them on the worker pool, one at a time in
    arrival order, and completes the future after them (``run_serially``), so the
    ordering matches a blocking call's.
    """

    __slots__ = (
        "callbacks",
        "draining",
        "future",
        "jobs",
        "lock",
        "method",
        "queue",
        "timeout",
        "timer",
    )

    def __init__(self, method: str, future: Future[Any] | None = None) -> None:
        self.method = method
        self.future = future
        self.queue: queue.SimpleQueue[Any] | None = None if future else queue.SimpleQueue()
        # Names of this call's implicit callbacks; the empty tuple until the first is
        # exported (see ConnectionBase._export_one): one object fewer per call in flight.
        self.callbacks: list[str] | tuple[()] = ()
        self.timer: int | None = None
        self.timeout: float | None = None
        self.jobs: deque[Callable[[], None]] | None = None
        self.lock: threading.Lock | None = None
        self.draining = False

    def run_serially(self, pool: WorkerPool, job: Callable[[], None]) -> None:
        if self.lock is None:
            self.lock = threading.Lock()
            self.jobs = deque()
        assert self.jobs is not None
        with self.lock:
            self.jobs.append(job)
            if self.draining:
                return
            self.draining = True
        if not pool.submit(self._drain):
            self._drain()

    def _drain(self) -> None:
        assert self.lock is not None and self.jobs is not None
        while True:
            with self.lock:
                if not self.jobs:
                    self.draining = False
                    return
                job = self.jobs.popleft()
            job()

    def deliver(self, ok: bool, value: Any) -> None:
        if self.queue is not None:
            self.queue.put((ok, value))
            return
        assert self.future is not None
        try:  # (not contextlib.suppress: this runs once per reply)
            if ok:
                self.future.set_result(value)
            else:
                self.future.set_exception(value)
        except InvalidStateError:
            pass  # the user cancelled the future


# Compiled (mypyc), still a regular Python class: connections stay weak-referenceable and
# take attributes users set on them, and the interpreted ConnectionBase can be its base.
@mypyc_attr(native_class=False)
class Connection(ConnectionBase):
    """A connection to the peer; either side can call the other.

    Attributes:
        request: ``connection.request.echo(x)`` blocks for the result;
            ``connection.request("a/b", timeout=5)(x)`` for other names and options.
        notification: ``connection.notification.log(x)`` sends and returns at once
            (alias ``notify``).
        future: ``connection.future.echo(x)`` returns a ``concurrent.futures.Future``.
        description: who the peer is, e.g. ``tcp://127.0.0.1:50312``.
        connection_group: the group whose dispatchers serve calls from the peer.
        default_timeout: seconds a call waits in silence; None waits forever.
    """

    def __init__(
        self,
        peer: ThreadedPeer,
        transport: Transport,
        group: ConnectionGroup,
        *,
        options: dict[str, Any],
        default_timeout: float | None,
    ) -> None:
        self._peer: ThreadedPeer = peer
        self._transport = transport
        self.connection_group = group
        self.description = transport.description
        self.default_timeout = default_timeout
        framing = (
            None
            if transport.message_based
            else (options.get("framing") or transport.default_framing)
        )
        self._endpoint = Endpoint(
            group.dialect,
            framing,
            max_message_size=options["max_message_size"],
            max_batch_size=options["max_batch_size"],
            max_pending_requests=options["max_pending_requests"],
            max_calls_in_flight=options["max_calls_in_flight"],
            max_nesting_depth=options["max_nesting_depth"],
            serializer=options["serializer"],
            trace=self._trace if wire_log.isEnabledFor(logging.DEBUG) else None,
        )
        self._message_based = transport.message_based
        self._partial_timeout: float | None = (
            None if transport.message_based else options["partial_message_timeout"]
        )
        self._partial_timer: int | None = None
        self._room_waiters = 0
        # Unsent output beyond this means the peer stopped reading (see _check_output_cap).
        self._output_cap = HIGH_WATER + 2 * options["max_message_size"]
        self._sleepers = 0
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._write_lock = threading.Lock()
        self._waiters: dict[RequestId, _Waiter] = {}
        self._callbacks: dict[str, tuple[_Waiter, Callable[..., Any]]] = {}
        self._serving: dict[int, CallContext] = {}
        self._handlers: dict[type, Handler] = {}
        self._handlers_lock = threading.Lock()
        self._paused = False
        self._frames_held = False
        self._has_called = False  # set by the first blocking call made on it (_read_loop)
        self._closed_event = threading.Event()
        self._finished = False
        self._reader: threading.Thread | None = None
        # The thread that reads from the transport and dispatches, one at a time: the
        # reader thread, or a blocking caller reading its own reply.
        self._duty: threading.Thread | None = None
        fd = transport.fileno()
        self._caller_reads = fd is not None
        # Where the reader thread waits for input while no caller reads; a caller taking
        # read duty mutes it (see _Readiness), and the one releasing duty unmutes it.
        self._readiness = None if fd is None else _Readiness(fd)
        self._muted = False
        # Callers waiting for a reply that another thread reads for them. While any
        # wait, a caller does not take read duty: with several callers the reader
        # thread serving all of them costs fewer thread switches than duty passing
        # from caller to caller (see _may_take_duty).
        self._queued_callers = 0
        # A thread reading on behalf of a future (in its result()), and the socket pair
        # that wakes it when that future is cancelled meanwhile; made on first use.
        self._future_reader: _CallFuture | None = None
        self._wakeup: tuple[socket.socket, socket.socket] | None = None
        self.request = MethodProxy(self._invoke_request)
        self.notification = MethodProxy(self._invoke_notification)
        self.notify = self.notification
        self.future = MethodProxy(self._invoke_future)

    # -- life cycle --------------------------------------------------------------------

    def _start(self) -> None:
        self._reader = threading.Thread(
            target=self._run_reader, name=f"rpcbd-reader {self.description}"
        )
        self._reader.start()

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Block until the connection has closed and its reader stopped; False on timeout."""
        return self._closed_event.wait(timeout)

    def close(self) -> None:
        """Close the connection: fail every call in flight at once, send what is queued,
        and return once the reader thread has stopped (unless called from it)."""
        with self._lock:
            events: list[Event] = []
            if self._endpoint.state is State.OPEN:
                self._endpoint.close()
                events = self._endpoint.events_received()
            self._wake()
        self._dispatch(events)
        # Send what was queued before the close (a last notification, say), unless a
        # write is in progress: that writer may be stuck on a peer that stopped reading,
        # and close() must not wait on it. Our own final write is bounded by a timer.
        if self._write_lock.acquire(blocking=False):
            timer = self._peer._timer
            guard = timer.call_at(time.monotonic() + CLOSE_FLUSH_TIMEOUT, self._transport.abort)
            try:
                self._write_pending()
            finally:
                timer.cancel(guard)
        self._transport.abort()
        reader = self._reader
        if reader is not None and reader is not threading.current_thread():
            reader.join()
        elif reader is None:
            self._finish()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Connection {self.description} {state}>"

    # -- reading -----------------------------------------------------------------------

    def _run_reader(self) -> None:
        try:
            self._call_hooks("on_connect")
            self._read_loop()
        except BaseException:
            log.exception("reader of %s failed", self.description)
        finally:
            self._finish()

    def _read_loop(self) -> None:
        """The reader thread: read whenever no caller holds read duty.

        On transports that can wait for readability (plain sockets), the thread waits
        *without* holding read duty, so a blocking caller can take duty and read its own
        reply (no thread hand-off on the latency path); the thread takes duty only when
        data is ready and nobody else is reading. Other transports, and connections that
        never made a blocking call, block in ``read()`` holding duty, and callers get
        their replies from this thread.
        """
        endpoint = self._endpoint
        lock = self._lock
        current = threading.current_thread()
        readiness = self._readiness
        while True:
            # (No `continue` inside the `with`: mypyc cannot compile one in a try/finally.)
            paused = False
            with lock:
                while self._duty is not None and endpoint.state is State.OPEN:
                    self._wait()  # a caller is reading; it will release duty
                if endpoint.state is not State.OPEN:
                    return
                # Frames left in the buffer by an earlier pause come before new bytes.
                events = self._events_held()
                if not events and not endpoint.wants_data():
                    # Back pressure: too many unanswered requests and no call of ours
                    # in flight. Replies (or a call of ours) wake us.
                    self._paused = True
                    self._wait()
                    self._paused = False
                    paused = True
                # On a connection that has never called the peer (a server's, mostly) no
                # caller wants to read its own reply: block in read() holding duty, with
                # no readiness wait first. The first call made on it gets its reply from
                # this thread; from then on the thread waits for readiness instead.
                blocking_read = readiness is None or not self._has_called
                if not paused and (events or blocking_read):
                    self._duty = current
            if paused:
                continue
            if events:
                self._flush()
                self._dispatch_holding_duty(events)
                continue
            if blocking_read:
                self._read_and_ingest(nowait=False)
            else:
                assert readiness is not None
                if self._take_duty_when_ready(readiness):
                    self._read_and_ingest(nowait=True)

    def _take_duty_when_ready(self, readiness: _Readiness) -> bool:
        """Reader thread: wait for input, then take read duty.

        False if a caller holds duty (the input was its reply, read by it) and muted the
        descriptor: then wait on it again, which wakes us only once that caller unmutes
        with input left over (not on every release of duty), and return so that the top
        of the read loop checks back pressure before reading.
        """
        muted_wait = readiness.wait()
        with self._lock:
            if self._duty is None:
                self._duty = threading.current_thread()
                return True
        # A hang-up or error is reported even while muted (and without epoll nothing is
        # muted): then the loop's top waits for duty on the condition instead.
        while muted_wait:
            muted_wait = readiness.wait()
            with self._lock:
                done = self._duty is None or self._endpoint.state is not State.OPEN
            if done:
                break
        return False

    def _ingest(self, data: bytes | str | None) -> list[Event]:
        """Feed what was read (None: the end of the stream) and take the first batch of
        events.

        This and :meth:`_next_batch` hold the lock in frames of their own, which return
        before the dispatch: compiled (mypyc), a ``with`` block makes the C frame of the
        function that holds it larger, and the read path's frames stay on the stack of
        every reader thread while it dispatches (one more 4 KiB stack page per thread,
        measured with 200 connections)."""
        with self._lock:
            feed_read(self._endpoint, data, self._message_based)
            return self._events_received()

    def _next_batch(self) -> list[Event]:
        """The events of the frames held after a full batch (or at the bound)."""
        with self._lock:
            return self._events_received()

    def _events_received(self) -> list[Event]:
        """Called holding ``_lock``: the endpoint's next events, at most about EVENT_BATCH
        of them (see Endpoint.events_received), noting whether it stopped short of the
        frames it holds: after a full batch, or at the bound of the peer's unanswered
        requests. Wakes callers waiting for room if replies among them made some."""
        endpoint = self._endpoint
        events = endpoint.events_received(EVENT_BATCH)
        # The endpoint only leaves frames unparsed after a full batch or while it does not
        # want data, so this is true whenever frames are held (and sometimes when none are).
        self._frames_held = len(events) >= EVENT_BATCH or not endpoint.wants_data()
        if self._room_waiters and endpoint.can_send_request:
            self._wake()
        return events

    def _events_held(self) -> list[Event]:
        """Called holding ``_lock``: events of frames held since a pause, if any."""
        return self._events_received() if self._frames_held else []

    def _wait(self) -> None:
        """Wait on the connection's condition; called holding ``_lock``."""
        self._sleepers += 1
        try:
            self._cond.wait()
        finally:
            self._sleepers -= 1

    def _wake(self) -> None:
        """Wake every thread in :meth:`_wait` (state changed); called holding ``_lock``.
        Free when nobody waits, which is the common case on the hot path."""
        if self._sleepers:
            self._cond.notify_all()

    def _may_take_duty(self) -> bool:
        """Called holding ``_lock`` by a caller about to wait for its reply: whether it
        should read the reply itself.

        Only when nobody holds duty and no other caller waits for a reply. A lone caller
        reading its own reply saves the hand-off from the reader thread; but when several
        wait, the one reading would release duty at its own reply and the next would
        take it, muting and unmuting the reader thread each time, while the others are
        woken all the same: there the reader thread serves everyone with fewer switches.
        """
        return (
            self._duty is None and not self._queued_callers and self._endpoint.state is State.OPEN
        )

    def _take_duty(self) -> None:
        """Called holding ``_lock`` by a caller about to read its own reply."""
        self._duty = threading.current_thread()
        if self._readiness is not None:
            self._readiness.mute()  # the reply must not wake the reader thread too
            self._muted = True

    def _release_duty(self) -> None:
        with self._lock:
            if self._muted:
                self._muted = False
                assert self._readiness is not None
                self._readiness.unmute()  # no caller reads: the reader thread watches
            self._duty = None
            self._wake()

    def _dispatch_holding_duty(self, events: list[Event]) -> None:
        try:
            self._dispatch(events)
            self._flush()
        finally:
            self._release_duty()

    def _read_and_ingest(self, *, nowait: bool, release: bool = True) -> None:
        """Read one chunk and process it; called holding read duty, which it releases
        (unless ``release`` is false: a caller reading a reply in several chunks)."""
        endpoint = self._endpoint
        try:
            try:
                data = self._transport.read_nowait() if nowait else self._transport.read()
            except BlockingIOError:
                return  # someone else consumed what woke us
            except OSError as exc:
                log.debug("read from %s failed: %s", self.description, exc)
                data = None
            events = self._ingest(data)
            # (The conditions in front save a call each in the common case: nothing to
            # write, nothing half received.)
            if endpoint.bytes_to_send:
                self._flush()
            while events:
                self._dispatch(events)
                if endpoint.bytes_to_send:
                    self._flush()  # the replies of inline handlers, one write per batch
                if not self._frames_held:
                    break
                # The frames after a full batch (or held at the bound, if the dispatch
                # answered some): no read may come to ask for them.
                events = self._next_batch()
            # After the dispatch, when every whole frame has been taken: what the endpoint
            # still holds is a frame half received (or frames held back at the bound).
            if self._partial_timeout is not None and (
                self._partial_timer is not None or endpoint.partial_message_pending
            ):
                self._watch_partial_message()
        finally:
            if release:
                self._release_duty()

    def _watch_partial_message(self) -> None:
        """Bound the time one frame may stay half-received (slow loris)."""
        partial = self._endpoint.partial_message_pending and not self._paused
        if partial and self._partial_timer is None:
            assert self._partial_timeout is not None
            self._partial_timer = self._peer._timer.call_at(
                time.monotonic() + self._partial_timeout, self._partial_message_expired
            )
        elif not partial and self._partial_timer is not None:
            self._peer._timer.cancel(self._partial_timer)
            self._partial_timer = None

    def _partial_message_expired(self) -> None:
        log.warning(
            "closing %s: a message has been arriving for over %s s (partial_message_timeout)",
            self.description,
            self._partial_timeout,
        )
        self._transport.abort()

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        if self._partial_timer is not None:
            self._peer._timer.cancel(self._partial_timer)
        with self._lock:
            self._endpoint.close()
            events = self._endpoint.events_received()
        self._dispatch(events)
        if self._write_lock.acquire(blocking=False):
            self._write_pending()  # e.g. the error reply before closing on bad framing
        for context in list(self._serving.values()):
            context.cancel()  # nobody waits for these results any more
        self._transport.abort()
        self._transport.close()
        with self._lock:
            wakeup, self._wakeup = self._wakeup, None
        if wakeup is not None:
            # A thread still in _read_until_done finds the sockets closed (fileno -1)
            # and stops there; the transport's end of stream already woke it.
            for end in wakeup:
                end.close()
        if self._readiness is not None:
            self._readiness.close()
        self._peer._connection_closed(self)
        self._closed_event.set()
        self._call_hooks("on_disconnect")

    # -- writing -----------------------------------------------------------------------

    def _flush(self) -> None:
        """Write what the endpoint has queued, unless another thread is writing (it will)."""
        if not self._endpoint.bytes_to_send:
            # Read without the lock: output queued by another thread is flushed by that
            # thread (or by the writer it finds), never left to us.
            return
        if self._write_lock.acquire(blocking=False):
            self._write_pending()
        else:
            self._check_output_cap()

    def _check_output_cap(self) -> None:
        """Close the connection if unsent output passes its hard cap.

        Callers wait for room above HIGH_WATER, but the thread on read duty never waits
        (it must keep reading), so replies it queues while the peer reads nothing could
        grow without bound: past the cap the peer is treated as dead.
        """
        if self._endpoint.bytes_to_send > self._output_cap:
            log.error(
                "closing %s: %d bytes unsent, the peer is not reading",
                self.description,
                self._endpoint.bytes_to_send,
            )
            self._transport.abort()

    def _take_output(self) -> list[bytes] | None:
        """Called holding ``_lock``: claim the writer role together with the queued
        output, saving the writer a second trip through the lock. None if another thread
        is writing (it will send this output too) or nothing is queued."""
        if not self._write_lock.acquire(blocking=False):
            return None
        chunks = self._endpoint.data_to_send()
        if not chunks:
            self._write_lock.release()
            return None
        return chunks

    def _write_taken(self, chunks: list[bytes] | None) -> None:
        """Write output claimed by :meth:`_take_output`, then whatever queued meanwhile."""
        if chunks is None:
            return
        try:
            self._transport.write(chunks)
        except BaseException as exc:
            self._write_lock.release()
            if not isinstance(exc, (OSError, TransportError)):
                raise
            log.debug("write to %s failed: %s", self.description, exc)
            self._transport.abort()
            return
        self._write_pending()

    def _write_pending(self) -> None:
        # Called holding _write_lock; releases it.
        endpoint = self._endpoint
        try:
            while True:
                with self._lock:
                    chunks = endpoint.data_to_send()
                    if not chunks:
                        self._write_lock.release()
                        self._wake()  # wake callers waiting for room
                        return
                self._transport.write(chunks)
        except BaseException as exc:
            self._write_lock.release()
            if not isinstance(exc, (OSError, TransportError)):
                raise
            log.debug("write to %s failed: %s", self.description, exc)
            self._transport.abort()  # the reader sees end of stream and cleans up

    def _wait_for_room(self) -> None:
        """Caller threads (not the reader) wait while too much output is unsent."""
        if self._endpoint.bytes_to_send > HIGH_WATER and threading.current_thread() not in (
            self._reader,
            self._duty,
        ):
            with self._lock:
                while self._endpoint.bytes_to_send > HIGH_WATER and not self.closed:
                    if not self._write_lock.locked():
                        break  # nobody writing: our own _flush will
                    self._wait()

    # -- calling the peer --------------------------------------------------------------

    def _send_request(self, method: str, params: Params, waiter: _Waiter) -> RequestId:
        with self._lock:
            endpoint = self._endpoint
            if endpoint.state is not State.OPEN:
                raise ConnectionClosedError(f"connection to {self.description} is closed")
            if endpoint.calls_in_flight >= endpoint._max_calls_in_flight:
                self._wait_for_call_room(1)
            if params is not None and holds_callable(params):
                params = self._export_callbacks(params, waiter)
            try:
                id = endpoint.send_request(method, params)
            except BaseException:
                self._drop_callbacks(waiter)
                raise
            self._waiters[id] = waiter
            if self._paused:
                self._wake()  # a call of ours in flight: the reader must read
            output = self._take_output()
        self._write_taken(output)
        if self._endpoint.bytes_to_send > HIGH_WATER:
            self._wait_for_room()
        return id

    def _wait_for_call_room(self, calls: int) -> None:
        """Called holding _lock: wait while ``calls`` more would exceed max_calls_in_flight.

        The reader thread cannot wait (it delivers the replies that make room), so there
        the endpoint's LocalProtocolError comes through instead.
        """
        endpoint = self._endpoint
        limit = endpoint._max_calls_in_flight
        if endpoint.calls_in_flight + calls <= limit or threading.current_thread() in (
            self._reader,
            self._duty,
        ):
            return
        if calls > limit:
            raise LocalProtocolError(f"{calls} calls exceed max_calls_in_flight ({limit})")
        self._room_waiters += 1
        try:
            while True:
                # State first: closing empties the calls in flight, which is no room.
                if endpoint.state is not State.OPEN:
                    raise ConnectionClosedError(f"connection to {self.description} is closed")
                if endpoint.calls_in_flight + calls <= limit:
                    break
                self._wait()
        finally:
            self._room_waiters -= 1

    def _give_up(self, id: RequestId) -> bool:
        """Stop waiting for call ``id`` and ask the peer to cancel it; False if its reply
        is already on its way to the waiter."""
        with self._lock:
            gave_up = self._endpoint.cancel_call(id)
            if self._room_waiters:
                self._wake()
            if gave_up:
                waiter = self._waiters.pop(id, None)
                if waiter is not None:
                    self._drop_callbacks(waiter)
        if gave_up:
            self._flush()
        return gave_up

    def call(self, method: str, *args: Any, timeout: Any = _USE_DEFAULT, **kwargs: Any) -> Any:
        """Call ``method`` and block for its result.

        Implicit callbacks (callables among the arguments) run in this thread while it
        waits, in the order the peer calls them. The timeout bounds silence: it restarts
        whenever a callback for this call arrives.

        Raises:
            RpcError: the peer replied with an error (its code, message and data kept).
            RpcTimeoutError: no reply within ``timeout`` (``$/cancelRequest`` was sent).
            ConnectionClosedError: the connection closed before the reply.
            LocalProtocolError: called from this connection's reader thread, where a
                blocking call would deadlock.
            ValueError: both positional and keyword arguments.
        """
        return self._call(method, args, kwargs, timeout)

    def _call(
        self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], timeout: Any
    ) -> Any:
        current = threading.current_thread()
        if current is self._reader or current is self._duty:
            raise LocalProtocolError(
                f"blocking call to {method!r} from the reader thread of {self.description} "
                "would deadlock (the reply could never be read): make the handler @mayblock, "
                "or use connection.future / connection.notification here"
            )
        wait = self._resolve_timeout(timeout)
        waiter = _Waiter(method)
        self._has_called = True  # the reader thread leaves the reading to callers now
        id = self._send_request(method, make_params(args, kwargs), waiter)
        deadline = None if wait is None else time.monotonic() + wait
        try:
            with blocking_section():  # a handler calling back must not starve its pool
                return self._wait_for_reply(method, id, waiter, wait, deadline)
        finally:
            if waiter.callbacks:
                with self._lock:
                    self._drop_callbacks(waiter)

    def _wait_for_reply(
        self,
        method: str,
        id: RequestId,
        waiter: _Waiter,
        wait: float | None,
        deadline: float | None,
    ) -> Any:
        """Wait for call ``id``'s outcome, running its callbacks in this thread."""
        assert waiter.queue is not None
        get = waiter.queue.get
        while True:
            try:
                if self._caller_reads:
                    item = self._read_own_reply(waiter.queue, deadline)
                else:
                    item = get(timeout=wait) if wait is not None else get()
            except queue.Empty:
                if self._give_up(id):
                    raise RpcTimeoutError(
                        f"no reply to {method!r} from {self.description} within {wait} s"
                    ) from None
                wait = deadline = None  # the reply is being delivered right now
                continue
            if type(item) is _CallbackJob:
                self._run_callback(item)
                if wait is not None:
                    deadline = time.monotonic() + wait  # the timeout bounds silence
                continue
            ok, value = item
            if ok:
                return value
            raise value

    def _read_own_reply(self, replies: queue.SimpleQueue[Any], deadline: float | None) -> Any:
        """Wait for the next item of ``replies``, reading from the transport meanwhile
        whenever no other thread holds read duty. Raises ``queue.Empty`` at ``deadline``."""
        while True:
            try:
                return replies.get_nowait()
            except queue.Empty:
                pass
            with self._lock:
                took = self._may_take_duty()
                if took:
                    self._take_duty()
                else:
                    self._queued_callers += 1
            remaining = None if deadline is None else deadline - time.monotonic()
            if not took:
                # Someone else reads; they hand our reply over.
                try:
                    if remaining is None:
                        return replies.get()
                    return replies.get(timeout=max(0.0, remaining))
                finally:
                    with self._lock:
                        self._queued_callers -= 1
            if not self._read_holding_duty(replies, deadline):
                return replies.get_nowait()  # at the deadline: queue.Empty if nothing came

    def _read_holding_duty(self, replies: queue.SimpleQueue[Any], deadline: float | None) -> bool:
        """Read until ``replies`` has an item or the connection closes (True), or until
        ``deadline`` passes (False); then release read duty. Keeping duty between chunks
        (a large reply comes in several) saves waking the reader thread for each."""
        endpoint = self._endpoint
        fd = None if deadline is None else self._transport.fileno()
        try:
            # Checked before the first read too: the last holder of duty may have
            # delivered our reply after the caller last looked, and reading then would
            # wait for bytes that never come.
            while replies.empty() and endpoint.state is State.OPEN:
                if deadline is None:
                    self._read_and_ingest(nowait=False, release=False)
                    continue
                remaining = deadline - time.monotonic()
                if fd is None or remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                    return False
                self._read_and_ingest(nowait=True, release=False)
        finally:
            self._release_duty()
        return True

    def _await_future(
        self,
        future: _CallFuture,
        timeout: float | None,
        outcome: Callable[[Future[Any], float | None], Any],
    ) -> Any:
        """``future.result(timeout)`` (``outcome`` is ``Future.result``, or
        ``Future.exception``) of a call of ours that is not done.

        If this thread may read (see _may_take_duty), it reads from the transport until
        the future is done, so the reply needs no hand-off from the reader thread (as for
        a blocking call). Either way ``outcome`` then waits for what is left: it returns
        at once when the future is done, and otherwise waits for the thread that does
        the reading (the reader thread, or another caller).
        """
        current = threading.current_thread()
        if current is self._reader or current is self._duty:
            # Already reading (a handler on the reader thread): wait as before.
            return outcome(future, timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        self._has_called = True  # the reader thread leaves the reading to callers now
        wakeup = None
        with self._lock:
            if self._may_take_duty():
                self._take_duty()
                if self._wakeup is None:
                    self._wakeup = _nonblocking_socketpair()
                wakeup = self._wakeup
                self._future_reader = future
            else:
                self._queued_callers += 1
        if wakeup is None:
            try:
                return outcome(future, timeout)
            finally:
                with self._lock:
                    self._queued_callers -= 1
        try:
            self._read_until_done(future, deadline, wakeup)
        finally:
            self._future_reader = None
            self._release_duty()
        return outcome(future, None if deadline is None else max(0.0, deadline - time.monotonic()))

    def _read_until_done(
        self,
        future: _CallFuture,
        deadline: float | None,
        wakeup: tuple[socket.socket, socket.socket],
    ) -> None:
        """Holding read duty: read until ``future`` is done, the connection closes,
        ``deadline`` passes, or the call's own timer is due (it completes the future
        with RpcTimeoutError from the timer thread). A byte on ``wakeup`` (a cancel)
        makes it look at the future again."""
        endpoint = self._endpoint
        transport_fd = self._transport.fileno()
        if transport_fd is None:
            return  # (a transport of the user's that no longer has one: wait as before)
        while not future.done() and endpoint.state is State.OPEN:
            limit = deadline
            expires_at = future.expires_at
            if expires_at is not None and (limit is None or expires_at < limit):
                limit = expires_at
            remaining = None if limit is None else limit - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            # (fileno() is -1 once _finish closed the wake-up sockets: select refuses it.)
            wakeup_fd = wakeup[0].fileno()
            try:
                ready = select.select([transport_fd, wakeup_fd], [], [], remaining)[0]
            except (OSError, ValueError):
                return  # the connection is finished
            if not ready:
                return
            if wakeup_fd in ready:
                with contextlib.suppress(OSError):
                    wakeup[0].recv(64)  # a cancel() woke us: the loop looks at the future
            if transport_fd in ready:
                self._read_and_ingest(nowait=True, release=False)

    def _wake_future_reader(self, future: _CallFuture) -> None:
        """``future`` was cancelled: a thread reading for it stops (see _read_until_done)."""
        wakeup = self._wakeup
        if self._future_reader is future and wakeup is not None:
            with contextlib.suppress(OSError):
                wakeup[1].send(b"\0")

    def _invoke_request(
        self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]
    ) -> Any:
        return self._call(method, args, kwargs, options.get("timeout", _USE_DEFAULT))

    def _invoke_notification(
        self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]
    ) -> None:
        self.send_notification(method, make_params(args, kwargs))

    def send_notification(self, method: str, params: Params = None) -> None:
        """Send a notification (no reply). Raises ConnectionClosedError if closed."""
        endpoint = self._endpoint
        with self._lock:
            if endpoint.state is not State.OPEN:
                raise ConnectionClosedError(f"connection to {self.description} is closed")
            endpoint.send_notification(method, params)
            output = self._take_output()
        self._write_taken(output)
        if endpoint.bytes_to_send > HIGH_WATER:
            self._wait_for_room()

    def _invoke_future(
        self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]
    ) -> Future[Any]:
        return self.call_future(
            method, make_params(args, kwargs), options.get("timeout", _USE_DEFAULT)
        )

    def call_future(
        self, method: str, params: Params = None, timeout: Any = _USE_DEFAULT
    ) -> Future[Any]:
        """Send a request and return a ``concurrent.futures.Future`` for its result.

        Implicit callbacks of a future call run on the worker pool. Cancelling the future
        sends ``$/cancelRequest``.
        """
        future = _CallFuture()
        waiter = _Waiter(method, future)
        waiter.timeout = self._resolve_timeout(timeout)
        id = self._send_request(method, params, waiter)
        if self._caller_reads and not waiter.callbacks:
            # Its callbacks would complete the future on the worker pool, after the
            # reply is read: a thread reading for it could wait for bytes that never come.
            future.connection = self
        if waiter.timeout is not None:
            self._arm_timer(id, waiter)
        future.call_id = id
        future.caller = self
        if future.cancel_requested:
            self._give_up(id)  # cancelled by another thread before `caller` was set
        return future

    def _arm_timer(self, id: RequestId, waiter: _Waiter) -> None:
        if waiter.timeout is None:
            return
        timer = self._peer._timer
        if waiter.timer is not None:
            timer.cancel(waiter.timer)
        expires_at = time.monotonic() + waiter.timeout
        future = waiter.future
        if type(future) is _CallFuture:
            future.expires_at = expires_at  # a thread reading for it stops reading then
        waiter.timer = timer.call_at(expires_at, partial(self._expire, id, waiter))

    def _expire(self, id: RequestId, waiter: _Waiter) -> None:
        if self._give_up(id):
            waiter.deliver(
                False,
                RpcTimeoutError(
                    f"no reply to {waiter.method!r} from {self.description} "
                    f"within {waiter.timeout} s"
                ),
            )

    def create_async_proxy(
        self, result_handler: Callable[[Any, Any], None] | None = None
    ) -> AsyncProxy:
        """A proxy whose calls return a key at once and report later.

        ``proxy.method(...)`` sends the request and returns its key (the request id);
        ``result_handler(key, result_or_error)`` is called on the worker pool when the
        reply arrives (``result_or_error`` is an :class:`RpcError`, or a
        :class:`TransportError` on timeout or close). ``proxy("a.b")(...)`` for dotted or
        computed names.
        """
        return AsyncProxy(self, result_handler)

    def create_batchedcalls_proxy(self) -> BatchedCallsProxy:
        """A proxy that queues calls and sends them as one JSON-RPC batch (2.0 only)."""
        return BatchedCallsProxy(self)

    def _send_batch(
        self, entries: list[tuple[str, Params, bool]], timeout: float | None
    ) -> list[Future[Any]]:
        futures: list[Future[Any]] = []
        waiters: list[_Waiter] = []
        with self._lock:
            endpoint = self._endpoint
            if endpoint.state is not State.OPEN:
                raise ConnectionClosedError(f"connection to {self.description} is closed")
            self._wait_for_call_room(sum(1 for entry in entries if entry[2]))
            ids = endpoint.send_batch(entries)
            for (method, _, expects_reply), id in zip(entries, ids, strict=True):
                if expects_reply:
                    future = _CallFuture()
                    future.call_id = id
                    future.caller = self
                    if self._caller_reads:
                        future.connection = self
                    waiter = _Waiter(method, future)
                    waiter.timeout = timeout
                    self._waiters[id] = waiter
                    futures.append(future)
                    waiters.append(waiter)
            if self._paused:
                self._wake()
        self._flush()
        for id, waiter in zip((i for i in ids if i is not None), waiters, strict=True):
            self._arm_timer(id, waiter)
        return futures

    # -- serving the peer --------------------------------------------------------------

    def _dispatch(self, events: list[Event]) -> None:
        for event in events:
            kind = type(event)
            if kind is ResponseReceived:
                assert isinstance(event, ResponseReceived)
                waiter = self._waiters.pop(event.id, None)
                if waiter is not None:
                    self._complete(waiter, True, event.result)
            elif kind is RequestReceived or kind is NotificationReceived:
                assert isinstance(event, (RequestReceived, NotificationReceived))
                self._dispatch_call(event)
            elif kind is ErrorReceived:
                assert isinstance(event, ErrorReceived)
                waiter = self._waiters.pop(event.id, None)
                if waiter is not None:
                    self._complete(waiter, False, event.error)
            elif kind is CancelRequested:
                assert isinstance(event, CancelRequested)
                context = self._serving.get(event.request.key)
                if context is not None:
                    context.cancel()
            elif kind is InvalidMessageReceived:
                assert isinstance(event, InvalidMessageReceived)
                log.warning(
                    "%s sent an invalid message: %s%s",
                    self.description,
                    event.error,
                    " (closing)" if event.fatal else "",
                )
            elif kind is ConnectionClosed:
                assert isinstance(event, ConnectionClosed)
                self._fail_all(event.error)

    def _complete(self, waiter: _Waiter, ok: bool, value: Any) -> None:
        if waiter.timer is not None:
            self._peer._timer.cancel(waiter.timer)
        if waiter.future is not None and waiter.callbacks:
            with self._lock:
                self._drop_callbacks(waiter)
            # Complete after the callbacks already queued for this call have run.
            waiter.run_serially(self._peer._default_pool(), partial(waiter.deliver, ok, value))
            return
        waiter.deliver(ok, value)

    def _fail_all(self, error: TransportError) -> None:
        with self._lock:
            waiters = list(self._waiters.values())
            self._waiters.clear()
        for waiter in waiters:
            self._complete(waiter, False, _fresh(error))

    def _lookup(self, method: str) -> tuple[Dispatcher, MethodInfo] | None:
        for dispatcher in self.connection_group.dispatchers:
            info = dispatcher.methods.get(method)
            if info is not None:
                return dispatcher, info
        return None

    def _dispatch_call(self, event: RequestReceived | NotificationReceived) -> None:
        method = event.method
        if method.startswith(CALLBACK_PREFIX):
            self._dispatch_callback(event)
            return
        found = self._lookup(method)
        if found is None:
            if isinstance(event, RequestReceived):
                self._reply(event, error=RpcMethodNotFoundError(data=method))
            elif not method.startswith("$/"):  # LSP: unknown $/ notifications are ignored
                log.info("%s: notification for unknown method %r dropped", self.description, method)
            return
        dispatcher, info = found
        context: CallContext | LazyCallContext
        if type(event) is RequestReceived:
            context = CallContext(event.id, method, self, threading.Event)
            self._serving[event.key] = context
        else:
            # Nothing cancels a notification: its context is made only if the handler
            # asks (rpcbd.context.LazyCallContext).
            context = (None, method, self, threading.Event)
        if not info.blocks:
            self._run_handler(event, info, context)
        elif not dispatcher.pool.submit(partial(self._run_handler, event, info, context)):
            if isinstance(event, RequestReceived):
                self._serving.pop(event.key, None)
                self._reply(
                    event,
                    error=RpcServerBusyError(
                        data={"reason": "worker queue full", "limit": dispatcher.pool.max_queue}
                    ),
                )
            else:
                log.warning("worker queue full: notification %r dropped", method)

    def _wrap_remote_callbacks(self, params: Params) -> Params:
        """Make ``rpc.callback.*`` string arguments callable (:class:`RemoteCallback`)."""
        # Plain loops: on every call, and most calls carry no callback.
        if type(params) is list:
            for value in params:
                if type(value) is str and value.startswith(CALLBACK_PREFIX):
                    return [self._wrap_one(v) for v in params]
        elif type(params) is dict:
            for value in params.values():
                if type(value) is str and value.startswith(CALLBACK_PREFIX):
                    return {k: self._wrap_one(v) for k, v in params.items()}
        return params

    def _wrap_one(self, value: Any) -> Any:
        if type(value) is str and value.startswith(CALLBACK_PREFIX):
            return RemoteCallback(value, self)
        return value

    def _handler_instance(self, cls: type) -> Handler:
        handler = self._handlers.get(cls)
        if handler is None:
            with self._handlers_lock:
                handler = self._handlers.get(cls)
                if handler is None:
                    # Set .connection before __init__ runs, so a handler's __init__ can
                    # already use it; __init__ takes no arguments, as in rpcbd 0.6.
                    instance: Any = object.__new__(cls)
                    instance.connection = self
                    instance.__init__()
                    handler = instance
                    self._handlers[cls] = instance
        return handler

    def _run_handler(
        self,
        event: RequestReceived | NotificationReceived,
        info: MethodInfo,
        context: CallContext | LazyCallContext,
    ) -> None:
        result: Any = None
        error: RpcError | None = None
        if isinstance(context, CallContext) and context.cancelled:
            error = RpcCancelledError()  # cancelled while queued: never starts
        else:
            token = _set_current(context)
            try:
                # The common call binds in a few steps; the rest as bind_params() says.
                args = plain_positional_args(info, event.params)
                kwargs: dict[str, Any] | None = None
                if args is None:
                    args, kwargs = bind_params(info, self._wrap_remote_callbacks(event.params))
                # (The handler instance looked up here, once it exists.)
                handler = self._handlers.get(info.handler_class)
                if handler is None:
                    handler = self._handler_instance(info.handler_class)
                method = getattr(handler, info.attribute)
                result = method(*args) if kwargs is None else method(*args, **kwargs)
                if info.is_async:
                    result.close()
                    raise TypeError(
                        f"{info.name} is an async def method; serve it with rpcbd.aio.AsyncPeer"
                    )
            except RpcError as exc:
                error = exc
            except Exception:
                log.exception("handler for %r raised", event.method)
                error = RpcInternalError()
            finally:
                _reset_current(token)
        if isinstance(event, RequestReceived):
            self._serving.pop(event.key, None)
            self._reply(event, result, error)
        elif error is not None and not isinstance(error, RpcInternalError):
            log.warning("notification %r failed: %s", event.method, error)

    def _reply(
        self, event: RequestReceived, result: Any = None, error: RpcError | None = None
    ) -> None:
        with self._lock:
            endpoint = self._endpoint
            if endpoint.state is not State.OPEN:
                return  # the caller is gone; nobody can receive the reply
            try:
                if error is None:
                    endpoint.send_response(event, result)
                else:
                    endpoint.send_error(event, error)
            except LocalProtocolError as exc:
                # The result is not JSON, or too large to send: the caller still gets an
                # answer (-32603), and the details stay in the local log.
                log.error("cannot send the reply to %r: %s", event.method, exc)
                with contextlib.suppress(LocalProtocolError):
                    endpoint.send_error(event, RpcInternalError())
            if self._paused:
                self._wake()
            if threading.current_thread() is self._duty:
                # An inline handler: the duty thread flushes once after dispatching
                # everything it read, coalescing the replies into one write.
                return
            output = self._take_output()
        if output is None:
            self._check_output_cap()
        self._write_taken(output)

    def _dispatch_callback(self, event: RequestReceived | NotificationReceived) -> None:
        entry = self._callbacks.get(event.method)
        if entry is None:
            # "valid on that connection only until the final response arrives"
            if isinstance(event, RequestReceived):
                self._reply(event, error=RpcMethodNotFoundError(data=event.method))
            return
        waiter, function = entry
        job = _CallbackJob(event, function)
        if waiter.queue is not None:
            waiter.queue.put(job)  # runs in the caller's own thread, in order
            return
        if waiter.future is not None and not waiter.future.done():
            self._arm_timer_for(waiter)
        waiter.run_serially(self._peer._default_pool(), partial(self._run_callback, job))

    def _arm_timer_for(self, waiter: _Waiter) -> None:
        for id, candidate in list(self._waiters.items()):
            if candidate is waiter:
                self._arm_timer(id, waiter)  # a callback arrived: the silence timer restarts
                return

    def _run_callback(self, job: _CallbackJob) -> None:
        event = job.event
        params = self._wrap_remote_callbacks(event.params)
        result: Any = None
        error: RpcError | None = None
        try:
            if type(params) is dict:
                result = job.function(**params)
            else:
                result = job.function(*(params or ()))
        except RpcError as exc:
            error = exc
        except Exception:
            log.exception("callback %r raised", event.method)
            error = RpcInternalError()
        if isinstance(event, RequestReceived):
            self._reply(event, result, error)

    def _call_hooks(self, name: str) -> None:
        for dispatcher in self.connection_group.dispatchers:
            for cls in dispatcher.classes:
                hook = getattr(cls, name, None)
                if hook is None or hook is getattr(Handler, name):
                    continue
                handler = self._handler_instance(cls)
                blocks = getattr(hook, "_rpcbd_blocks", getattr(cls, "assume_methods_block", True))
                run = partial(self._run_hook, getattr(handler, name), name)
                if not blocks or not dispatcher.pool.submit(run):
                    run()

    def _run_hook(self, hook: Callable[[], Any], name: str) -> None:
        try:
            hook()
        except Exception:
            log.exception("%s hook of %s raised", name, self.description)


class AsyncProxy:
    """Calls that return a key at once; results go to ``result_handler(key, value)``."""

    def __init__(self, connection: Connection, result_handler: Callable[[Any, Any], None] | None):
        self._connection = connection
        self._result_handler = result_handler
        self._proxy = MethodProxy(self._invoke)

    def __getattr__(self, name: str) -> MethodProxy:
        return getattr(self._proxy, name)  # type: ignore[no-any-return]

    def __call__(self, name: str, **options: Any) -> MethodProxy:
        return self._proxy(name, **options)  # type: ignore[no-any-return]

    def _invoke(
        self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]
    ) -> Any:
        connection = self._connection
        future: Future[Any] = Future()
        waiter = _Waiter(method, future)
        waiter.timeout = connection._resolve_timeout(options.get("timeout", _USE_DEFAULT))
        key = connection._send_request(method, make_params(args, kwargs), waiter)
        connection._arm_timer(key, waiter)
        handler = self._result_handler
        if handler is not None:
            future.add_done_callback(partial(self._report, handler, key))
        return key

    def _report(self, handler: Callable[[Any, Any], None], key: Any, future: Future[Any]) -> None:
        if future.cancelled():
            return
        error = future.exception()
        value = error if error is not None else future.result()
        self._connection._peer._default_pool().submit(partial(self._run, handler, key, value))

    @staticmethod
    def _run(handler: Callable[[Any, Any], None], key: Any, value: Any) -> None:
        try:
            handler(key, value)
        except Exception:
            log.exception("result handler raised")


class BatchedCallsProxy(BatchBuilder):
    """Queues requests and notifications, then sends them as one JSON-RPC batch.

    ``b.request.m(...)`` returns the index of its result in the tuple ``send()`` gives;
    ``b.notification.m(...)`` queues a notification; ``b.reset()`` empties the batch.
    """

    def __init__(self, connection: Connection) -> None:
        super().__init__()
        self._connection = connection

    def send(
        self,
        response_handler: Callable[[tuple[Any, ...]], None] | None = None,
        timeout: Any = _USE_DEFAULT,
    ) -> tuple[Any, ...] | None:
        """Send the queued calls as one batch.

        Without ``response_handler``: block and return a tuple with one entry per queued
        request, in order: its result, or the :class:`RpcError` instance if it failed.
        With it: return None at once; ``response_handler(results)`` runs on the worker
        pool when every reply is in.

        Raises:
            RpcTimeoutError: (blocking) not every reply arrived within ``timeout``.
            ConnectionClosedError: the connection closed first.
            LocalProtocolError: the batch is empty or the dialect has no batches.
        """
        connection = self._connection
        wait = connection._resolve_timeout(timeout)
        futures = connection._send_batch(list(self._entries), wait)
        if response_handler is not None:
            self._report_when_done(futures, response_handler)
            return None
        results: list[Any] = []
        with blocking_section():
            for future in futures:
                try:
                    results.append(future.result())
                except RpcError as exc:
                    results.append(exc)
        return tuple(results)

    def _report_when_done(
        self, futures: list[Future[Any]], handler: Callable[[tuple[Any, ...]], None]
    ) -> None:
        remaining = [len(futures)]
        lock = threading.Lock()
        pool = self._connection._peer._default_pool()

        def outcome(future: Future[Any]) -> Any:
            error = future.exception()
            return error if error is not None else future.result()

        def done(_: Future[Any]) -> None:
            with lock:
                remaining[0] -= 1
                if remaining[0]:
                    return
            results = tuple(outcome(f) for f in futures)
            pool.submit(partial(AsyncProxy._run, lambda _key, value: handler(value), None, results))

        if not futures:
            pool.submit(partial(AsyncProxy._run, lambda _key, value: handler(value), None, ()))
        for future in futures:
            future.add_done_callback(done)
