"""A connection of the asyncio runtime: one Endpoint and a reader task.

Everything that touches the :class:`~rpcbd.core.Endpoint` runs on the event loop, so no
lock is needed; the steps are those of the threaded runtime (STYLE.md practice 8): feed
bytes, collect events, dispatch, write ``data_to_send()``, check ``close_expected()``.

- The **reader task** awaits ``transport.read()``, feeds the endpoint and dispatches the
  events, then writes what the dispatch queued (the replies of inline handlers found in
  one read go out in one write). When the endpoint stops wanting data (too many
  unanswered requests and no call of ours in flight) it waits for ``_resume`` instead of
  reading: the peer feels TCP flow control. A transport that **pushes data** (sockets)
  calls :meth:`AsyncConnection._on_data` from its protocol's ``data_received`` with each
  chunk, which takes the same steps at once (no reader task wake-up per message); the
  reader task then only waits, for the back-pressure pause, the end, or a failure.
- **Writing.** asyncio's ``transport.write()`` never blocks (it sends what the kernel
  takes and buffers the rest), so output queued by a task or a callback is written at
  once by :meth:`AsyncConnection._flush` (a burst from many tasks woken together goes
  out in one write at the end of the loop's turn, or in ``BURST_WRITE`` pieces while it
  is being made if it is larger). A
  **writer task** exists only while it is needed: when the transport reports back
  pressure (it awaits ``drain()``), or for a transport that cannot write without
  waiting (WebSocket, threads). While it exists every byte goes through it, so the
  bytes keep the order in which the endpoint queued them.
- **Closing.** Once the endpoint expects a close, what is left is written and the
  transport aborted, which ends the reader, which cleans up. A final flush that waits
  for room is bounded by a timer (``CLOSE_FLUSH_TIMEOUT``), not by ``wait_for``.
- Handlers: ``async def`` methods run as tasks (many at once); plain ``@mayblock`` ones on
  the peer's bounded thread pool; plain ``@willnotblock`` ones inline in the reader task.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import logging
import threading
from collections import deque
from collections.abc import Callable
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any

from rpcbd._compiled import mypyc_attr
from rpcbd.aio.callbacks import AsyncRemoteCallback
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
from rpcbd.calls import is_callback as _is_callback
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
from rpcbd.dispatch import CALLBACK_PREFIX, Handler, MethodInfo, bind_params, plain_positional_args
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
from rpcbd.threaded.pool import blocking_section
from rpcbd.typing import Params, RequestId

if TYPE_CHECKING:
    from rpcbd.aio.peer import AsyncPeer
    from rpcbd.aio.transports import AsyncTransport

__all__ = [
    "AsyncBatchedCallsProxy",
    "AsyncConnection",
    "AsyncProxy",
    "AsyncRemoteCallback",
]

log = logging.getLogger("rpcbd")

#: Bytes of a burst of requests or notifications (many tasks calling in one turn of the
#: loop, or one task sending many) written without waiting for the end of the turn; see
#: :meth:`AsyncConnection._flush`.
BURST_WRITE = 2048


class _Waiter:
    """One call in flight.

    ``future`` gets the outcome. A call awaited with implicit callbacks also has a
    ``queue``: callback jobs and then the outcome go there, so the callbacks run in the
    awaiting task, in order.
    """

    __slots__ = ("callbacks", "future", "method", "queue", "timeout", "timer")

    def __init__(self, method: str, loop: asyncio.AbstractEventLoop) -> None:
        self.method = method
        self.future: asyncio.Future[Any] = loop.create_future()
        self.queue: asyncio.Queue[Any] | None = None
        # Names of this call's implicit callbacks; the empty tuple until the first is
        # exported (see ConnectionBase._export_one): one object fewer per call in flight.
        self.callbacks: list[str] | tuple[()] = ()
        self.timer: asyncio.TimerHandle | None = None
        self.timeout: float | None = None

    def deliver(self, ok: bool, value: Any) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.queue is not None:
            self.queue.put_nowait((ok, value))
        elif not self.future.done():  # the awaiting task may have been cancelled
            if ok:
                self.future.set_result(value)
            else:
                self.future.set_exception(value)


# Compiled (mypyc), still a regular Python class: connections stay weak-referenceable and
# take attributes users set on them, and the interpreted ConnectionBase can be its base.
@mypyc_attr(native_class=False)
class AsyncConnection(ConnectionBase):
    """A connection to the peer in asyncio; either side can call the other.

    Attributes:
        request: ``await conn.request.echo(x)``; ``await conn.request("a/b", timeout=5)(x)``
            for other names and per-call options.
        notification: ``conn.notification.log(x)`` (alias ``notify``) is a plain method: it
            queues the message (written at once, or at the end of this turn of the event
            loop) and returns None at once. Await :meth:`drain` to wait until it is
            written and the transport has room again.
        future: ``conn.future.echo(x)`` sends at once and returns an ``asyncio.Future``
            (a ``concurrent.futures.Future`` when called from another thread).
        blocking: ``conn.blocking.echo(x)`` from *another thread* blocks that thread for
            the result; see :meth:`call_threadsafe`. (``conn.request.echo(x)`` does the
            same when called from a thread other than the loop's, so a plain
            ``@mayblock`` handler written for the threaded runtime works unchanged.)
        description: who the peer is, e.g. ``tcp://127.0.0.1:50312``.
        default_timeout: seconds a call waits in silence; None waits forever; -1 uses the
            peer's default.
    """

    def __init__(
        self,
        peer: AsyncPeer,
        transport: AsyncTransport,
        handlers: list[type],
        methods: dict[str, MethodInfo],
        *,
        options: dict[str, Any],
        default_timeout: Any,
    ) -> None:
        self._peer: AsyncPeer = peer
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self.description = transport.description
        self.default_timeout = default_timeout
        self._handler_classes = handlers
        self._methods = methods
        framing = (
            None
            if transport.message_based
            else (options.get("framing") or transport.default_framing)
        )
        self._endpoint = Endpoint(
            peer.dialect,
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
        self._max_calls = int(options["max_calls_in_flight"])
        # Callers waiting for max_calls_in_flight room, first come first served.
        self._room_waiters: deque[tuple[int, asyncio.Future[None]]] = deque()
        self._partial_timeout: float | None = (
            None if transport.message_based else options["partial_message_timeout"]
        )
        self._partial_timer: asyncio.TimerHandle | None = None
        self._waiters: dict[RequestId, _Waiter] = {}
        self._callbacks: dict[str, tuple[_Waiter, Callable[..., Any]]] = {}
        self._serving: dict[int, tuple[CallContext, asyncio.Task[Any] | None]] = {}
        self._handlers: dict[type, Handler] = {}
        # The paused reader waits on this future (made only when it pauses).
        self._resume: asyncio.Future[None] | None = None
        self._closed_future: asyncio.Future[None] = self._loop.create_future()
        self._reader_task: asyncio.Task[None] | None = None
        # A transport that pushes data: the reader task waits on _pushed while chunks
        # are handled as they arrive; _pushed_end once the transport told the end.
        self._pushed: asyncio.Future[None] | None = None
        self._pushed_end = False
        # Writing (see the module docstring). One place decides who writes next:
        # _writer_task while it exists, else _flush / _write_now.
        self._writes_nowait = transport.writes_nowait
        self._writer_task: asyncio.Task[None] | None = None
        # Set after a write by _flush: the end of this turn writes what more is queued.
        self._end_of_turn: asyncio.Handle | None = None
        self._wrote_since_read = False
        self._holding_output = False  # the reader is dispatching: it writes once after
        self._close_timer: asyncio.TimerHandle | None = None  # bounds the final flush

    # The call builders are made on first use: most connections of a server never call.

    @cached_property
    def request(self) -> MethodProxy:
        """``await conn.request.echo(x)``; see the class docstring."""
        return MethodProxy(self._invoke_request)

    @cached_property
    def notification(self) -> MethodProxy:
        """``conn.notification.log(x)`` queues a notification; see the class docstring."""
        return MethodProxy(self._invoke_notification)

    @property
    def notify(self) -> MethodProxy:
        """Alias of :attr:`notification`."""
        return self.notification

    @cached_property
    def future(self) -> MethodProxy:
        """``conn.future.echo(x)`` returns a future; see the class docstring."""
        return MethodProxy(self._invoke_future)

    @cached_property
    def blocking(self) -> MethodProxy:
        """``conn.blocking.echo(x)`` from another thread; see the class docstring."""
        return MethodProxy(self._invoke_blocking)

    # -- life cycle --------------------------------------------------------------------

    def _start(self) -> None:
        self._reader_task = self._peer._track(self._loop.create_task(self._run_reader()))

    @property
    def peer(self) -> AsyncPeer:
        """The :class:`~rpcbd.aio.AsyncPeer` this connection belongs to."""
        return self._peer

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the connection runs on."""
        return self._loop

    def close(self) -> None:
        """Start closing: every call in flight fails at once with
        :class:`~rpcbd.ConnectionClosedError`, what was queued is still written (briefly),
        then the transport closes. Await :meth:`aclose` (or :meth:`wait_closed`) to wait
        for the end. Thread-safe: from another thread it is scheduled on the loop."""
        if threading.get_ident() != self._loop_thread:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self.close)
            return
        if self._endpoint.state is State.OPEN:
            self._endpoint.close()
            self._dispatch(self._endpoint.events_received())
        if self._writer_task is not None:
            self._bound_final_flush()
        self._write_now()  # what is queued, then the transport closes
        self._wake_reader()

    async def aclose(self) -> None:
        """Close and wait until the reader and writer tasks ended, the transport is
        closed (an ``exec:`` child reaped) and ``on_disconnect`` ran."""
        self.close()
        await self.wait_closed()

    async def wait_closed(self) -> None:
        """Wait until the connection has closed (by either side) and cleaned up."""
        reader = self._reader_task
        if reader is not None and reader is not asyncio.current_task():
            await asyncio.shield(reader)
        else:
            await asyncio.shield(self._closed_future)

    async def __aenter__(self) -> AsyncConnection:
        return self

    def __enter__(self) -> AsyncConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        """``with conn:`` closes; from another thread it also waits for the end."""
        self.close()
        if threading.get_ident() != self._loop_thread:
            with contextlib.suppress(RuntimeError):  # the loop stopped: nothing to wait for
                asyncio.run_coroutine_threadsafe(self.wait_closed(), self._loop).result()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<AsyncConnection {self.description} {state}>"

    def _track(self, task: asyncio.Task[Any]) -> asyncio.Task[Any]:
        return self._peer._track(task)

    # -- reading -----------------------------------------------------------------------

    async def _run_reader(self) -> None:
        try:
            self._call_hooks("on_connect")
            await self._read_loop()
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("reader of %s failed", self.description)
        finally:
            await self._finish()

    async def _read_loop(self) -> None:
        if self._transport.pushes_data:
            await self._read_pushed()
            return
        endpoint = self._endpoint
        transport = self._transport
        while endpoint.state is State.OPEN:
            if not endpoint.wants_data():
                await self._pause_for_room()
                continue
            try:
                data = await transport.read()
            except (OSError, TransportError) as exc:
                log.debug("read from %s failed: %s", self.description, exc)
                data = None
            self._wrote_since_read = False
            if endpoint.state is not State.OPEN:
                break
            feed_read(endpoint, data, self._message_based)
            self._received(endpoint.events_received(EVENT_BATCH))

    async def _pause_for_room(self) -> None:
        """Back pressure: too many unanswered requests and no call of ours in flight. A
        reply sent (or a call of ours) resolves _resume; then the events the endpoint
        held back are dispatched."""
        self._resume = self._loop.create_future()
        self._watch_partial_message()
        try:
            await self._resume
        finally:
            self._resume = None
        self._received(self._endpoint.events_received(EVENT_BATCH))

    def _received(self, events: list[Event]) -> None:
        """The steps after each read (or each chunk pushed): dispatch the events, a batch
        of at most about EVENT_BATCH at a time (see Endpoint.events_received), then one
        write."""
        endpoint = self._endpoint
        while events:
            # The endpoint stops parsing at max_pending_requests (wants_data() false). If
            # the dispatch answered enough of them (inline handlers), what it held back
            # is taken now, as are the frames after a full batch: no read may come to ask.
            more = len(events) >= EVENT_BATCH or not endpoint.wants_data()
            # Replies of inline handlers (and anything else queued meanwhile) are
            # written once, below, in the order the endpoint queued them.
            self._holding_output = True
            try:
                self._dispatch(events)
            finally:
                self._holding_output = False
            events = endpoint.events_received(EVENT_BATCH) if more and endpoint.wants_data() else []
        # After the dispatch: by then every whole frame is parsed, and what the endpoint
        # still holds is a frame half received (or frames held back at the bound).
        if self._partial_timeout is not None and (
            self._partial_timer is not None or endpoint.partial_message_pending
        ):
            self._watch_partial_message()  # (else it has nothing to start or stop)
        if endpoint.bytes_to_send or endpoint.state is not State.OPEN:
            self._write_now()

    async def _read_pushed(self) -> None:
        """The reader task of a transport that pushes data: chunks are handled in
        :meth:`_on_data` as they arrive; the task only waits, and wakes for what cannot
        happen inside a protocol callback (the back-pressure pause, the end, a failure)."""
        endpoint = self._endpoint
        transport = self._transport
        transport.start_receiving(self._on_data, self._on_end)
        while endpoint.state is State.OPEN:
            if not endpoint.wants_data():
                await self._pause_for_room()
                continue
            if self._pushed_end:
                self._wrote_since_read = False
                endpoint.receive_eof()
                self._received(endpoint.events_received(EVENT_BATCH))
                break
            # Created before resume_reading(), which may deliver held chunks at once.
            self._pushed = self._loop.create_future()
            try:
                transport.resume_reading()
                await self._pushed
            finally:
                self._pushed = None
            if endpoint.state is State.OPEN and not self._pushed_end:
                # Woken for back pressure: handlers that ran before this task may have
                # answered enough already, and what the endpoint held back must be taken
                # (nothing else asks for it).
                self._received(endpoint.events_received(EVENT_BATCH))

    def _on_data(self, chunk: bytes) -> None:
        """A pushed chunk: the steps of one read of :meth:`_read_loop`, in the protocol's
        ``data_received``."""
        endpoint = self._endpoint
        self._wrote_since_read = False
        if endpoint.state is State.OPEN:
            try:
                endpoint.receive_data(chunk)
                self._received(endpoint.events_received(EVENT_BATCH))
            except Exception as exc:
                self._wake_pushed(exc)  # the reader task raises it (logged, then closed)
                return
            if endpoint.wants_data():
                return
        self._wake_pushed(None)  # closing, or the back-pressure pause: the task decides

    def _on_end(self) -> None:
        """The stream ended, the connection was lost, or the transport was aborted."""
        self._pushed_end = True
        self._wake_pushed(None)

    def _wake_pushed(self, error: Exception | None) -> None:
        """Hand over to the reader task; nothing more is pushed until it resumes."""
        pushed = self._pushed
        self._transport.pause_reading()
        if pushed is None or pushed.done():
            if error is not None:  # pragma: no cover - chunks come only while it waits
                log.error("reader of %s failed", self.description, exc_info=error)
                self._stop_transport()
            return
        if error is None:
            pushed.set_result(None)
        else:
            pushed.set_exception(error)

    def _wake_reader(self) -> None:
        """A reply was sent, a call of ours started, or the connection closes: a reader
        paused for back pressure must look again."""
        resume = self._resume
        if resume is not None and not resume.done():
            resume.set_result(None)

    def _watch_partial_message(self) -> None:
        """Bound the time one frame may stay half-received (slow loris)."""
        if self._partial_timeout is None:
            return
        partial = self._endpoint.partial_message_pending and self._resume is None
        if partial and self._partial_timer is None:
            self._partial_timer = self._loop.call_later(
                self._partial_timeout, self._partial_message_expired
            )
        elif not partial and self._partial_timer is not None:
            self._partial_timer.cancel()
            self._partial_timer = None

    def _partial_message_expired(self) -> None:
        self._partial_timer = None
        log.warning(
            "closing %s: a message has been arriving for over %s s (partial_message_timeout)",
            self.description,
            self._partial_timeout,
        )
        self._transport.abort()

    async def _finish(self) -> None:
        if self._partial_timer is not None:
            self._partial_timer.cancel()
            self._partial_timer = None
        endpoint = self._endpoint
        if endpoint.state is not State.CLOSED:
            endpoint.close()
            self._dispatch(endpoint.events_received())
        for context, task in list(self._serving.values()):
            context.cancel()  # nobody waits for these results any more
            if task is not None:
                task.cancel()
        if self._end_of_turn is not None:
            self._end_of_turn.cancel()  # _write_now writes it all now
            self._end_of_turn = None
        self._write_now()
        writer = self._writer_task
        if writer is not None:
            self._bound_final_flush()
            with contextlib.suppress(BaseException):
                await writer
        self._transport.abort()
        try:
            await self._transport.aclose()
        except Exception:
            log.exception("closing the transport of %s failed", self.description)
        self._peer._connection_closed(self)
        self._call_hooks("on_disconnect")
        if not self._closed_future.done():
            self._closed_future.set_result(None)
        if self._peer._private and not self._peer._connections:
            await self._peer.shutdown()  # the private peer of rpcbd.aio.pipe_pair

    # -- writing -----------------------------------------------------------------------

    def _flush(self, *, burst: bool = False) -> None:
        """Output was queued by a task or a callback: write it.

        The first output since the reader last read is written at once (a caller's
        request, say). More output before the next read suggests a burst, many tasks
        woken together each sending one message: a handle queued behind them writes
        them all in one write at the end of the turn (128 tasks make two writes, not
        128). A burst of requests or notifications is also written whenever
        ``BURST_WRITE`` bytes are queued (``burst=True``): the peer starts on the first
        ones while the rest are being made, so the two processes work at once instead
        of in turn (with 128 calls in flight over TCP, about 1.4x the calls/s on two
        cores; a flood of notifications from one task, which never ends its turn,
        about 1.5x).
        While the reader is dispatching, it writes once after; while the writer task
        exists, it writes.
        """
        if self._holding_output or self._writer_task is not None:
            return
        if self._end_of_turn is not None:
            if burst and self._endpoint.bytes_to_send >= BURST_WRITE:
                self._write_now()  # the end of the turn writes the rest
            return
        if self._wrote_since_read:
            self._end_of_turn = self._loop.call_soon(self._turn_ended)
        else:
            self._wrote_since_read = self._write_now()

    def _turn_ended(self) -> None:
        self._end_of_turn = None
        self._wrote_since_read = False
        self._write_now()

    def _write_now(self) -> bool:
        """Hand everything the endpoint queued to the transport now, then close the
        transport if the endpoint expects it. Returns whether something was written.

        With a transport that cannot write without waiting, or once it reports back
        pressure, the writer task takes over until it is done.
        """
        if self._writer_task is not None:
            return False  # it takes what is queued next, in order
        endpoint = self._endpoint
        if endpoint.bytes_to_send:
            if not self._writes_nowait:
                self._start_writer(drain_first=False)
                return True
            try:
                backlog = self._transport.write_nowait(endpoint.data_to_send())
            except (OSError, TransportError) as exc:
                log.debug("write to %s failed: %s", self.description, exc)
                self._stop_transport()
                return False
            if backlog:
                self._start_writer(drain_first=True)
                return True
            if endpoint.close_expected():
                self._stop_transport()
            return True
        if endpoint.close_expected():
            self._stop_transport()
        return False

    def _start_writer(self, *, drain_first: bool) -> None:
        task = self._loop.create_task(self._write_loop(drain_first))
        self._writer_task = self._peer._track(task)
        if self._endpoint.close_expected():
            self._bound_final_flush()

    async def _write_loop(self, drain_first: bool) -> None:
        """Write until nothing is queued (back pressure: wait for room first)."""
        endpoint = self._endpoint
        transport = self._transport
        failed = False
        try:
            if drain_first:
                await transport.drain()
            while chunks := endpoint.data_to_send():
                await transport.write(chunks)
        except asyncio.CancelledError:
            # The final flush ran out of time (_bound_final_flush), or the peer shut
            # down: what is left is dropped with the transport.
            failed = True
        except (OSError, TransportError) as exc:
            log.debug("write to %s failed: %s", self.description, exc)
            failed = True
        finally:
            self._writer_task = None
            self._wrote_since_read = False  # a later turn: the next write goes at once
            if self._close_timer is not None:
                self._close_timer.cancel()
                self._close_timer = None
        if failed or endpoint.close_expected():
            self._stop_transport()

    def _bound_final_flush(self) -> None:
        """Closing while the writer task waits for room: give it CLOSE_FLUSH_TIMEOUT."""
        writer = self._writer_task
        if writer is not None and self._close_timer is None:
            self._close_timer = self._loop.call_later(CLOSE_FLUSH_TIMEOUT, writer.cancel)

    def _stop_transport(self) -> None:
        """Closing, or a write failed: abort the transport (a stream still flushes what
        it holds), which ends the reader's read(), which then cleans up (_finish)."""
        self._transport.abort()
        endpoint = self._endpoint
        if endpoint.state is State.OPEN:
            endpoint.close()
            self._dispatch(endpoint.events_received())
        self._wake_reader()

    async def drain(self) -> None:
        """Wait until everything queued so far has been written and the transport has
        room again (or the connection closed)."""
        while True:
            writer = self._writer_task
            if writer is None:
                if not self._endpoint.bytes_to_send or self._closed_future.done():
                    return
                self._write_now()
                continue
            # asyncio.wait: our caller may be cancelled, the writer must not be.
            await asyncio.wait((writer,))

    # -- calling the peer --------------------------------------------------------------

    async def _wait_for_call_room(self, calls: int) -> None:
        """Wait while ``calls`` more would exceed ``max_calls_in_flight``."""
        endpoint = self._endpoint
        limit = self._max_calls
        if endpoint.calls_in_flight + calls <= limit and not self._room_waiters:
            return
        if calls > limit:
            raise LocalProtocolError(f"{calls} calls exceed max_calls_in_flight ({limit})")
        first = False
        while True:
            # State first: closing empties the calls in flight, which is no room.
            if endpoint.state is not State.OPEN:
                raise ConnectionClosedError(f"connection to {self.description} is closed")
            if endpoint.calls_in_flight + calls <= limit and (first or not self._room_waiters):
                return
            waiter: asyncio.Future[None] = self._loop.create_future()
            entry = (calls, waiter)
            # A caller woken too early keeps its place at the front.
            if first:
                self._room_waiters.appendleft(entry)
            else:
                self._room_waiters.append(entry)
            try:
                await waiter
            except asyncio.CancelledError:
                with contextlib.suppress(ValueError):
                    self._room_waiters.remove(entry)
                self._wake_room_waiters()  # pass our turn on
                raise
            first = True

    def _wake_room_waiters(self) -> None:
        """Wake as many waiting callers, in order, as there is room for (all when the
        connection closed, so they fail)."""
        waiters = self._room_waiters
        if not waiters:
            return
        is_open = self._endpoint.state is State.OPEN
        free = self._max_calls - self._endpoint.calls_in_flight
        while waiters and (not is_open or waiters[0][0] <= free):
            calls, future = waiters.popleft()
            free -= calls
            if not future.done():
                future.set_result(None)

    def _check_loop(self, what: str) -> None:
        if threading.get_ident() != self._loop_thread:
            raise LocalProtocolError(
                f"{what} must be used on the connection's event loop; from another thread "
                "use conn.blocking.method(...) or conn.call_threadsafe(...)"
            )

    def _send_request(
        self, method: str, params: Params, waiter: _Waiter, *, callbacks: bool = True
    ) -> RequestId:
        """Queue the request and write it; ``callbacks=False`` when the caller already
        knows ``params`` holds no callable to export."""
        endpoint = self._endpoint
        if endpoint.state is not State.OPEN:
            raise ConnectionClosedError(f"connection to {self.description} is closed")
        if callbacks:
            params = self._export_callbacks(params, waiter)
        try:
            id = endpoint.send_request(method, params)
        except BaseException:
            self._drop_callbacks(waiter)
            raise
        self._waiters[id] = waiter
        if self._resume is not None:
            self._wake_reader()  # a call of ours in flight: a paused reader must read again
        if waiter.timeout is not None:
            self._arm_timer(id, waiter)
        self._flush(burst=True)
        return id

    def _arm_timer(self, id: RequestId, waiter: _Waiter) -> None:
        if waiter.timeout is None:
            return
        if waiter.timer is not None:
            waiter.timer.cancel()
        waiter.timer = self._loop.call_later(waiter.timeout, self._expire, id, waiter)

    def _expire(self, id: RequestId, waiter: _Waiter) -> None:
        waiter.timer = None
        if self._give_up(id):
            waiter.deliver(
                False,
                RpcTimeoutError(
                    f"no reply to {waiter.method!r} from {self.description} "
                    f"within {waiter.timeout} s"
                ),
            )

    def _give_up(self, id: RequestId) -> bool:
        """Stop waiting for call ``id`` and send ``$/cancelRequest``; False if its reply
        was already delivered."""
        if not self._endpoint.cancel_call(id):
            return False
        waiter = self._waiters.pop(id, None)
        if waiter is not None:
            self._drop_callbacks(waiter)
            if waiter.timer is not None:
                waiter.timer.cancel()
                waiter.timer = None
        self._flush()
        self._wake_room_waiters()
        return True

    async def call(
        self, method: str, *args: Any, timeout: Any = _USE_DEFAULT, **kwargs: Any
    ) -> Any:
        """Call ``method`` and return its result.

        Implicit callbacks (plain or ``async def`` callables among the arguments) run in
        this task while it awaits, in the order the peer calls them. The timeout bounds
        silence: it restarts whenever a callback for this call arrives. Cancelling the
        awaiting task sends ``$/cancelRequest``.

        Raises:
            RpcError: the peer replied with an error (its code, message and data kept).
            RpcTimeoutError: no reply within ``timeout`` (``$/cancelRequest`` was sent).
            ConnectionClosedError: the connection closed before the reply.
            ValueError: both positional and keyword arguments.
        """
        return await self._call(method, make_params(args, kwargs), timeout)

    async def _call(self, method: str, params: Params, timeout: Any) -> Any:
        # (Conditions in front of calls that return at once in the common case: this
        # runs once per request.)
        if threading.get_ident() != self._loop_thread:
            self._check_loop("await conn.request")
        waiter = _Waiter(method, self._loop)
        waiter.timeout = self._resolve_timeout(timeout)
        if self._endpoint.calls_in_flight >= self._max_calls or self._room_waiters:
            await self._wait_for_call_room(1)
        if params is not None and _holds_callback(params):
            waiter.queue = asyncio.Queue()
        id = self._send_request(method, params, waiter, callbacks=waiter.queue is not None)
        # Encoded and queued: the params need not live until the reply (a large argument's
        # memory is freed now, and a call in flight holds one object fewer). (Not `del`:
        # mypyc cannot delete a local.)
        params = None
        try:
            if self._endpoint.bytes_to_send > HIGH_WATER:
                await self.drain()  # the transport has no room: wait, not queue more
            if waiter.queue is None:
                return await waiter.future
            get = waiter.queue.get
            while True:
                item = await get()
                if type(item) is _CallbackJob:
                    await self._run_callback(item)
                    continue
                ok, value = item
                if ok:
                    return value
                raise value
        except asyncio.CancelledError:
            self._give_up(id)  # the awaiting task gave up: tell the peer
            raise
        finally:
            if waiter.callbacks:
                self._drop_callbacks(waiter)

    def _invoke_request(
        self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]
    ) -> Any:
        timeout = options.get("timeout", _USE_DEFAULT)
        if threading.get_ident() != self._loop_thread:
            # Another thread (a plain @mayblock handler, say): block like the threaded
            # runtime, so the same handler class serves both runtimes.
            return self.call_threadsafe(method, *args, timeout=timeout, **kwargs)
        # On the loop: a coroutine; the request is sent when it is first awaited.
        return self._call(method, make_params(args, kwargs), timeout)

    def _invoke_notification(
        self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]
    ) -> None:
        self.send_notification(method, make_params(args, kwargs))

    def send_notification(self, method: str, params: Params = None) -> None:
        """Queue a notification (written at once, or at the end of this turn of the event
        loop); returns at once (await :meth:`drain` for back pressure). From another
        thread it is handed to the loop, in order.

        Raises:
            ConnectionClosedError: the connection is closed.
        """
        if threading.get_ident() != self._loop_thread:
            if self.closed:
                raise ConnectionClosedError(f"connection to {self.description} is closed")
            self._loop.call_soon_threadsafe(self._notify_quietly, method, params)
            return
        if self._endpoint.state is not State.OPEN:
            raise ConnectionClosedError(f"connection to {self.description} is closed")
        self._endpoint.send_notification(method, params)
        # A flood of notifications in one turn is written in BURST_WRITE pieces, as
        # requests are: the peer works through the first while the rest are made.
        self._flush(burst=True)

    def _notify_quietly(self, method: str, params: Params) -> None:
        try:
            self.send_notification(method, params)
        except (TransportError, LocalProtocolError) as exc:
            log.debug("notification %r from a thread not sent: %s", method, exc)

    def _invoke_future(
        self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]
    ) -> asyncio.Future[Any] | concurrent.futures.Future[Any]:
        params = make_params(args, kwargs)
        timeout = options.get("timeout", _USE_DEFAULT)
        if threading.get_ident() != self._loop_thread:
            # Another thread gets a concurrent.futures.Future (cancelling it cancels the
            # call and sends $/cancelRequest).
            return asyncio.run_coroutine_threadsafe(self._call(method, params, timeout), self._loop)
        return self.call_future(method, params, timeout)

    def call_future(
        self, method: str, params: Params = None, timeout: Any = _USE_DEFAULT
    ) -> asyncio.Future[Any]:
        """Send a request now and return an ``asyncio.Future`` for its result.

        Implicit callbacks of such a call run as tasks. Cancelling the future sends
        ``$/cancelRequest``.
        """
        self._check_loop("conn.future")
        waiter = _Waiter(method, self._loop)
        waiter.timeout = self._resolve_timeout(timeout)
        id = self._send_request(method, params, waiter)
        waiter.future.add_done_callback(partial(self._future_done, id, waiter))
        return waiter.future

    def _future_done(self, id: RequestId, waiter: _Waiter, future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            self._give_up(id)
        if waiter.callbacks:
            self._drop_callbacks(waiter)

    # -- from other threads --------------------------------------------------------------

    def call_threadsafe(
        self, method: str, *args: Any, timeout: Any = _USE_DEFAULT, **kwargs: Any
    ) -> Any:
        """Call ``method`` from a thread other than the loop's and block for the result.

        The call runs on the connection's loop (``asyncio.run_coroutine_threadsafe``);
        implicit callbacks run there too. Raises what :meth:`call` raises.

        Raises:
            LocalProtocolError: called on the loop's own thread (it would deadlock).
        """
        if threading.get_ident() == self._loop_thread:
            raise LocalProtocolError(
                "call_threadsafe would block the event loop it needs: use "
                "`await conn.request.method(...)` on the loop"
            )
        params = make_params(args, kwargs)
        future = asyncio.run_coroutine_threadsafe(self._call(method, params, timeout), self._loop)
        try:
            # A @mayblock handler calling back must not starve the pool it runs on.
            with blocking_section():
                return future.result()
        except concurrent.futures.CancelledError:
            raise ConnectionClosedError(f"call to {method!r} was cancelled") from None

    def notify_threadsafe(self, method: str, *args: Any, **kwargs: Any) -> None:
        """Send a notification from any thread (``send_notification`` does the same)."""
        self.send_notification(method, make_params(args, kwargs))

    def _invoke_blocking(
        self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]
    ) -> Any:
        return self.call_threadsafe(
            method, *args, timeout=options.get("timeout", _USE_DEFAULT), **kwargs
        )

    # -- proxies -----------------------------------------------------------------------

    def create_async_proxy(
        self, result_handler: Callable[[Any, Any], Any] | None = None
    ) -> AsyncProxy:
        """A proxy whose calls send at once and return a key (the request id);
        ``result_handler(key, result_or_error)`` (plain or ``async def``) runs as a task
        when the reply arrives."""
        return AsyncProxy(self, result_handler)

    def create_batchedcalls_proxy(self) -> AsyncBatchedCallsProxy:
        """A proxy that queues calls and sends them as one JSON-RPC batch (2.0 only)."""
        return AsyncBatchedCallsProxy(self)

    def _send_batch(
        self, entries: list[tuple[str, Params, bool]], timeout: float | None
    ) -> list[asyncio.Future[Any]]:
        self._check_loop("batch.send")
        endpoint = self._endpoint
        if endpoint.state is not State.OPEN:
            raise ConnectionClosedError(f"connection to {self.description} is closed")
        ids = endpoint.send_batch(entries)
        futures: list[asyncio.Future[Any]] = []
        for (method, _, expects_reply), id in zip(entries, ids, strict=True):
            if expects_reply:
                waiter = _Waiter(method, self._loop)
                waiter.timeout = timeout
                self._waiters[id] = waiter
                self._arm_timer(id, waiter)
                waiter.future.add_done_callback(partial(self._future_done, id, waiter))
                futures.append(waiter.future)
        self._wake_reader()
        self._flush()
        return futures

    # -- serving the peer --------------------------------------------------------------

    def _dispatch(self, events: list[Event]) -> None:
        for event in events:
            # `type(event) is X` (events are never subclassed) narrows the type for mypy
            # with no isinstance() or assert per event.
            if type(event) is ResponseReceived:
                waiter = self._waiters.pop(event.id, None)
                if waiter is not None:
                    waiter.deliver(True, event.result)
            elif type(event) is RequestReceived or type(event) is NotificationReceived:
                self._dispatch_call(event)
            elif type(event) is ErrorReceived:
                waiter = self._waiters.pop(event.id, None)
                if waiter is not None:
                    waiter.deliver(False, event.error)
            elif type(event) is CancelRequested:
                entry = self._serving.get(event.request.key)
                if entry is not None:
                    context, task = entry
                    context.cancel()
                    if task is not None:
                        task.cancel()  # the done callback replies -32800
            elif type(event) is InvalidMessageReceived:
                log.warning(
                    "%s sent an invalid message: %s%s",
                    self.description,
                    event.error,
                    " (closing)" if event.fatal else "",
                )
            elif type(event) is ConnectionClosed:
                self._fail_all(event.error)
        if self._room_waiters:
            self._wake_room_waiters()  # replies (or the close) may have made room

    def _fail_all(self, error: TransportError) -> None:
        waiters = list(self._waiters.values())
        self._waiters.clear()
        for waiter in waiters:
            waiter.deliver(False, _fresh(error))

    def _dispatch_call(self, event: RequestReceived | NotificationReceived) -> None:
        method = event.method
        if method.startswith(CALLBACK_PREFIX):
            self._dispatch_callback(event)
            return
        info = self._methods.get(method)
        if info is None:
            if isinstance(event, RequestReceived):
                self._reply(event, error=RpcMethodNotFoundError(data=method))
            elif not method.startswith("$/"):  # LSP: unknown $/ notifications are ignored
                log.info("%s: notification for unknown method %r dropped", self.description, method)
            return
        request = event if type(event) is RequestReceived else None
        if not info.is_async and not info.blocks:
            # No $/cancelRequest can reach an inline handler while it runs: its context
            # is made only if it asks (rpcbd.context.LazyCallContext).
            self._run_inline(
                event, info, (None if request is None else request.id, method, self, asyncio.Event)
            )
            return
        in_thread = info.blocks and not info.is_async
        context = CallContext(
            None if request is None else request.id,
            method,
            self,
            threading.Event if in_thread else asyncio.Event,
        )
        if in_thread and not self._peer._reserve_worker():
            if request is not None:
                self._reply(
                    request,
                    error=RpcServerBusyError(
                        data={"reason": "worker queue full", "limit": self._peer.max_queue}
                    ),
                )
            else:
                log.warning("worker queue full: notification %r dropped", method)
            return
        runner = self._run_in_thread if in_thread else self._run_async
        task = self._track(self._loop.create_task(runner(event, info, context)))
        if request is not None:
            self._serving[request.key] = (context, None if in_thread else task)
            task.add_done_callback(partial(self._handler_done, request))

    def _wrap_remote_callbacks(self, params: Params) -> Params:
        if type(params) is list:
            values: Any = params
        elif type(params) is dict:
            values = params.values()
        else:
            return params
        for v in values:  # a plain loop: no generator per call on the hot path
            if type(v) is str and v.startswith(CALLBACK_PREFIX):
                break
        else:
            return params
        if type(params) is dict:
            return {k: self._wrap_one(v) for k, v in params.items()}
        return [self._wrap_one(v) for v in params]

    def _wrap_one(self, value: Any) -> Any:
        # A method, not a closure: mypyc (the compiled build) cannot compile a closure in
        # a non-native class.
        if type(value) is str and value.startswith(CALLBACK_PREFIX):
            return AsyncRemoteCallback(value, self)
        return value

    def _handler_instance(self, cls: type) -> Handler:
        handler = self._handlers.get(cls)
        if handler is None:
            # connection is set before __init__ runs, so __init__ may use it.
            klass: type[Handler] = cls
            handler = klass.__new__(klass)
            handler.connection = self
            handler.__init__()  # type: ignore[misc]
            self._handlers[cls] = handler
        return handler

    def _bind(self, event: RequestReceived | NotificationReceived, info: MethodInfo) -> Any:
        args, kwargs = bind_params(info, self._wrap_remote_callbacks(event.params))
        method = getattr(self._handler_instance(info.handler_class), info.attribute)
        return partial(method, *args, **kwargs)

    def _run_inline(
        self,
        event: RequestReceived | NotificationReceived,
        info: MethodInfo,
        context: LazyCallContext,
    ) -> None:
        result: Any = None
        error: RpcError | None = None
        token = _set_current(context)
        try:
            # _bind() without the partial: the same binding, called at once (and the
            # handler instance looked up here, once it exists).
            args = plain_positional_args(info, event.params)
            kwargs: dict[str, Any] | None = None
            if args is None:
                args, kwargs = bind_params(info, self._wrap_remote_callbacks(event.params))
            handler = self._handlers.get(info.handler_class)
            if handler is None:
                handler = self._handler_instance(info.handler_class)
            method = getattr(handler, info.attribute)
            result = method(*args) if kwargs is None else method(*args, **kwargs)
        except RpcError as exc:
            error = exc
        except Exception:
            log.exception("handler for %r raised", event.method)
            error = RpcInternalError()
        finally:
            _reset_current(token)
        if type(event) is RequestReceived:
            self._reply(event, result, error)  # an inline call is never in _serving
        elif error is not None and not isinstance(error, RpcInternalError):
            log.warning("notification %r failed: %s", event.method, error)

    async def _run_async(
        self, event: RequestReceived | NotificationReceived, info: MethodInfo, context: CallContext
    ) -> None:
        result: Any = None
        error: RpcError | None = None
        _set_current(context)  # the task runs in its own copy of the context
        try:
            result = await self._bind(event, info)()
        except RpcError as exc:
            error = exc
        except Exception:
            log.exception("handler for %r raised", event.method)
            error = RpcInternalError()
        self._finish_call(event, result, error)

    async def _run_in_thread(
        self, event: RequestReceived | NotificationReceived, info: MethodInfo, context: CallContext
    ) -> None:
        result: Any = None
        error: RpcError | None = None
        try:
            call = self._bind(event, info)
            result = await self._loop.run_in_executor(
                self._peer._executor(), partial(_run_job, call, context)
            )
        except RpcError as exc:
            error = exc
        except Exception:
            log.exception("handler for %r raised", event.method)
            error = RpcInternalError()
        finally:
            self._peer._release_worker()
        self._finish_call(event, result, error)

    def _finish_call(
        self, event: RequestReceived | NotificationReceived, result: Any, error: RpcError | None
    ) -> None:
        if isinstance(event, RequestReceived):
            self._serving.pop(event.key, None)
            self._reply(event, result, error)
        elif error is not None and not isinstance(error, RpcInternalError):
            log.warning("notification %r failed: %s", event.method, error)

    def _handler_done(self, request: RequestReceived, task: asyncio.Task[Any]) -> None:
        # The task was cancelled (a $/cancelRequest, possibly before it even started):
        # rpcbd replies -32800 itself.
        if task.cancelled() and self._serving.pop(request.key, None) is not None:
            self._reply(request, error=RpcCancelledError())

    def _reply(
        self, event: RequestReceived, result: Any = None, error: RpcError | None = None
    ) -> None:
        endpoint = self._endpoint
        if endpoint.state is not State.OPEN:
            return  # the caller is gone; nobody can receive the reply
        try:
            if error is None:
                endpoint.send_response(event, result)
            else:
                endpoint.send_error(event, error)
        except LocalProtocolError as exc:
            log.error("cannot send the reply to %r: %s", event.method, exc)
            with contextlib.suppress(LocalProtocolError):
                endpoint.send_error(event, RpcInternalError(data="result is not JSON"))
        if self._resume is not None:
            self._wake_reader()
        if not self._holding_output:  # the reader writes once after its dispatch
            self._flush()

    def _dispatch_callback(self, event: RequestReceived | NotificationReceived) -> None:
        entry = self._callbacks.get(event.method)
        if entry is None:
            # "valid on that connection only until the final response arrives"
            if isinstance(event, RequestReceived):
                self._reply(event, error=RpcMethodNotFoundError(data=event.method))
            return
        waiter, function = entry
        for id, candidate in self._waiters.items():
            if candidate is waiter:
                self._arm_timer(id, waiter)  # a callback arrived: the silence timer restarts
                break
        job = _CallbackJob(event, function)
        if waiter.queue is not None:
            waiter.queue.put_nowait(job)  # runs in the awaiting task, in order
        else:
            self._track(self._loop.create_task(self._run_callback(job)))

    async def _run_callback(self, job: _CallbackJob) -> None:
        event = job.event
        params = self._wrap_remote_callbacks(event.params)
        result: Any = None
        error: RpcError | None = None
        try:
            if type(params) is dict:
                result = job.function(**params)
            else:
                result = job.function(*(params or ()))
            if inspect.isawaitable(result):
                result = await result
        except RpcError as exc:
            error = exc
        except Exception:
            log.exception("callback %r raised", event.method)
            error = RpcInternalError()
        if isinstance(event, RequestReceived):
            self._reply(event, result, error)

    def _call_hooks(self, name: str) -> None:
        for cls in self._handler_classes:
            hook = getattr(cls, name, None)
            if hook is None or hook is getattr(Handler, name):
                continue
            bound = getattr(self._handler_instance(cls), name)
            if inspect.iscoroutinefunction(hook):
                self._track(self._loop.create_task(self._run_async_hook(bound, name)))
                continue
            blocks = getattr(hook, "_rpcbd_blocks", getattr(cls, "assume_methods_block", True))
            if blocks and not self._closed_future.done() and self._peer._reserve_worker():
                self._track(self._loop.create_task(self._run_hook_in_thread(bound, name)))
            else:
                _run_hook(bound, name, self.description)

    async def _run_async_hook(self, hook: Callable[[], Any], name: str) -> None:
        try:
            await hook()
        except Exception:
            log.exception("%s hook of %s raised", name, self.description)

    async def _run_hook_in_thread(self, hook: Callable[[], Any], name: str) -> None:
        try:
            await self._loop.run_in_executor(
                self._peer._executor(), partial(_run_hook, hook, name, self.description)
            )
        finally:
            self._peer._release_worker()


def _holds_callback(params: Params) -> bool:
    """Whether ``params`` holds a callable to export as an implicit callback."""
    if not holds_callable(params):
        return False
    values: Any = params.values() if type(params) is dict else params
    return any(map(_is_callback, values))


def _run_job(call: Callable[[], Any], context: CallContext) -> Any:
    """Runs on a worker thread: a call cancelled while queued never starts."""
    if context.cancelled:
        raise RpcCancelledError()
    token = _set_current(context)
    try:
        return call()
    finally:
        _reset_current(token)


def _run_hook(hook: Callable[[], Any], name: str, description: str) -> None:
    try:
        hook()
    except Exception:
        log.exception("%s hook of %s raised", name, description)


class AsyncProxy:
    """Calls that return a key at once; results go to ``result_handler(key, value)``."""

    def __init__(
        self, connection: AsyncConnection, result_handler: Callable[[Any, Any], Any] | None
    ) -> None:
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
        future = connection.call_future(
            method, make_params(args, kwargs), options.get("timeout", _USE_DEFAULT)
        )
        key = _key_of(connection, future)
        if self._result_handler is not None:
            future.add_done_callback(partial(self._report, self._result_handler, key))
        return key

    def _report(
        self, handler: Callable[[Any, Any], Any], key: Any, future: asyncio.Future[Any]
    ) -> None:
        if future.cancelled():
            return
        error = future.exception()
        value = error if error is not None else future.result()
        connection = self._connection
        connection._track(connection._loop.create_task(_call_handler(handler, key, value)))


def _key_of(connection: AsyncConnection, future: asyncio.Future[Any]) -> Any:
    for id, waiter in connection._waiters.items():
        if waiter.future is future:
            return id
    return None  # pragma: no cover - the reply cannot have arrived yet


async def _call_handler(handler: Callable[..., Any], *args: Any) -> None:
    try:
        result = handler(*args)
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception("result handler raised")


class AsyncBatchedCallsProxy(BatchBuilder):
    """Queues requests and notifications, then sends them as one JSON-RPC batch.

    ``b.request.m(...)`` returns the index of its result in the tuple ``await b.send()``
    gives; ``b.notification.m(...)`` queues a notification; ``b.reset()`` empties it.
    """

    def __init__(self, connection: AsyncConnection) -> None:
        super().__init__()
        self._connection = connection

    async def send(
        self,
        response_handler: Callable[[tuple[Any, ...]], Any] | None = None,
        timeout: Any = _USE_DEFAULT,
    ) -> tuple[Any, ...] | None:
        """Send the queued calls as one batch.

        Without ``response_handler``: wait and return a tuple with one entry per queued
        request, in order: its result, or the :class:`~rpcbd.RpcError` instance if it
        failed. With it: return None once sent; ``response_handler(results)`` (plain or
        ``async def``) runs as a task when every reply is in.

        Raises:
            RpcTimeoutError: (waiting) not every reply arrived within ``timeout``.
            ConnectionClosedError: the connection closed first.
            LocalProtocolError: the batch is empty or the dialect has no batches.
        """
        connection = self._connection
        wait = connection._resolve_timeout(timeout)
        entries = list(self._entries)
        await connection._wait_for_call_room(sum(1 for entry in entries if entry[2]))
        futures = connection._send_batch(entries, wait)
        if response_handler is not None:
            task = connection._loop.create_task(self._report(futures, response_handler))
            connection._track(task)
            return None
        return await _outcomes(futures)

    @staticmethod
    async def _report(
        futures: list[asyncio.Future[Any]], handler: Callable[[tuple[Any, ...]], Any]
    ) -> None:
        try:
            results = await _outcomes(futures)
        except TransportError as exc:
            results = tuple(exc for _ in futures)
        await _call_handler(handler, results)


async def _outcomes(futures: list[asyncio.Future[Any]]) -> tuple[Any, ...]:
    try:
        if futures:
            await asyncio.wait(futures)
    except asyncio.CancelledError:
        for future in futures:
            future.cancel()  # sends $/cancelRequest for each
        raise
    results: list[Any] = []
    for future in futures:
        error = future.exception()
        if isinstance(error, TransportError):
            raise error
        results.append(error if error is not None else future.result())
    return tuple(results)
