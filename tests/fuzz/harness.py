"""The decoder fuzz target, shared by atheris (coverage-guided) and hypothesis.

:func:`one_input` takes arbitrary bytes and drives one :class:`~rpcbd.core.Endpoint` with
them, checking what rpcbd promises about hostile input:

- the first byte picks the framing (every entry of ``FRAMINGS``, or whole messages as on a
  WebSocket) and the dialect; the second picks how the stream is split;
- the endpoint raises nothing (the harness stops feeding once ``close_expected()``, as the
  runtimes do); every event is one of the documented ones; ``ConnectionClosed`` is last;
- what it sends back is well framed and is only ever a reply with an integer error code;
- it holds at most ``max_message_size`` plus a header allowance between reads;
- each dialect's ``decode`` classifies any JSON value without raising.

Run it coverage-guided with ``python tests/fuzz/atheris_main.py`` (see test_decoders.py).
"""

from __future__ import annotations

import json
from typing import Any

from rpcbd.codecs.base import Dialect
from rpcbd.codecs.content_length import MAX_HEADER_SIZE
from rpcbd.codecs.framing import FRAMINGS
from rpcbd.codecs.jsonrpc1 import JSONRPC_V1
from rpcbd.codecs.jsonrpc2 import JSONRPC_V2
from rpcbd.codecs.serializer import JsonDecodeError, available_serializers
from rpcbd.core import Endpoint
from rpcbd.core.events import (
    CancelRequested,
    ConnectionClosed,
    ErrorReceived,
    InvalidMessageReceived,
    NotificationReceived,
    RequestReceived,
    ResponseReceived,
)
from rpcbd.core.messages import ErrorResponse, Invalid, Notification, Request, Response
from rpcbd.core.state import State
from rpcbd.exceptions import RpcCancelledError, RpcError

__all__ = [
    "COMBINATIONS",
    "DIALECTS",
    "FRAMING_NAMES",
    "MAX_MESSAGE_SIZE",
    "SERIALIZERS",
    "one_input",
    "selector",
]

#: Framings in a fixed order (the selector byte indexes it); None is message mode.
FRAMING_NAMES: list[str | None] = [*sorted(FRAMINGS), None]
DIALECTS: list[Dialect] = [JSONRPC_V2, JSONRPC_V1]
#: Small, so oversized frames are easy to reach.
MAX_MESSAGE_SIZE = 512
#: What a deframer may hold beyond max_message_size (documented per framing).
ALLOWANCE = max(MAX_HEADER_SIZE, 64)

_EVENTS = (
    RequestReceived,
    NotificationReceived,
    ResponseReceived,
    ErrorReceived,
    CancelRequested,
    InvalidMessageReceived,
    ConnectionClosed,
)
#: Every installed JSON serializer (stdlib json, and orjson when installed).
SERIALIZERS = list(available_serializers().values())


def _combinations() -> list[tuple[str | None, Dialect, Any]]:
    return [
        (framing, dialect, serializer)
        for framing in FRAMING_NAMES
        for dialect in DIALECTS
        for serializer in SERIALIZERS
    ]


#: Everything the selector byte can pick: (framing, dialect, serializer).
COMBINATIONS = _combinations()


def selector(framing: str | None, dialect: Dialect, split: int = 0, serializer: int = 0) -> bytes:
    """The two leading bytes that make :func:`one_input` use this framing and dialect."""
    index = COMBINATIONS.index((framing, dialect, SERIALIZERS[serializer]))
    return bytes([index, split])


def _check_reply(value: Any, dialect: Dialect) -> None:
    members = value if isinstance(value, list) else [value]
    assert members, "an empty array was sent"
    for member in members:
        assert isinstance(member, dict), member
        assert "id" in member, member
        error = member.get("error")
        if dialect is JSONRPC_V2:
            assert member.get("jsonrpc") == "2.0", member
            assert ("result" in member) != ("error" in member), member
        else:
            assert "result" in member and "error" in member, member
        if error is not None:
            assert isinstance(error, dict) and type(error.get("code")) is int, member
            assert isinstance(error.get("message"), str), member


def _check_output(endpoint: Endpoint, dialect: Dialect, chunks: list[bytes]) -> None:
    framing = endpoint.framing
    if framing is None:
        payloads = chunks
    else:
        deframer = framing.deframer(1 << 30)
        deframer.feed(b"".join(chunks))
        payloads = []
        while (frame := deframer.next_frame()) is not None:
            assert isinstance(frame, bytes), f"rpcbd sent a bad frame: {frame!r}"
            payloads.append(frame)
        assert deframer.buffered == 0 or framing.name == "json-stream", "partial frame sent"
    for payload in payloads:
        _check_reply(json.loads(payload), dialect)


def _decode_all(data: bytes) -> None:
    """Every dialect classifies every JSON value (and batch member) without raising."""
    for serializer in SERIALIZERS:
        try:
            value = serializer.loads(data)
        except JsonDecodeError:
            continue
        for dialect in DIALECTS:
            for item in value if isinstance(value, list) else [value]:
                message = dialect.decode(item)
                assert isinstance(
                    message, (Request, Notification, Response, ErrorResponse, Invalid)
                )
                if isinstance(message, Invalid):
                    assert isinstance(message.error, RpcError)


def one_input(data: bytes) -> None:
    """Fuzz target: see the module docstring. Raises AssertionError on a broken promise."""
    if len(data) < 2:
        return
    framing, dialect, serializer = COMBINATIONS[data[0] % len(COMBINATIONS)]
    split = data[1]
    stream = data[2:]
    _decode_all(stream)
    endpoint = Endpoint(
        dialect,
        framing,
        max_message_size=MAX_MESSAGE_SIZE,
        max_batch_size=8,
        max_pending_requests=1000,
        max_nesting_depth=16,
        serializer=serializer,
    )
    # Split points: fixed-size pieces, or (split >= 128) every occurrence of a byte value.
    if framing is None:
        pieces = stream.split(b"\x00") if split & 1 else [stream]
    elif split >= 128:
        marker = bytes([split])
        pieces = [p + marker for p in stream.split(marker, 15)]
        pieces[-1] = pieces[-1][:-1]
    else:
        # At most 16 pieces: every split point is covered by the framing property tests;
        # here the time goes to more inputs instead.
        size = max(split + 1, -(-len(stream) // 16))
        pieces = [stream[i : i + size] for i in range(0, len(stream), size)]
    closed = False
    answered = 0
    for piece in pieces:
        if endpoint.close_expected():
            break
        if framing is None:
            endpoint.receive_message(piece)
        else:
            endpoint.receive_data(piece)
        for event in endpoint.events_received():
            assert isinstance(event, _EVENTS), event
            assert not closed, "an event after ConnectionClosed"
            if isinstance(event, RequestReceived) and endpoint.state is State.OPEN:
                # (A request read just before a fatal framing error cannot be answered:
                # the endpoint refuses to send once it is not open, as documented.)
                # Answer some with results, some with errors, some cancelled.
                if answered % 3 == 0:
                    endpoint.send_response(event, event.params)
                elif answered % 3 == 1:
                    endpoint.send_error(event, RpcError(-32001, "no", {"m": event.method}))
                else:
                    endpoint.send_error(event, RpcCancelledError())
                answered += 1
            elif isinstance(event, ConnectionClosed):
                closed = True
        _check_output(endpoint, dialect, endpoint.data_to_send())
        if framing is not None and not endpoint.close_expected():
            held = endpoint._deframer.buffered
            assert held <= MAX_MESSAGE_SIZE + ALLOWANCE, f"{framing} holds {held} bytes"
    endpoint.receive_eof()
    events = endpoint.events_received()
    assert events and isinstance(events[-1], ConnectionClosed), events
    assert all(isinstance(e, _EVENTS) for e in events)
    _check_output(endpoint, dialect, endpoint.data_to_send())
    assert endpoint.requests_in_flight == 0
