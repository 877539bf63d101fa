"""The sans-IO JSON-RPC endpoint: bytes in, events and bytes out.

An :class:`Endpoint` is one side of one connection. It does no I/O and reads no clock; the
runtime that owns it follows the same few steps every time (see STYLE.md, practice 8)::

    endpoint.receive_data(chunk)            # or receive_message(msg), receive_eof()
    for event in endpoint.events_received():
        ...                                 # dispatch requests, complete calls
    transport.write(b"".join(endpoint.data_to_send()))
    if endpoint.close_expected():
        transport.close()

Sending works the same way: ``send_request`` / ``send_notification`` / ``send_response`` /
``send_error`` / ``send_batch`` / ``cancel_call`` queue bytes that ``data_to_send()`` hands
out. Receiving can make the endpoint send by itself (a -32700 or -32600 reply to bad input,
a batch reply), which is why output always goes through that buffer.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from rpcbd.codecs.base import DEFAULT_MAX_MESSAGE_SIZE, Deframer, Dialect, Framing
from rpcbd.codecs.framing import get_framing
from rpcbd.codecs.newline import NewlineFraming
from rpcbd.codecs.serializer import (
    DEFAULT_MAX_NESTING_DEPTH,
    JsonDecodeError,
    Serializer,
    default_serializer,
    nesting_depth_exceeds,
)
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
from rpcbd.core.messages import ErrorResponse, Invalid, Notification, Request, Response
from rpcbd.core.pending import BatchReply, IncomingCall, IncomingCalls, OutgoingCalls
from rpcbd.core.state import ConnectionState, Input, State
from rpcbd.exceptions import (
    ConnectionClosedError,
    FramingError,
    LocalProtocolError,
    MessageTooLargeError,
    RemoteProtocolError,
    RpcError,
    RpcInvalidError,
    RpcParseError,
    RpcServerBusyError,
    TransportError,
)
from rpcbd.typing import Params, RequestId

__all__ = [
    "DEFAULT_MAX_BATCH_SIZE",
    "DEFAULT_MAX_CALLS_IN_FLIGHT",
    "DEFAULT_MAX_PENDING_REQUESTS",
    "BatchEntry",
    "Endpoint",
    "TraceHook",
]

#: Default bound on the peer's unanswered requests per connection (``max_pending_requests``).
DEFAULT_MAX_PENDING_REQUESTS = 128
#: Default bound on this side's calls awaiting a reply per connection (``max_calls_in_flight``).
DEFAULT_MAX_CALLS_IN_FLIGHT = 1024
#: Default bound on the number of members in one incoming batch (``max_batch_size``).
DEFAULT_MAX_BATCH_SIZE = 1000

# Looking a member up on an Enum class costs a metaclass call (about 60 ns on CPython
# 3.11); the state is compared with OPEN several times per message.
_OPEN = State.OPEN
#: No limit on the events one call of events_received() parses.
_NO_LIMIT = 1 << 60  # (a small int for mypyc, whose tagged ints end at 2**62)

#: ``(direction, payload)``: direction is ``"-->"`` for sent, ``"<--"`` for received.
TraceHook = Callable[[str, bytes], None]

#: One member of an outgoing batch: ``(method, params, expects_reply)``.
BatchEntry = tuple[str, Params, bool]


def _is_valid_id(value: Any) -> bool:
    # The same rule as rpcbd.codecs.jsonrpc2.is_valid_id (importing it here would be
    # circular): a string, a finite number or null, and a bool is not a number.
    kind = type(value)
    return value is None or kind is int or kind is str or (kind is float and math.isfinite(value))


class _MessageQueue(Deframer):
    """Stands in for a deframer on message transports (WebSocket): each message is a frame."""

    def __init__(self, max_message_size: int) -> None:
        super().__init__(max_message_size)
        self._queue: deque[bytes | FramingError] = deque()
        self._size = 0

    def feed(self, data: bytes | bytearray) -> None:
        if len(data) > self.max_message_size:
            self._queue.append(MessageTooLargeError(self.max_message_size, recoverable=True))
            return
        # bytes() returns an exact bytes object itself; a bytearray is copied, since its
        # owner may reuse it.
        self._queue.append(bytes(data))
        self._size += len(data)

    def next_frame(self) -> bytes | FramingError | None:
        if not self._queue:
            return None
        frame = self._queue.popleft()
        if type(frame) is bytes:
            self._size -= len(frame)
        return frame

    def feed_eof(self) -> FramingError | None:
        return None

    @property
    def buffered(self) -> int:
        return self._size


class Endpoint:
    """One side of a JSON-RPC connection, as a state machine over bytes.

    Args:
        dialect: ``JSONRPC_V2`` (default) or ``JSONRPC_V1``.
        framing: a framing name (``"newline"``, ``"content-length"``, ``"eot"``,
            ``"netstring"``, ``"length-prefix"``, ``"json-stream"``) or
            :class:`~rpcbd.codecs.base.Framing`; ``None`` for message transports, which
            then use :meth:`receive_message` and get one message per ``data_to_send()`` item.
        max_message_size: the largest message read, in bytes (default 16 MiB).
        max_batch_size: the most members an incoming batch may have (default 1000).
        max_pending_requests: the most unanswered requests from the peer (default 128).
            At the bound, :meth:`wants_data` turns false so the runtime stops reading
            (the peer feels flow control) — unless this side has a call of its own in
            flight, because then its reply must get through: requests beyond the bound
            are answered ``-32000`` (server busy) at once instead.
        max_calls_in_flight: the most calls of this side awaiting replies (default 1024);
            beyond it ``send_request`` raises :class:`~rpcbd.LocalProtocolError` (runtimes
            make callers wait for room instead, see :attr:`can_send_request`).
        max_nesting_depth: the deepest array/object nesting read (default 512); deeper
            input is answered ``-32600`` with ``data`` ``{"reason": "nesting too deep",
            "limit": N}`` and never reaches the JSON parser's recursion.
        serializer: the JSON serializer (default: orjson if installed, else ``json``).
        trace: called with ``("-->", payload)`` for every message sent and
            ``("<--", payload)`` for every message received.
    """

    def __init__(
        self,
        dialect: Dialect | None = None,
        framing: str | Framing | None = "newline",
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        max_pending_requests: int = DEFAULT_MAX_PENDING_REQUESTS,
        max_calls_in_flight: int = DEFAULT_MAX_CALLS_IN_FLIGHT,
        max_nesting_depth: int = DEFAULT_MAX_NESTING_DEPTH,
        serializer: Serializer | None = None,
        trace: TraceHook | None = None,
    ) -> None:
        # Imported here: rpcbd.codecs.jsonrpc2 imports rpcbd.core (circular at import time).
        from rpcbd.codecs.jsonrpc2 import JSONRPC_V2, JsonRpc2, _common_shape

        if dialect is None:
            dialect = JSONRPC_V2
        if min(max_batch_size, max_pending_requests, max_calls_in_flight, max_nesting_depth) < 1:
            raise ValueError(
                "max_batch_size, max_pending_requests, max_calls_in_flight and "
                "max_nesting_depth must be positive"
            )
        self._dialect = dialect
        self._framing = None if framing is None else get_framing(framing)
        self._deframer: Deframer = (
            _MessageQueue(max_message_size)
            if self._framing is None
            else self._framing.deframer(max_message_size)
        )
        self._frame = None if self._framing is None else self._framing.frame
        # The newline framing is inlined in _queue_payload (one call less per message);
        # a subclass may frame differently, so only the class itself.
        self._newline = type(self._framing) is NewlineFraming
        self._decode = dialect.decode
        self._batches = dialect.supports_batches
        # JSON-RPC 2.0's fast path gives the members of the common messages, from which
        # the events are built directly (no message object in between). Only for the class
        # itself: a subclass may decode differently.
        self._common_shape = _common_shape if type(dialect) is JsonRpc2 else None
        self._serializer = serializer if serializer is not None else default_serializer()
        self._dumps = self._serializer.dumps
        self._loads = self._serializer.loads
        self._max_message_size = max_message_size
        self._max_batch_size = max_batch_size
        self._max_pending_requests = max_pending_requests
        self._max_calls_in_flight = max_calls_in_flight
        self._max_nesting_depth = max_nesting_depth
        self.trace = trace
        self._state = ConnectionState()
        self._outgoing = OutgoingCalls()
        self._incoming = IncomingCalls()
        self._events: list[Event] = []
        self._out: list[bytes] = []
        self._out_size = 0

    # -- properties --------------------------------------------------------------------

    @property
    def state(self) -> State:
        """The connection's :class:`~rpcbd.core.State`."""
        return self._state.state

    @property
    def dialect(self) -> Dialect:
        """The JSON-RPC version spoken."""
        return self._dialect

    @property
    def framing(self) -> Framing | None:
        """The framing of a stream endpoint; None for a message endpoint."""
        return self._framing

    @property
    def max_message_size(self) -> int:
        """The largest message this endpoint reads, in bytes."""
        return self._max_message_size

    @property
    def calls_in_flight(self) -> int:
        """This side's calls that await a reply."""
        return len(self._outgoing)

    @property
    def requests_in_flight(self) -> int:
        """The peer's requests that this side has not answered yet."""
        return len(self._incoming)

    @property
    def partial_message_pending(self) -> bool:
        """Whether bytes of an incomplete frame are buffered (stream endpoints). Runtimes
        use it to bound how long a half-sent message may hold memory (slow loris)."""
        return self._frame is not None and self._deframer.buffered > 0

    @property
    def can_send_request(self) -> bool:
        """False while this side's calls in flight are at ``max_calls_in_flight``."""
        return len(self._outgoing) < self._max_calls_in_flight

    @property
    def bytes_to_send(self) -> int:
        """Bytes queued and not yet taken by :meth:`data_to_send`."""
        return self._out_size

    # -- sending -----------------------------------------------------------------------

    def _check_send(self) -> None:
        # Fast path: (OPEN, SEND) -> OPEN is in the table; other states go through it.
        if self._state.state is not _OPEN:
            self._state.process(Input.SEND)

    def _check_params(self, params: Any) -> Params:
        # Any, not Params: callers (runtimes, users without a type checker) pass tuples too.
        if params is None or type(params) is list:
            return params
        if type(params) is tuple:
            return list(params)
        if isinstance(params, dict):
            if not self._dialect.supports_named_params:
                raise LocalProtocolError(
                    f"JSON-RPC {self._dialect.version} has no named parameters"
                )
            return params
        if isinstance(params, list):
            return params
        raise LocalProtocolError("params must be a list, a dict or None")

    def _encode(self, message: dict[str, Any]) -> bytes:
        try:
            return self._dumps(message)
        except (TypeError, ValueError) as exc:
            raise LocalProtocolError(f"cannot encode message as JSON: {exc}") from exc

    def _encode_outgoing(self, message: dict[str, Any]) -> bytes:
        """Encode a message the user sends; the endpoint's own error replies are small
        and never refused."""
        payload = self._encode(message)
        if len(payload) > self._max_message_size:
            # A peer with the same limit would refuse it, and could not even say which
            # call failed (the id is inside the skipped body): fail here, at once.
            raise LocalProtocolError(
                f"message of {len(payload)} bytes is over max_message_size "
                f"({self._max_message_size}); raise the limit on both sides to send it"
            )
        return payload

    def _queue_payload(self, payload: bytes) -> None:
        if self.trace is not None:
            self.trace("-->", payload)
        if self._newline and payload.find(b"\n") < 0:
            # NewlineFraming.frame() without the call. The check stays: compact JSON has no
            # raw newline, but orjson copies an orjson.Fragment's bytes as they are, and
            # frame() is what refuses such a payload (ValueError) below. (find(), not `in`:
            # on CPython `in` first tries the operand as an integer, which costs as much
            # as the search itself on a short payload.)
            data = payload + b"\n"
        elif self._frame is None:
            data = payload
        else:
            data = self._frame(payload)
        self._out.append(data)
        self._out_size += len(data)

    # The arguments a user passes in are annotated Any and checked in the body: compiled
    # (mypyc), an annotated argument is type-checked on entry, and a bad params or id
    # would raise TypeError instead of the documented LocalProtocolError.
    def send_request(self, method: str, params: Any = None, *, id: Any = None) -> RequestId:
        """Queue a request and record it as in flight.

        Args:
            method: the method to call.
            params: a list (positional), a dict (named; 2.0 only) or None.
            id: an id of the caller's choosing; by default the next integer.

        Returns:
            The id; the reply comes back as a :class:`ResponseReceived` or
            :class:`ErrorReceived` event with it, or the id is listed in
            :class:`ConnectionClosed`'s ``failed_calls``.

        Raises:
            LocalProtocolError: the connection is not open, the params do not fit the
                dialect, the id is in flight already or is not a string or a number, or
                the params are not JSON.
        """
        if self._state.state is not _OPEN:  # _check_send(), inlined: once per call
            self._state.process(Input.SEND)
        if params is not None and type(params) is not list:  # lists need no conversion
            params = self._check_params(params)
        if len(self._outgoing) >= self._max_calls_in_flight:
            raise LocalProtocolError(
                f"{len(self._outgoing)} calls in flight already (max_calls_in_flight)"
            )
        call_id: RequestId
        if id is None:
            call_id = self._outgoing.allocate(method)
        elif not _is_valid_id(id):
            # Also refuses True/False: JSON has them, but they are not ids.
            raise LocalProtocolError(f"a request id must be a string or a number, not {id!r}")
        else:
            call_id = id
            self._outgoing.add(call_id, method)
        try:
            payload = self._encode_outgoing(self._dialect.request(method, params, call_id))
        except LocalProtocolError:
            self._outgoing.finish(call_id)
            raise
        self._queue_payload(payload)
        return call_id

    def send_notification(self, method: str, params: Any = None) -> None:
        """Queue a notification (no reply will come).

        Raises:
            LocalProtocolError: as for :meth:`send_request`.
        """
        if self._state.state is not _OPEN:  # _check_send(), inlined: once per notification
            self._state.process(Input.SEND)
        if params is not None and type(params) is not list:  # lists need no conversion
            params = self._check_params(params)
        self._queue_payload(self._encode_outgoing(self._dialect.notification(method, params)))

    def send_batch(self, entries: Sequence[BatchEntry]) -> list[RequestId]:
        """Queue one batch (a JSON array) of requests and notifications.

        Args:
            entries: ``(method, params, expects_reply)`` triples; ``expects_reply=False``
                makes a notification.

        Returns:
            One item per entry: the request's id, or None for a notification.

        Raises:
            LocalProtocolError: the dialect has no batches (1.0), the batch is empty, or as
                for :meth:`send_request`.
        """
        # Not BatchEntry: each member's params are checked below (see send_request).
        members: Sequence[Any] = entries
        self._check_send()
        if not self._dialect.supports_batches:
            raise LocalProtocolError(f"JSON-RPC {self._dialect.version} has no batches")
        if not members:
            raise LocalProtocolError("a batch needs at least one member (the spec forbids [])")
        expecting = sum(1 for entry in members if entry[2])
        if len(self._outgoing) + expecting > self._max_calls_in_flight:
            raise LocalProtocolError(
                f"{expecting} more calls would exceed max_calls_in_flight "
                f"({self._max_calls_in_flight})"
            )
        ids: list[RequestId] = []
        parts: list[bytes] = []
        try:
            for method, params, expects_reply in members:
                params = self._check_params(params)
                if expects_reply:
                    id: RequestId = self._outgoing.allocate(method)
                    ids.append(id)
                    parts.append(self._encode_outgoing(self._dialect.request(method, params, id)))
                else:
                    ids.append(None)
                    parts.append(self._encode_outgoing(self._dialect.notification(method, params)))
        except LocalProtocolError:
            for id in ids:
                if id is not None:
                    self._outgoing.finish(id)
            raise
        self._queue_payload(b"[" + b",".join(parts) + b"]")
        return ids

    def _take_incoming(self, request: RequestReceived) -> IncomingCall:
        if self._state.state is not _OPEN:  # _check_send(), inlined: once per reply
            self._state.process(Input.SEND)
        call = self._incoming.take(request.key)
        if call is None:
            raise LocalProtocolError(
                f"request {request.id!r} ({request.method}) was answered already"
            )
        return call

    def _queue_reply(self, call: IncomingCall, payload: bytes) -> None:
        batch = call.batch
        if batch is None:
            self._queue_payload(payload)
            return
        batch.parts.append(payload)
        batch.remaining -= 1
        if batch.remaining == 0 and batch.sealed:
            self._queue_payload(b"[" + b",".join(batch.parts) + b"]")

    def send_response(self, request: RequestReceived, result: Any) -> None:
        """Answer ``request`` with ``result``.

        A request that came in a batch is answered in that batch's reply array, which is
        sent once every member is answered.

        Raises:
            LocalProtocolError: the request was answered already, the connection is closed,
                or ``result`` is not JSON (then the request is still unanswered, so the
                caller can send an error instead).
        """
        call = self._take_incoming(request)
        try:
            payload = self._encode_outgoing(self._dialect.response(request.id, result))
        except LocalProtocolError:
            self._incoming.add(call)
            raise
        if call.batch is None:
            self._queue_payload(payload)  # the common case, without _queue_reply()
        else:
            self._queue_reply(call, payload)

    def send_error(self, request: RequestReceived, error: RpcError) -> None:
        """Answer ``request`` with an error.

        Raises:
            LocalProtocolError: as for :meth:`send_response` (``error.data`` must be JSON).
        """
        call = self._take_incoming(request)
        try:
            payload = self._encode_outgoing(self._dialect.error_response(request.id, error))
        except LocalProtocolError:
            self._incoming.add(call)
            raise
        self._queue_reply(call, payload)

    def is_cancelled(self, request: RequestReceived) -> bool:
        """Whether the peer has sent ``$/cancelRequest`` for this unanswered request."""
        call = self._incoming.find(request.id)
        return call is not None and call.event.key == request.key and call.cancelled

    def cancel_call(self, id: RequestId, *, notify: bool = True) -> bool:
        """Stop waiting for this side's call ``id`` (it timed out, or its caller gave up).

        The call leaves the table of calls in flight, so a late reply is dropped quietly.
        With ``notify`` (and a dialect that has the convention, i.e. 2.0) the peer is sent
        ``$/cancelRequest {"id": id}`` so it can stop the work.

        Returns:
            True if the call was in flight; False if it had ended already (its reply event
            was reported or is about to be).
        """
        if not self._outgoing.finish(id):
            return False
        method = self._dialect.cancel_method
        if notify and method is not None and self._state.state is _OPEN:
            self._queue_payload(self._encode(self._dialect.notification(method, {"id": id})))
        return True

    def close(self) -> None:
        """Close this side. Every call in flight fails at once (see :class:`ConnectionClosed`).

        Idempotent. Replies to requests still being served are refused afterwards.
        """
        if self._state.state is State.CLOSED:
            return
        self._state.process(Input.CLOSE)
        self._end(ConnectionClosedError("connection closed"), by_peer=False)

    # -- receiving ---------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray) -> None:
        """Feed bytes read from a stream transport. Then call :meth:`events_received`.

        Raises:
            LocalProtocolError: this is a message endpoint (``framing=None``), or the peer's
                end of stream was already received.
            RemoteProtocolError: the peer broke the framing earlier (state ``ERROR``).
        """
        if self._frame is None:
            raise LocalProtocolError("this endpoint reads whole messages: use receive_message")
        if self._state.state is not _OPEN:
            # The table refuses (ERROR) or keeps CLOSED, where late bytes are dropped.
            self._state.process(Input.RECEIVE)
            return
        self._deframer.feed(data)

    def receive_message(self, message: bytes | bytearray | str) -> None:
        """Feed one whole message from a message transport (a WebSocket frame).

        Raises:
            LocalProtocolError: this is a stream endpoint.
        """
        if self._frame is not None:
            raise LocalProtocolError("this endpoint reads a byte stream: use receive_data")
        if self._state.state is not _OPEN:
            # The table refuses (ERROR) or keeps CLOSED, where late bytes are dropped.
            self._state.process(Input.RECEIVE)
            return
        if isinstance(message, str):
            try:
                message = message.encode("utf-8")
            except UnicodeEncodeError:
                message = b"\xff"  # not UTF-8: reported as a parse error like any bad bytes
        self._deframer.feed(message)

    def receive_eof(self) -> None:
        """The peer's stream ended. Every call in flight fails; :class:`ConnectionClosed`
        is the last event. Idempotent."""
        if self._state.state is State.CLOSED:
            return
        if self._state.state is _OPEN:
            self._process_frames(True)  # every frame: replies must be read, whatever the bound
            if self._state.state is _OPEN:
                problem = self._deframer.feed_eof()
                if problem is not None:
                    self._events.append(InvalidMessageReceived(problem, None, fatal=True))
        self._state.process(Input.RECEIVE_EOF)
        self._end(ConnectionClosedError("connection closed by peer"), by_peer=True)

    # -- output ------------------------------------------------------------------------

    def events_received(self, limit: int | None = None) -> list[Event]:
        """Parse what was received and return the events, oldest first.

        Also the place where reading resumes after a pause: call it again after answering
        requests when :meth:`wants_data` was false.

        Args:
            limit: stop parsing once this many events are ready (a batch message can give
                more); the frames after them stay buffered, and the next call goes on
                from there, so call again until an empty list comes back. A runtime that
                dispatches each batch before taking the next keeps the objects of one
                large read from piling up: every event holds its params until it is
                dispatched, and CPython's cyclic garbage collector runs whenever
                allocations outnumber frees by 700. None (the default): every frame
                received so far.
        """
        if self._state.state is _OPEN:
            self._process_frames(False, limit)
        events = self._events
        if events:
            self._events = []
        return events

    def data_to_send(self) -> list[bytes]:
        """Take the bytes queued for the peer: framed chunks for a stream endpoint (write
        them in order), whole messages for a message endpoint (one per transport message)."""
        out = self._out
        if out:
            self._out = []
            self._out_size = 0
        return out

    def close_expected(self) -> bool:
        """Whether the runtime should close the transport after flushing ``data_to_send()``
        (the connection is closed, or the peer broke the framing beyond repair)."""
        return self._state.state is not _OPEN

    def wants_data(self) -> bool:
        """Whether the runtime should read more from the transport now.

        False while the peer's unanswered requests are at ``max_pending_requests`` and
        this side has no call in flight (so the peer feels flow control instead of memory
        growing); true again once replies free room. Always false once not open.
        """
        if self._state.state is not _OPEN:
            return False
        return len(self._incoming) < self._max_pending_requests or len(self._outgoing) > 0

    # -- internals ---------------------------------------------------------------------

    def _process_frames(self, ignore_bound: bool, limit: int | None = None) -> None:
        next_frame = self._deframer.next_frame
        connection = self._state
        incoming = self._incoming
        outgoing = self._outgoing
        bound = self._max_pending_requests
        events = self._events
        most = _NO_LIMIT if limit is None else limit
        while connection.state is _OPEN:
            if not ignore_bound and len(incoming) >= bound and not outgoing:
                return  # paused: the rest stays in the deframer until replies free room
            if len(events) >= most:
                return  # a batch is ready (events_received's limit)
            frame = next_frame()
            if frame is None:
                return
            if type(frame) is bytes:
                self._handle_payload(frame)
            else:
                assert isinstance(frame, FramingError)
                self._handle_framing_error(frame)

    def _handle_framing_error(self, error: FramingError) -> None:
        if isinstance(error, MessageTooLargeError):
            reply: RpcError = RpcInvalidError(
                "Message too large", data={"reason": "message too large", "limit": error.limit}
            )
        else:
            reply = RpcParseError(data={"reason": error.reason})
        self._queue_payload(self._encode(self._dialect.error_response(None, reply)))
        self._events.append(InvalidMessageReceived(error, None, fatal=not error.recoverable))
        if not error.recoverable:
            self._state.process(Input.PROTOCOL_ERROR)

    def _handle_payload(self, payload: bytes) -> None:
        if self.trace is not None:
            self.trace("<--", payload)
        # A text no longer than the limit cannot nest deeper than it: skip the call for
        # every ordinary message (the serializers do not check again).
        limit = self._max_nesting_depth
        if len(payload) > limit and nesting_depth_exceeds(payload, limit):
            error: RpcError = RpcInvalidError(
                data={"reason": "nesting too deep", "limit": self._max_nesting_depth}
            )
            self._queue_payload(self._encode(self._dialect.error_response(None, error)))
            self._events.append(InvalidMessageReceived(error))
            return
        try:
            value = self._loads(payload)
        except JsonDecodeError as exc:
            error = RpcParseError(data={"reason": str(exc)[:200]})
            self._queue_payload(self._encode(self._dialect.error_response(None, error)))
            self._events.append(InvalidMessageReceived(error))
            return
        if type(value) is list and self._batches:
            self._handle_batch(value)
            return
        common_shape = self._common_shape
        shape = None if common_shape is None else common_shape(value)
        if shape is None:
            self._handle_item(self._decode(value), None)
            return
        # What _handle_item() does with the Request, Notification or Response that
        # decode() would have made of these members.
        method, params_or_result, id = shape
        if method is None:
            self._handle_result(id, params_or_result)
        elif id is None:
            self._handle_notification(method, params_or_result)
        else:
            self._handle_request(id, method, params_or_result, None)

    def _handle_batch(self, values: list[Any]) -> None:
        # "If the batch rpc call itself fails to be recognized as an valid JSON or as an
        # Array with at least one value, the response from the Server MUST be a single
        # Response object." (spec section 6)
        if not values or len(values) > self._max_batch_size:
            data: Any = (
                "empty batch"
                if not values
                else {"reason": "batch too large", "limit": self._max_batch_size}
            )
            error = RpcInvalidError(data=data)
            self._queue_payload(self._encode(self._dialect.error_response(None, error)))
            self._events.append(InvalidMessageReceived(error))
            return
        batch = BatchReply()
        decode = self._decode
        for value in values:
            self._handle_item(decode(value), batch)
        batch.sealed = True
        # "If there are no Response objects contained within the Response array as it is
        # to be sent to the client, the server MUST NOT return an empty Array and should
        # return nothing at all."
        if batch.remaining == 0 and batch.parts:
            self._queue_payload(b"[" + b",".join(batch.parts) + b"]")

    def _reply_now(self, id: RequestId, error: RpcError, batch: BatchReply | None) -> None:
        payload = self._encode(self._dialect.error_response(id, error))
        if batch is None:
            self._queue_payload(payload)
        else:
            batch.parts.append(payload)

    def _handle_item(
        self,
        item: Request | Notification | Response | ErrorResponse | Invalid,
        batch: BatchReply | None,
    ) -> None:
        # Exact type checks (messages are never subclassed) narrow as well as isinstance()
        # and cost less; requests first, the most frequent item.
        if type(item) is Request:
            self._handle_request(item.id, item.method, item.params, batch)
        elif type(item) is Response:
            self._handle_result(item.id, item.result)
        elif type(item) is Notification:
            self._handle_notification(item.method, item.params)
        elif type(item) is ErrorResponse:
            if self._outgoing.finish(item.id):
                self._events.append(ErrorReceived(item.id, item.error))
            else:
                self._unexpected_reply(item.id)
        else:
            assert isinstance(item, Invalid)
            if not item.is_response:
                self._reply_now(item.id, item.error, batch)
            self._events.append(InvalidMessageReceived(item.error, item.id))

    def _handle_request(
        self, id: RequestId, method: str, params: Params, batch: BatchReply | None
    ) -> None:
        incoming = self._incoming
        if batch is None and len(incoming) >= self._max_pending_requests:
            # Only reachable while this side has a call in flight (else reading is
            # paused): the reader must keep reading so that reply gets through.
            self._reply_now(
                id,
                RpcServerBusyError(
                    data={
                        "reason": "too many requests in flight",
                        "limit": self._max_pending_requests,
                    }
                ),
                None,
            )
            return
        event = incoming.receive(id, method, params, batch)
        if batch is not None:
            batch.remaining += 1
        self._events.append(event)

    def _handle_result(self, id: RequestId, result: Any) -> None:
        if self._outgoing.finish(id):
            self._events.append(ResponseReceived(id, result))
        else:
            self._unexpected_reply(id)

    def _unexpected_reply(self, id: RequestId) -> None:
        if not self._outgoing.was_ours(id):
            # A late reply to a call given up on is dropped quietly; anything else is
            # the peer's mistake, reported (never answered: replies are not answered).
            self._events.append(
                InvalidMessageReceived(RemoteProtocolError(f"reply to unknown id {id!r}"), id)
            )

    def _handle_notification(self, method: str, params: Params) -> None:
        if method == "$/cancelRequest":
            self._handle_cancel(params)
        else:
            self._events.append(NotificationReceived(method, params))

    def _handle_cancel(self, params: Params) -> None:
        # LSP: "params: CancelParams" with "id: integer | string". A notification is never
        # answered, so a malformed one is only reported.
        if not isinstance(params, dict) or "id" not in params:
            self._events.append(
                InvalidMessageReceived(RemoteProtocolError("$/cancelRequest without an id"))
            )
            return
        id = params["id"]
        if not _is_valid_id(id):
            # An array or object is not an id, and would not even be hashable.
            self._events.append(
                InvalidMessageReceived(RemoteProtocolError("$/cancelRequest with an invalid id"))
            )
            return
        call = self._incoming.find(id)
        if call is not None and not call.cancelled:
            call.cancelled = True
            self._events.append(CancelRequested(call.event))
        # A cancel for a request already answered (or never seen) is ignored: it raced
        # with the reply, which is normal.

    def _end(self, error: TransportError, *, by_peer: bool) -> None:
        failed = self._outgoing.drain()
        self._incoming.clear()
        self._events.append(ConnectionClosed(error, failed, by_peer))
