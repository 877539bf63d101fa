"""Test helpers that drive the sans-IO core with bytes only.

- :class:`EndpointPair`: two :class:`~rpcbd.core.Endpoint` objects wired back to back; the
  test moves bytes between them explicitly with :meth:`EndpointPair.pump`.
- :func:`serve`: a minimal synchronous dispatcher over a dict of callables, enough to answer
  the JSON-RPC specification's examples.
- :func:`feed`, :func:`replies`: push raw bytes into an endpoint, decode what it sends back.
- :func:`describe_current_call`: what ``current_call()`` shows inside a handler of either
  runtime, as a dict to compare.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping
from typing import Any

from rpcbd.codecs.base import Dialect, Framing
from rpcbd.context import CallContext, current_call
from rpcbd.core import Endpoint
from rpcbd.core.events import Event, RequestReceived
from rpcbd.exceptions import (
    RpcError,
    RpcInternalError,
    RpcInvalidParamsError,
    RpcMethodNotFoundError,
)

__all__ = [
    "EndpointPair",
    "answer",
    "describe_current_call",
    "feed",
    "replies",
    "serve",
    "split_frames",
]


class EndpointPair:
    """Two endpoints connected to each other through explicit pumping.

    Nothing moves until :meth:`pump` is called, so a test sees every intermediate state.
    With ``framing=None`` both are message endpoints and each ``data_to_send()`` item is
    delivered with ``receive_message``.

    Attributes:
        a, b: the two endpoints.
        wire: every chunk that travelled, as ``(sender, bytes)`` with sender ``"a"``/``"b"``.
    """

    def __init__(
        self,
        framing: str | Framing | None = "newline",
        dialect: Dialect | None = None,
        **options: Any,
    ) -> None:
        self.a = Endpoint(dialect, framing, **options)
        self.b = Endpoint(dialect, framing, **options)
        self.wire: list[tuple[str, bytes]] = []

    def peer_of(self, endpoint: Endpoint) -> Endpoint:
        """The endpoint at the other end."""
        return self.b if endpoint is self.a else self.a

    def transfer(self, sender: Endpoint) -> int:
        """Move ``sender``'s pending output to its peer; return the number of chunks."""
        receiver = self.peer_of(sender)
        chunks = sender.data_to_send()
        name = "a" if sender is self.a else "b"
        for chunk in chunks:
            self.wire.append((name, chunk))
            if receiver.close_expected():
                continue  # the receiving side is gone: bytes fall on the floor
            if receiver.framing is None:
                receiver.receive_message(chunk)
            else:
                receiver.receive_data(chunk)
        return len(chunks)

    def pump(self) -> tuple[list[Event], list[Event]]:
        """Exchange bytes until neither side has output; return ``(events_a, events_b)``.

        Events are collected (not answered): the test decides what to do with requests.
        """
        events_a: list[Event] = []
        events_b: list[Event] = []
        while True:
            moved = self.transfer(self.a) + self.transfer(self.b)
            events_a += self.a.events_received()
            events_b += self.b.events_received()
            if not moved and not self.a.bytes_to_send and not self.b.bytes_to_send:
                return events_a, events_b


def answer(
    endpoint: Endpoint, event: RequestReceived, methods: Mapping[str, Callable[..., Any]]
) -> None:
    """Answer one request by calling ``methods[event.method]`` with its params.

    Unknown method: -32601. Params that do not bind: -32602. ``RpcError``: sent as is.
    Any other exception: -32603 (never its text, like the real runtimes).
    """
    func = methods.get(event.method)
    if func is None:
        endpoint.send_error(event, RpcMethodNotFoundError(data=event.method))
        return
    params = event.params
    args: list[Any] = params if isinstance(params, list) else []
    kwargs: dict[str, Any] = params if isinstance(params, dict) else {}
    try:
        inspect.signature(func).bind(*args, **kwargs)
    except TypeError as exc:
        endpoint.send_error(event, RpcInvalidParamsError(data=str(exc)))
        return
    try:
        result = func(*args, **kwargs)
    except RpcError as exc:
        endpoint.send_error(event, exc)
    except Exception:
        endpoint.send_error(event, RpcInternalError())
    else:
        endpoint.send_response(event, result)


def serve(endpoint: Endpoint, methods: Mapping[str, Callable[..., Any]]) -> list[Event]:
    """Answer every request the endpoint has received, synchronously; ignore notifications.

    Loops until the endpoint reports no more events, so requests held back by
    ``max_pending_requests`` are served too. Returns every event seen, oldest first.
    """
    seen: list[Event] = []
    while True:
        events = endpoint.events_received()
        if not events:
            return seen
        seen += events
        for event in events:
            if isinstance(event, RequestReceived):
                answer(endpoint, event, methods)


def feed(
    endpoint: Endpoint, data: bytes, methods: Mapping[str, Callable[..., Any]] | None = None
) -> list[Event]:
    """Feed raw bytes (or one message, for a message endpoint); return the events.

    With ``methods`` the requests are served (see :func:`serve`); without, they are left
    unanswered for the test to answer.
    """
    if endpoint.framing is None:
        endpoint.receive_message(data)
    else:
        endpoint.receive_data(data)
    if methods is None:
        return endpoint.events_received()
    return serve(endpoint, methods)


def split_frames(endpoint: Endpoint, chunks: list[bytes]) -> list[bytes]:
    """Cut what an endpoint sent back into payloads, using its own framing's deframer."""
    if endpoint.framing is None:
        return list(chunks)
    deframer = endpoint.framing.deframer()
    deframer.feed(b"".join(chunks))
    payloads: list[bytes] = []
    while (frame := deframer.next_frame()) is not None:
        assert isinstance(frame, bytes), frame
        payloads.append(frame)
    assert deframer.feed_eof() is None
    return payloads


def replies(endpoint: Endpoint) -> list[Any]:
    """Take the endpoint's output and decode each message as JSON (stdlib, strict)."""
    return [json.loads(payload) for payload in split_frames(endpoint, endpoint.data_to_send())]


def describe_current_call(connection: Any, event_type: type) -> dict[str, Any]:
    """Called in a handler: its ``current_call()``, as a dict to compare (``event_type``:
    the kind of ``cancel_event`` the runtime should give)."""
    call = current_call()
    assert isinstance(call, CallContext)
    return {
        "id": call.id,
        "method": call.method,
        "same_connection": call.connection is connection,
        "same_object": current_call() is call,
        "cancelled": call.cancelled,
        "event_type_ok": isinstance(call.cancel_event, event_type),
    }
