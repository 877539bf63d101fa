"""Property tests of the sans-IO core (hypothesis).

- :class:`EndpointMachine`: two endpoints wired by an :class:`~tests.helpers.EndpointPair`,
  driven by random sequences of sends, answers, cancels, batches, closes, ends of stream and
  garbage. Every call ends exactly once, no id is reused while in flight, and nothing but
  the documented exceptions escapes.
- :func:`test_random_bytes_give_only_events_and_error_replies`: garbage in, documented
  events and valid JSON-RPC error replies out, for every framing.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from rpcbd import JSONRPC_V1, JSONRPC_V2
from rpcbd.codecs.framing import FRAMINGS
from rpcbd.core import (
    CancelRequested,
    ConnectionClosed,
    Endpoint,
    ErrorReceived,
    Event,
    InvalidMessageReceived,
    NotificationReceived,
    RequestReceived,
    ResponseReceived,
    State,
)
from rpcbd.core.state import TRANSITIONS, Input
from rpcbd.exceptions import LocalProtocolError, ProtocolError, RemoteProtocolError, RpcError
from tests.core.test_endpoint import apply
from tests.helpers import EndpointPair, split_frames

SIDES = st.sampled_from(["a", "b"])
JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.text(max_size=8)
)
PARAMS = st.one_of(
    st.none(),
    st.lists(JSON_SCALARS, max_size=3),
    st.dictionaries(st.text(max_size=4), JSON_SCALARS, max_size=3),
)
METHODS = st.sampled_from(["echo", "x.y", "textDocument/hover", "$/progress", "é"])
#: Bytes a peer might send that look a little like each framing.
FRAGMENTS = st.sampled_from(
    [
        b'{"jsonrpc":"2.0","method":"m","id":1}',
        b'{"jsonrpc":"2.0","result":1,"id":1}',
        b'[{"jsonrpc":"2.0","method":"x","id":2},1]',
        b'{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":1}}',
        b"\n",
        b"\r\n\r\n",
        b"Content-Length: 5\r\n\r\n",
        b"Content-Length: -1\r\n\r\n",
        b"5:",
        b",",
        b"\x00\x00\x00\x05",
        b"\xff\xff\xff\xff",
        b"\x04",
        b"[",
        b"]",
        b"{",
        b"}",
        b'"',
        b"[]",
    ]
)
GARBAGE = st.lists(st.one_of(st.binary(max_size=24), FRAGMENTS), min_size=1, max_size=6).map(
    b"".join
)


class EndpointMachine(RuleBasedStateMachine):
    """Two endpoints and a model of the calls each has in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.pair = EndpointPair()
        self.in_flight: dict[str, set[Any]] = {"a": set(), "b": set()}
        self.issued: dict[str, list[Any]] = {"a": [], "b": []}
        self.ended: dict[str, set[Any]] = {"a": set(), "b": set()}
        self.to_answer: dict[str, list[RequestReceived]] = {"a": [], "b": []}
        self.closed_events: dict[str, int] = {"a": 0, "b": 0}

    @initialize(
        framing=st.sampled_from([*sorted(FRAMINGS), None]),
        dialect=st.sampled_from([JSONRPC_V2, JSONRPC_V1]),
        bound=st.integers(1, 4),
    )
    def setup(self, framing: str | None, dialect: Any, bound: int) -> None:
        self.pair = EndpointPair(framing, dialect, max_pending_requests=bound)

    def endpoint(self, side: str) -> Endpoint:
        return self.pair.a if side == "a" else self.pair.b

    # -- bookkeeping -------------------------------------------------------------------

    def end(self, side: str, id: Any) -> None:
        assert id in self.in_flight[side], f"{side}: {id!r} ended but was not in flight"
        assert id not in self.ended[side], f"{side}: {id!r} ended twice"
        self.in_flight[side].discard(id)
        self.ended[side].add(id)

    def collect(self) -> None:
        for side in ("a", "b"):
            for event in self.endpoint(side).events_received():
                self.observe(side, event)

    def observe(self, side: str, event: Event) -> None:
        if isinstance(event, RequestReceived):
            self.to_answer[side].append(event)
        elif isinstance(event, (ResponseReceived, ErrorReceived)):
            if isinstance(event, ErrorReceived):
                assert isinstance(event.error, RpcError)
            self.end(side, event.id)
        elif isinstance(event, ConnectionClosed):
            self.closed_events[side] += 1
            assert self.closed_events[side] == 1, "ConnectionClosed reported twice"
            for id in event.failed_calls:
                self.end(side, id)
            assert not self.in_flight[side], f"{side}: calls left after close"
            self.to_answer[side].clear()  # they can no longer be answered
        elif isinstance(event, CancelRequested):
            assert any(r.key == event.request.key for r in self.to_answer[side])
        else:
            assert isinstance(event, (NotificationReceived, InvalidMessageReceived)), event
            if isinstance(event, InvalidMessageReceived):
                assert isinstance(event.error, (RpcError, ProtocolError))

    def expect_open(self, side: str) -> bool:
        return self.endpoint(side).state is State.OPEN

    # -- rules -------------------------------------------------------------------------

    @rule(side=SIDES, method=METHODS, params=PARAMS)
    def send_request(self, side: str, method: str, params: Any) -> None:
        endpoint = self.endpoint(side)
        if not self.expect_open(side) or (
            isinstance(params, dict) and not endpoint.dialect.supports_named_params
        ):
            with pytest.raises(LocalProtocolError):
                endpoint.send_request(method, params)
            return
        id = endpoint.send_request(method, params)
        assert id not in self.in_flight[side], f"id {id!r} reused while in flight"
        assert id not in self.issued[side]
        self.in_flight[side].add(id)
        self.issued[side].append(id)

    @rule(side=SIDES, method=METHODS, params=st.lists(JSON_SCALARS, max_size=2))
    def send_notification(self, side: str, method: str, params: list[Any]) -> None:
        endpoint = self.endpoint(side)
        if not self.expect_open(side):
            with pytest.raises(LocalProtocolError):
                endpoint.send_notification(method, params)
            return
        endpoint.send_notification(method, params)

    @rule(side=SIDES, kinds=st.lists(st.booleans(), min_size=1, max_size=4))
    def send_batch(self, side: str, kinds: list[bool]) -> None:
        endpoint = self.endpoint(side)
        entries = [("echo", [i], expects) for i, expects in enumerate(kinds)]
        if not self.expect_open(side) or not endpoint.dialect.supports_batches:
            with pytest.raises(LocalProtocolError):
                endpoint.send_batch(entries)
            return
        ids = endpoint.send_batch(entries)
        assert [id is not None for id in ids] == kinds
        for id in ids:
            if id is not None:
                assert id not in self.in_flight[side]
                self.in_flight[side].add(id)
                self.issued[side].append(id)

    @precondition(lambda self: self.to_answer["a"] or self.to_answer["b"])
    @rule(data=st.data(), as_error=st.booleans(), result=JSON_SCALARS)
    def answer(self, data: st.DataObject, as_error: bool, result: Any) -> None:
        side = "a" if self.to_answer["a"] else "b"
        if self.to_answer["a"] and self.to_answer["b"]:
            side = data.draw(SIDES)
        pending = self.to_answer[side]
        request = pending.pop(data.draw(st.integers(0, len(pending) - 1)))
        endpoint = self.endpoint(side)
        if not self.expect_open(side):
            with pytest.raises(LocalProtocolError):
                endpoint.send_response(request, result)
            return
        if as_error:
            endpoint.send_error(request, RpcError(1, "failed", data=result))
        else:
            endpoint.send_response(request, result)

    @precondition(lambda self: self.in_flight["a"] or self.in_flight["b"])
    @rule(data=st.data(), notify=st.booleans())
    def cancel_call(self, data: st.DataObject, notify: bool) -> None:
        side = "a" if self.in_flight["a"] else "b"
        if self.in_flight["a"] and self.in_flight["b"]:
            side = data.draw(SIDES)
        id = data.draw(st.sampled_from(sorted(self.in_flight[side])))
        assert self.endpoint(side).cancel_call(id, notify=notify) is True
        self.end(side, id)
        assert self.endpoint(side).cancel_call(id) is False

    @rule(side=SIDES)
    def cancel_ended_call(self, side: str) -> None:
        for id in sorted(self.ended[side])[:1]:
            assert self.endpoint(side).cancel_call(id) is False

    @rule(side=SIDES)
    def deliver(self, side: str) -> None:
        self.pair.transfer(self.endpoint(side))

    @rule()
    def pump(self) -> None:
        events_a, events_b = self.pair.pump()
        for event in events_a:
            self.observe("a", event)
        for event in events_b:
            self.observe("b", event)

    @rule(side=SIDES, as_error=st.booleans())
    def serve_everything(self, side: str, as_error: bool) -> None:
        """Answer every request this side holds, then let the bytes flow."""
        endpoint = self.endpoint(side)
        while self.to_answer[side] and self.expect_open(side):
            request = self.to_answer[side].pop()
            if as_error:
                endpoint.send_error(request, RpcError(-32601, "no", data=request.method))
            else:
                endpoint.send_response(request, request.params)
            self.collect()  # answering may unpause reading
        self.pump()

    # Ending a connection makes every later step trivial: these three act on one draw in
    # four so that most runs get far enough to exchange replies, cancels and batches.

    @rule(side=SIDES, go=st.integers(0, 3))
    def close(self, side: str, go: int) -> None:
        if go == 3:
            self.endpoint(side).close()

    @rule(side=SIDES, go=st.integers(0, 3))
    def receive_eof(self, side: str, go: int) -> None:
        if go == 3:
            self.endpoint(side).receive_eof()

    @rule(side=SIDES, garbage=GARBAGE, go=st.integers(0, 3))
    def feed_garbage(self, side: str, garbage: bytes, go: int) -> None:
        if go != 3:
            return
        endpoint = self.endpoint(side)
        if endpoint.framing is None:
            endpoint.receive_message(garbage)
        elif endpoint.state is State.ERROR:
            with pytest.raises(RemoteProtocolError):
                endpoint.receive_data(garbage)
        else:
            endpoint.receive_data(garbage)  # dropped when closed

    # -- invariants --------------------------------------------------------------------

    @invariant()
    def events_are_consistent(self) -> None:
        self.collect()
        for side in ("a", "b"):
            endpoint = self.endpoint(side)
            assert endpoint.calls_in_flight == len(self.in_flight[side])
            assert endpoint.close_expected() is (endpoint.state is not State.OPEN)
            if endpoint.state is State.CLOSED:
                assert self.closed_events[side] == 1

    def teardown(self) -> None:
        # Closing both sides ends every call that is still in flight, exactly once.
        self.pair.a.close()
        self.pair.b.close()
        self.collect()
        for side in ("a", "b"):
            assert not self.in_flight[side]
            assert self.ended[side] == set(self.issued[side])


EndpointMachine.TestCase.settings = settings(
    max_examples=80,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestEndpointMachine = EndpointMachine.TestCase


def check_error_reply(value: Any, dialect: Any) -> None:
    """``value`` is one valid JSON-RPC error response (a batch reply: all members are)."""
    if isinstance(value, list):
        assert value, "an empty array is never sent"
        for item in value:
            check_error_reply(item, dialect)
        return
    assert isinstance(value, dict)
    if dialect is JSONRPC_V2:
        assert set(value) == {"jsonrpc", "error", "id"}
        assert value["jsonrpc"] == "2.0"
    else:
        assert set(value) == {"result", "error", "id"} and value["result"] is None
    error = value["error"]
    assert type(error["code"]) is int and isinstance(error["message"], str)
    assert set(error) <= {"code", "message", "data"}
    assert value["id"] is None or type(value["id"]) in (int, float, str)


@pytest.mark.parametrize("framing", sorted(FRAMINGS))
@pytest.mark.parametrize("dialect", [JSONRPC_V2, JSONRPC_V1], ids=["2.0", "1.0"])
@settings(max_examples=40, deadline=None)
@given(chunks=st.lists(GARBAGE, min_size=1, max_size=6), eof=st.booleans())
def test_random_bytes_give_only_events_and_error_replies(
    framing: str, dialect: Any, chunks: list[bytes], eof: bool
) -> None:
    endpoint = Endpoint(dialect, framing, max_message_size=64)
    events: list[Event] = []
    for chunk in chunks:
        if endpoint.close_expected():
            break  # a runtime stops reading here
        endpoint.receive_data(chunk)
        events += endpoint.events_received()
    if eof:
        endpoint.receive_eof()
        events += endpoint.events_received()
    assert all(isinstance(event, Event) for event in events)
    for event in events:
        if isinstance(event, InvalidMessageReceived):
            assert isinstance(event.error, (RpcError, ProtocolError))
    for payload in split_frames(endpoint, endpoint.data_to_send()):
        check_error_reply(json.loads(payload), dialect)


@settings(max_examples=60, deadline=None)
@given(messages=st.lists(st.one_of(GARBAGE, st.text(max_size=40)), min_size=1, max_size=6))
def test_random_messages_give_only_events_and_error_replies(messages: list[Any]) -> None:
    endpoint = Endpoint(framing=None, max_message_size=64)
    for message in messages:
        endpoint.receive_message(message)
        assert all(isinstance(event, Event) for event in endpoint.events_received())
    for payload in endpoint.data_to_send():
        check_error_reply(json.loads(payload), JSONRPC_V2)


@settings(max_examples=150, deadline=None)
@given(inputs=st.lists(st.sampled_from(list(Input)), max_size=12))
def test_random_input_sequences_follow_the_transition_table(inputs: list[Input]) -> None:
    """Any sequence of inputs, applied through the public API, moves the endpoint exactly as
    TRANSITIONS says; a pair outside the table raises and leaves the state alone."""
    endpoint = Endpoint(framing="content-length")
    model = State.OPEN
    events: list[Event] = []
    for input in inputs:
        target = TRANSITIONS.get((model, input))
        if target is not None:
            events += apply(endpoint, input)
            model = target
        elif input is Input.PROTOCOL_ERROR and model is State.CLOSED:
            events += apply(endpoint, input)  # bytes after the end are dropped unread
        else:
            expected = (
                RemoteProtocolError
                if model is State.ERROR and input in (Input.RECEIVE, Input.PROTOCOL_ERROR)
                else LocalProtocolError
            )
            with pytest.raises(expected):
                apply(endpoint, input)
        assert endpoint.state is model
        assert endpoint.close_expected() is (model is not State.OPEN)
    events += endpoint.events_received()
    closed = [e for e in events if isinstance(e, ConnectionClosed)]
    assert len(closed) == (1 if model is State.CLOSED else 0)
    if closed:
        assert events[-1] is closed[0]  # always the last event


def _drained(endpoint: Endpoint, limit: int | None) -> list[Event]:
    """Every event ready now, taken ``limit`` at a time (as a runtime that dispatches
    each batch before the next one takes them)."""
    if limit is None:
        return endpoint.events_received()
    events: list[Event] = []
    while batch := endpoint.events_received(limit):
        events += batch
    return events


@pytest.mark.parametrize("framing", sorted(FRAMINGS))
@settings(max_examples=40, deadline=None)
@given(
    chunks=st.lists(st.one_of(GARBAGE, FRAGMENTS), min_size=1, max_size=8),
    limit=st.integers(1, 4),
    eof=st.booleans(),
)
def test_events_taken_a_few_at_a_time_are_the_same_events(
    framing: str, chunks: list[bytes], limit: int, eof: bool
) -> None:
    """events_received(limit) only cuts the same stream of events into batches: the
    events, their order and every byte sent back are those of taking all at once."""
    outcomes = []
    for batch_size in (None, limit):
        endpoint = Endpoint(framing=framing, max_message_size=64, max_pending_requests=3)
        events: list[Event] = []
        for chunk in chunks:
            if endpoint.close_expected():
                break
            endpoint.receive_data(chunk)
            events += _drained(endpoint, batch_size)
        if eof:
            endpoint.receive_eof()
            events += _drained(endpoint, batch_size)
        # (Exceptions inside events compare by identity: compare their reprs.)
        outcomes.append(([repr(event) for event in events], endpoint.data_to_send()))
    assert outcomes[0] == outcomes[1]
