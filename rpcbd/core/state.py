"""The connection state machine: one table, one owner.

Theory of operation
-------------------

A JSON-RPC connection is symmetric: both sides send requests, notifications and replies at
any time, so there is no per-role state (unlike HTTP's client and server halves). What
remains is the life of the connection itself:

- ``OPEN``: messages flow both ways.
- ``ERROR``: the peer broke the framing beyond repair. The endpoint has queued its last
  error reply; nothing more can be read or sent, and the runtime should flush
  ``data_to_send()`` and close (``close_expected()`` is true).
- ``CLOSED``: the end. Every call in flight has failed exactly once; data that still
  arrives is discarded (a local close races with the reader), sends are refused.

Calls in flight are not states of this machine; they live in the pending tables of
:mod:`rpcbd.core.pending`, keyed by id like HTTP/2 streams.

Rule: only :class:`ConnectionState` assigns ``state``, and only through ``TRANSITIONS``.
An ``(state, input)`` pair that is not in the table is an error: a
:class:`~rpcbd.LocalProtocolError` for this side's actions (sending, receiving after
end of stream) and a :class:`~rpcbd.RemoteProtocolError` for reading after the peer
broke the stream.
"""

from __future__ import annotations

import enum

from rpcbd.exceptions import LocalProtocolError, RemoteProtocolError

__all__ = ["TRANSITIONS", "ConnectionState", "Input", "State", "state_diagram"]


class State(enum.Enum):
    """The life of a connection."""

    OPEN = "open"
    ERROR = "error"
    CLOSED = "closed"


class Input(enum.Enum):
    """What can happen to a connection."""

    SEND = "send"  # this side queues a message
    RECEIVE = "receive"  # bytes or a message arrive from the peer
    RECEIVE_EOF = "receive_eof"  # the peer's stream ended
    CLOSE = "close"  # this side closes
    PROTOCOL_ERROR = "protocol_error"  # the stream cannot be read any further


TRANSITIONS: dict[tuple[State, Input], State] = {
    (State.OPEN, Input.SEND): State.OPEN,
    (State.OPEN, Input.RECEIVE): State.OPEN,
    (State.OPEN, Input.RECEIVE_EOF): State.CLOSED,
    (State.OPEN, Input.CLOSE): State.CLOSED,
    (State.OPEN, Input.PROTOCOL_ERROR): State.ERROR,
    (State.ERROR, Input.RECEIVE_EOF): State.CLOSED,
    (State.ERROR, Input.CLOSE): State.CLOSED,
    (State.CLOSED, Input.RECEIVE): State.CLOSED,  # late bytes after a local close: dropped
    (State.CLOSED, Input.RECEIVE_EOF): State.CLOSED,
    (State.CLOSED, Input.CLOSE): State.CLOSED,
}


class ConnectionState:
    """Holds the current :class:`State` and applies :data:`TRANSITIONS`."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state = State.OPEN

    def process(self, event: Input) -> State:
        """Apply ``event``; return the new state or raise if the pair is not in the table."""
        try:
            self.state = TRANSITIONS[self.state, event]
        except KeyError:
            if self.state is State.ERROR and event is Input.RECEIVE:
                raise RemoteProtocolError(
                    "the peer broke the stream earlier; nothing more can be read"
                ) from None
            if self.state is State.ERROR:
                raise LocalProtocolError(
                    f"cannot {event.value}: the connection failed with a protocol error"
                ) from None
            raise LocalProtocolError(
                f"cannot {event.value}: the connection is {self.state.value}"
            ) from None
        return self.state


def state_diagram() -> str:
    """The transition table as a Mermaid state diagram (the docs embed this text; a test
    checks they match, so the picture cannot drift from the code)."""
    lines = ["stateDiagram-v2", f"    [*] --> {State.OPEN.name}"]
    for (state, event), target in TRANSITIONS.items():
        lines.append(f"    {state.name} --> {target.name}: {event.value}")
    lines.append(f"    {State.CLOSED.name} --> [*]")
    return "\n".join(lines)
