"""Tables of calls in flight, both directions, keyed like HTTP/2 streams."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rpcbd.exceptions import LocalProtocolError
from rpcbd.typing import RequestId

if TYPE_CHECKING:
    from rpcbd.core.events import RequestReceived

__all__ = ["BatchReply", "IncomingCall", "IncomingCalls", "OutgoingCalls"]


class OutgoingCalls:
    """This side's calls awaiting a reply.

    Ids are integers counting up from 1 per connection (as rpcbd 0.6 did), so an id is never
    reused while in flight, and a late reply to a call given up on is recognised as ours.
    A caller may choose its own id (a string, say) as long as it is not in flight.
    """

    __slots__ = ("_calls", "_next_id")

    def __init__(self) -> None:
        self._next_id = 1
        self._calls: dict[RequestId, str] = {}

    def allocate(self, method: str) -> int:
        """Take the next free integer id for a call to ``method``."""
        id = self._next_id
        while id in self._calls:  # only possible if a caller chose integer ids itself
            id += 1
        self._next_id = id + 1
        self._calls[id] = method
        return id

    def add(self, id: RequestId, method: str) -> None:
        """Record a call with a caller-chosen id."""
        if id in self._calls:
            raise LocalProtocolError(f"id {id!r} is already in flight on this connection")
        self._calls[id] = method
        if type(id) is int and id >= self._next_id:
            self._next_id = id + 1

    def finish(self, id: RequestId) -> bool:
        """Remove the call; return whether it was in flight."""
        return self._calls.pop(id, _MISSING) is not _MISSING

    def was_ours(self, id: RequestId) -> bool:
        """Whether ``id`` is an integer id this table handed out earlier."""
        return type(id) is int and 0 < id < self._next_id

    def drain(self) -> tuple[RequestId, ...]:
        """Remove and return every id in flight."""
        ids = tuple(self._calls)
        self._calls.clear()
        return ids

    def __contains__(self, id: RequestId) -> bool:
        return id in self._calls

    def __len__(self) -> int:
        return len(self._calls)


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


class IncomingCalls:
    """The peer's requests awaiting this side's reply, keyed by the endpoint's own key."""

    __slots__ = ("_by_id", "_by_key", "_next_key")

    def __init__(self) -> None:
        self._next_key = 0
        self._by_key: dict[int, IncomingCall] = {}
        self._by_id: dict[RequestId, int] = {}

    def next_key(self) -> int:
        """A key no other incoming request on this connection has."""
        self._next_key += 1
        return self._next_key

    def add(self, call: IncomingCall) -> None:
        self._by_key[call.event.key] = call
        self._by_id[call.event.id] = call.event.key

    def pop(self, key: int) -> IncomingCall | None:
        call = self._by_key.pop(key, None)
        if call is not None and self._by_id.get(call.event.id) == key:
            del self._by_id[call.event.id]
        return call

    def find(self, id: RequestId) -> IncomingCall | None:
        """The most recent unanswered request with this id (ids may be reused by peers)."""
        key = self._by_id.get(id)
        return None if key is None else self._by_key.get(key)

    def clear(self) -> None:
        self._by_key.clear()
        self._by_id.clear()

    def __len__(self) -> int:
        return len(self._by_key)
