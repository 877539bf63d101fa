"""A hypothesis state machine: two Endpoints joined by a hostile wire.

Unlike tests/core/test_endpoint_properties.py (which delivers bytes faithfully and injects
garbage as whole messages), every chunk here sits on the wire until a rule delivers it, and
the wire may drop, duplicate, corrupt, truncate, split or reorder it. Whatever the wire
does, the promises hold:

- only documented exceptions escape (``LocalProtocolError`` when sending on an endpoint
  that is not open; nothing at all from receiving while ``close_expected()`` is false);
- every call this side made ends at most once, by a reply, a ``cancel_call`` or the
  ``ConnectionClosed`` event; after ``close()`` (or end of stream) every call has ended
  exactly once and ``ConnectionClosed`` was the last event, reported once;
- what an endpoint buffers for a half-received frame stays under its ``max_message_size``
  plus a header allowance.

The example budget is small by default (the suite stays fast); set ``RPCBD_FUZZ_EXAMPLES``
to run more.
"""

from __future__ import annotations

import os
from collections import deque
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from rpcbd.codecs.base import Dialect
from rpcbd.codecs.content_length import MAX_HEADER_SIZE
from rpcbd.codecs.framing import FRAMINGS
from rpcbd.codecs.jsonrpc1 import JSONRPC_V1
from rpcbd.codecs.jsonrpc2 import JSONRPC_V2
from rpcbd.core import Endpoint, State
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
from rpcbd.exceptions import LocalProtocolError, RpcError
from rpcbd.typing import RequestId

EXAMPLES = int(os.environ.get("RPCBD_FUZZ_EXAMPLES", "150"))
MAX_MESSAGE_SIZE = 2048
SIDES = st.sampled_from(["a", "b"])
VALUES = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.text(max_size=10))
PARAMS = st.one_of(st.none(), st.lists(VALUES, max_size=3))
METHODS = st.sampled_from(["echo", "a.b", "$/progress", "rpc.callback.x", "\u00e9"])
#: Faithful delivery is the most common case, so that calls get answered at all.
MUTATIONS = st.sampled_from(
    ["deliver"] * 4 + ["drop", "duplicate", "duplicate", "corrupt", "truncate", "split"]
)
#: close and end_of_stream act on one draw in this many (else the machine is over at once).
RARELY = st.integers(0, 7)


class Side:
    """One endpoint and the test's ledger of its calls."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.outstanding: set[RequestId] = set()  # sent, not ended
        self.ended: dict[RequestId, int] = {}  # how many times each call ended
        self.requests: list[RequestReceived] = []  # to answer
        self.closed_events = 0
        self.wire: deque[bytes] = deque()  # what this side sent, not yet delivered

    def end(self, id: RequestId, how: str) -> None:
        assert id in self.outstanding, f"call {id!r} ended again ({how})"
        self.outstanding.discard(id)
        self.ended[id] = self.ended.get(id, 0) + 1


class HostileWire(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.sides: dict[str, Side] = {}
        self.dialect: Dialect = JSONRPC_V2

    @initialize(
        framing=st.sampled_from([*sorted(FRAMINGS), None]),
        dialect=st.sampled_from([JSONRPC_V2, JSONRPC_V1]),
    )
    def start(self, framing: str | None, dialect: Dialect) -> None:
        self.dialect = dialect
        for name in ("a", "b"):
            self.sides[name] = Side(
                Endpoint(
                    dialect,
                    framing,
                    max_message_size=MAX_MESSAGE_SIZE,
                    max_batch_size=4,
                    max_pending_requests=8,
                    max_calls_in_flight=16,
                )
            )

    def other(self, name: str) -> str:
        return "b" if name == "a" else "a"

    # -- this side acts ---------------------------------------------------------------

    def _sending(self, side: Side) -> bool:
        """Whether sends may succeed; when not, they must raise LocalProtocolError."""
        return side.endpoint.state is State.OPEN

    @rule(name=SIDES, method=METHODS, params=PARAMS)
    def call(self, name: str, method: str, params: Any) -> None:
        side = self.sides[name]
        if not self._sending(side) or not side.endpoint.can_send_request:
            try:
                side.endpoint.send_request(method, params)
            except LocalProtocolError:
                return
            raise AssertionError("send_request succeeded on a closed or full endpoint")
        id = side.endpoint.send_request(method, params)
        assert id not in side.outstanding, f"id {id!r} reused while in flight"
        side.outstanding.add(id)
        self._take_output(name)

    @rule(name=SIDES, method=METHODS, params=PARAMS)
    def notify(self, name: str, method: str, params: Any) -> None:
        side = self.sides[name]
        try:
            side.endpoint.send_notification(method, params)
        except LocalProtocolError:
            assert not self._sending(side)
            return
        self._take_output(name)

    @precondition(lambda self: any(s.requests for s in self.sides.values()))
    @rule(data=st.data(), how=st.sampled_from(["result", "error"]))
    def answer(self, data: st.DataObject, how: str) -> None:
        name = data.draw(st.sampled_from([n for n, s in self.sides.items() if s.requests]))
        side = self.sides[name]
        request = side.requests.pop(data.draw(st.integers(0, len(side.requests) - 1)))
        self._answer(name, request, how)

    def _answer(self, name: str, request: RequestReceived, how: str) -> None:
        side = self.sides[name]
        try:
            if how == "result":
                side.endpoint.send_response(request, request.params)
            else:
                side.endpoint.send_error(request, RpcError(-32001, "refused", request.method))
        except LocalProtocolError:
            # Not open any more, or the wire duplicated the request and it was answered.
            pass
        self._take_output(name)

    @rule()
    def calm_period(self) -> None:
        """The wire behaves for a while: everything is delivered, every request answered."""
        for _ in range(20):
            moved = False
            for name, side in self.sides.items():
                while side.requests:
                    self._answer(name, side.requests.pop(0), "result")
                while side.wire:
                    self._deliver(name, [side.wire.popleft()])
                    moved = True
            if not moved:
                return

    @precondition(lambda self: any(s.outstanding for s in self.sides.values()))
    @rule(name=SIDES, data=st.data())
    def cancel(self, name: str, data: st.DataObject) -> None:
        side = self.sides[name]
        if not side.outstanding:
            return
        id = data.draw(st.sampled_from(sorted(side.outstanding, key=repr)))
        if side.endpoint.cancel_call(id):
            side.end(id, "cancel_call")
        self._take_output(name)

    @rule(name=SIDES, dice=RARELY)
    def close(self, name: str, dice: int) -> None:
        if dice:
            return
        side = self.sides[name]
        side.endpoint.close()
        self._events(name)
        assert not side.outstanding, "close() left calls that never ended"
        assert side.closed_events == 1
        self._take_output(name)

    # -- the wire ---------------------------------------------------------------------

    def _take_output(self, name: str) -> None:
        self.sides[name].wire.extend(self.sides[name].endpoint.data_to_send())

    @precondition(lambda self: any(s.wire for s in self.sides.values()))
    @rule(name=SIDES, mutation=MUTATIONS, data=st.data())
    def transmit(self, name: str, mutation: str, data: st.DataObject) -> None:
        """Take the next chunk ``name`` sent and do ``mutation`` to it on the way."""
        sender = self.sides[name]
        if not sender.wire:
            return
        chunk = sender.wire.popleft()
        if mutation == "drop":
            return
        if mutation == "duplicate":
            pieces = [chunk, chunk]
        elif mutation == "corrupt" and chunk:
            where = data.draw(st.integers(0, len(chunk) - 1))
            byte = data.draw(st.integers(0, 255))
            pieces = [chunk[:where] + bytes([byte]) + chunk[where + 1 :]]
        elif mutation == "truncate":
            pieces = [chunk[: data.draw(st.integers(0, len(chunk)))]]
        elif mutation == "split" and len(chunk) > 1:
            cut = data.draw(st.integers(1, len(chunk) - 1))
            pieces = [chunk[:cut], chunk[cut:]]
        else:
            pieces = [chunk]
        self._deliver(name, pieces)

    def _deliver(self, name: str, pieces: list[bytes]) -> None:
        receiver_name = self.other(name)
        receiver = self.sides[receiver_name].endpoint
        for piece in pieces:
            if receiver.close_expected():
                return  # the runtime has closed the transport: bytes fall on the floor
            if receiver.framing is None:
                receiver.receive_message(piece)
            else:
                receiver.receive_data(piece)
            self._events(receiver_name)
        self._take_output(receiver_name)

    @precondition(lambda self: sum(len(s.wire) for s in self.sides.values()) > 1)
    @rule(name=SIDES)
    def reorder(self, name: str) -> None:
        """A hostile wire may swap two chunks (a broken proxy, a message transport)."""
        wire = self.sides[name].wire
        if len(wire) > 1:
            wire[0], wire[1] = wire[1], wire[0]

    @rule(name=SIDES, dice=RARELY)
    def end_of_stream(self, name: str, dice: int) -> None:
        """``name`` sees the peer's stream end (the wire was cut)."""
        if dice:
            return
        side = self.sides[name]
        side.endpoint.receive_eof()
        self._events(name)
        assert not side.outstanding, "end of stream left calls that never ended"
        assert side.closed_events == 1

    # -- bookkeeping --------------------------------------------------------------------

    def _events(self, name: str) -> None:
        side = self.sides[name]
        for event in side.endpoint.events_received():
            assert isinstance(event, Event)
            assert side.closed_events == 0, f"{event!r} after ConnectionClosed"
            kind = type(event)
            if kind is ResponseReceived or kind is ErrorReceived:
                assert isinstance(event, (ResponseReceived, ErrorReceived))
                side.end(event.id, kind.__name__)
            elif kind is RequestReceived:
                assert isinstance(event, RequestReceived)
                side.requests.append(event)
            elif kind is ConnectionClosed:
                assert isinstance(event, ConnectionClosed)
                assert set(event.failed_calls) == side.outstanding, (
                    event.failed_calls,
                    side.outstanding,
                )
                for id in event.failed_calls:
                    side.end(id, "ConnectionClosed")
                side.closed_events += 1
                side.requests.clear()
            else:
                assert kind in (NotificationReceived, CancelRequested, InvalidMessageReceived)

    @invariant()
    def bounded_buffers(self) -> None:
        for side in self.sides.values():
            endpoint = side.endpoint
            # Complete frames may wait while reading is paused (wants_data false);
            # otherwise only one partial frame is held.
            if (
                endpoint.framing is not None
                and endpoint.state is State.OPEN
                and endpoint.wants_data()
            ):
                held = endpoint._deframer.buffered
                assert held <= MAX_MESSAGE_SIZE + MAX_HEADER_SIZE + 4096, held

    @invariant()
    def ledger(self) -> None:
        for side in self.sides.values():
            assert all(count == 1 for count in side.ended.values()), side.ended
            assert side.endpoint.calls_in_flight == len(side.outstanding), (
                side.endpoint.calls_in_flight,
                side.outstanding,
            )

    def teardown(self) -> None:
        # However the wire behaved, closing ends every call exactly once.
        for name, side in self.sides.items():
            side.endpoint.close()
            self._events(name)
            assert not side.outstanding
            assert side.closed_events == 1
            assert all(count == 1 for count in side.ended.values())


HostileWire.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestHostileWire = HostileWire.TestCase
