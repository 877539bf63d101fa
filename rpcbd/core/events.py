"""Events an :class:`~rpcbd.core.Endpoint` reports from :meth:`events_received`.

Every event is a small frozen dataclass under :class:`Event`; names are in the past tense
because each reports something that already happened on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rpcbd.exceptions import ProtocolError, RpcError, TransportError
from rpcbd.typing import Params, RequestId

__all__ = [
    "CancelRequested",
    "ConnectionClosed",
    "ErrorReceived",
    "Event",
    "InvalidMessageReceived",
    "NotificationReceived",
    "RequestReceived",
    "ResponseReceived",
]


class Event:
    """Base class of every endpoint event."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class RequestReceived(Event):
    """The peer called a method and waits for the reply.

    Answer it exactly once with ``endpoint.send_response(event, result)`` or
    ``endpoint.send_error(event, error)``; the endpoint puts the reply into the right batch.

    Attributes:
        id: the request id, as the peer sent it (type kept).
        method: the method name.
        params: a list, a dict, or None.
        key: the endpoint's own number for this request, unique on the connection even if the
            peer reuses ids.
    """

    id: RequestId
    method: str
    params: Params
    key: int


@dataclass(frozen=True, slots=True)
class NotificationReceived(Event):
    """The peer sent a notification; nothing may be sent back for it.

    Attributes:
        method: the method name.
        params: a list, a dict, or None.
    """

    method: str
    params: Params


@dataclass(frozen=True, slots=True)
class ResponseReceived(Event):
    """A call this side made succeeded.

    Attributes:
        id: the id of the call (as returned by ``send_request``).
        result: the JSON result.
    """

    id: RequestId
    result: Any


@dataclass(frozen=True, slots=True)
class ErrorReceived(Event):
    """A call this side made failed on the other side.

    Attributes:
        id: the id of the call.
        error: the error, as the most specific :class:`~rpcbd.RpcError` subclass.
    """

    id: RequestId
    error: RpcError


@dataclass(frozen=True, slots=True)
class CancelRequested(Event):
    """The peer sent ``$/cancelRequest`` for a request this side is still serving.

    The request must still be answered; ``-32800`` (:class:`~rpcbd.RpcCancelledError`) if
    the work stops because of it.

    Attributes:
        request: the :class:`RequestReceived` event being cancelled.
    """

    request: RequestReceived


@dataclass(frozen=True, slots=True)
class InvalidMessageReceived(Event):
    """The peer sent something that breaks the protocol.

    If it was a request, the endpoint has already queued the error reply. Informational:
    the runtime logs it. When ``fatal`` is true the stream cannot continue and
    :meth:`~rpcbd.core.Endpoint.close_expected` is now true.

    Attributes:
        error: what was wrong: an :class:`~rpcbd.RpcError` for a bad message, a
            :class:`~rpcbd.RemoteProtocolError` (such as a framing error) otherwise.
        id: the id of the bad message, if it had a readable one.
        fatal: whether the connection must close.
    """

    error: RpcError | ProtocolError
    id: RequestId = None
    fatal: bool = False


@dataclass(frozen=True, slots=True)
class ConnectionClosed(Event):
    """The connection ended; always the last event.

    Attributes:
        error: why: a :class:`~rpcbd.TransportError` such as ``ConnectionClosedError``.
        failed_calls: ids of this side's calls that were still in flight; each has failed
            with ``error`` and gets no other event.
        by_peer: True if the peer closed (end of stream), False if this side did.
    """

    error: TransportError
    failed_calls: tuple[RequestId, ...] = ()
    by_peer: bool = False
