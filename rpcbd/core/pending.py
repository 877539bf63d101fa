"""Tables of calls in flight, both directions, keyed like HTTP/2 streams."""

from __future__ import annotations

from dataclasses import dataclass, field

from rpcbd.core.events import RequestReceived
from rpcbd.exceptions import LocalProtocolError
from rpcbd.typing import Params, RequestId

__all__ = ["BatchReply", "IncomingCall", "IncomingCalls", "OutgoingCalls"]


class OutgoingCalls(dict[RequestId, str]):
    """This side's calls awaiting a reply: the method of each call, by id.

    Ids are integers counting up from 1 per connection (as rpcbd 0.6 did), so an id is never
    reused while in flight, and a late reply to a call given up on is recognised as ours.
    A caller may choose its own id (a string, say) as long as it is not in flight.

    A ``dict`` itself, so the endpoint's checks on every message (``len()``, truth,
    ``in``) run in C.
    """

    __slots__ = ("_next_id",)

    def __init__(self) -> None:
        super().__init__()
        self._next_id = 1

    def allocate(self, method: str) -> int:
        """Take the next free integer id for a call to ``method``."""
        id = self._next_id
        while id in self:  # only possible if a caller chose integer ids itself
            id += 1
        self._next_id = id + 1
        self[id] = method
        return id

    def add(self, id: RequestId, method: str) -> None:
        """Record a call with a caller-chosen id."""
        if id in self:
            raise LocalProtocolError(f"id {id!r} is already in flight on this connection")
        self[id] = method
        if type(id) is int and id >= self._next_id:
            self._next_id = id + 1

    def finish(self, id: RequestId) -> bool:
        """Remove the call; return whether it was in flight."""
        return self.pop(id, _MISSING) is not _MISSING

    def was_ours(self, id: RequestId) -> bool:
        """Whether ``id`` is an integer id this table handed out earlier."""
        return type(id) is int and 0 < id < self._next_id

    def drain(self) -> tuple[RequestId, ...]:
        """Remove and return every id in flight."""
        ids = tuple(self)
        self.clear()
        return ids


_MISSING = object()


@dataclass(slots=True)
class BatchReply:
    """The replies of one incoming batch, sent as one array once all are in.

    Attributes:
        parts: encoded replies collected so far.
        remaining: requests of the batch not answered yet.
        sealed: True once every member of the batch has been read.
    """

    parts: list[bytes] = field(default_factory=list)
    remaining: int = 0
    sealed: bool = False


@dataclass(slots=True)
class IncomingCall:
    """A request from the peer that this side has not answered yet."""

    event: RequestReceived
    batch: BatchReply | None
    cancelled: bool = False


class IncomingCalls(dict[int, IncomingCall]):
    """The peer's requests awaiting this side's reply, by the endpoint's own key.

    A ``dict`` itself (``len()`` and truth in C, as for :class:`OutgoingCalls`), with an
    index by request id for ``$/cancelRequest``.
    """

    __slots__ = ("_by_id", "_next_key")

    def __init__(self) -> None:
        super().__init__()
        self._next_key = 0
        self._by_id: dict[RequestId, int] = {}

    def receive(
        self, id: RequestId, method: str, params: Params, batch: BatchReply | None
    ) -> RequestReceived:
        """Record a request from the peer under a key no other request on this connection
        has, and return the event that reports it."""
        self._next_key = key = self._next_key + 1
        event = RequestReceived(id, method, params, key)
        self[key] = IncomingCall(event, batch)
        self._by_id[id] = key
        return event

    def add(self, call: IncomingCall) -> None:
        """Record an unanswered request (or put back one whose reply could not be sent)."""
        event = call.event
        self[event.key] = call
        self._by_id[event.id] = event.key

    def take(self, key: int) -> IncomingCall | None:
        """Remove and return the request with this key, or None if it was answered."""
        call = self.pop(key, None)
        if call is not None:
            id = call.event.id
            if self._by_id.get(id) == key:
                del self._by_id[id]
        return call

    def find(self, id: RequestId) -> IncomingCall | None:
        """The most recent unanswered request with this id (ids may be reused by peers)."""
        key = self._by_id.get(id)
        return None if key is None else self.get(key)

    def clear(self) -> None:
        """Forget every request."""
        super().clear()
        self._by_id.clear()
