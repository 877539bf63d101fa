"""In-memory message pipes: two connected transports in one process, no sockets.

The reference transport: it passes whole messages (no framing, no copies) and applies the
same back pressure as a socket: a writer blocks while the reader's queue holds more than
``capacity`` bytes.
"""

from __future__ import annotations

import threading
from collections import deque

from rpcbd.exceptions import ConnectionClosedError
from rpcbd.transports.base import Transport

__all__ = ["DEFAULT_PIPE_CAPACITY", "MemoryTransport", "memory_pair"]

#: Bytes a pipe direction holds before writers block.
DEFAULT_PIPE_CAPACITY = 4 * 1024 * 1024


class _Channel:
    """One direction: a bounded queue of messages."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.cond = threading.Condition(threading.Lock())
        self.messages: deque[bytes] = deque()
        self.size = 0
        self.closed = False

    def put(self, chunks: list[bytes]) -> None:
        with self.cond:
            for chunk in chunks:
                # Wait for room, but always accept into an empty queue so a single message
                # larger than the capacity still gets through.
                while self.size and self.size + len(chunk) > self.capacity and not self.closed:
                    self.cond.wait()
                if self.closed:
                    raise ConnectionClosedError("in-memory pipe closed")
                self.messages.append(chunk)
                self.size += len(chunk)
            self.cond.notify_all()

    def get(self) -> bytes | None:
        with self.cond:
            while not self.messages and not self.closed:
                self.cond.wait()
            if not self.messages:
                return None
            message = self.messages.popleft()
            self.size -= len(message)
            self.cond.notify_all()
            return message

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()


class MemoryTransport(Transport):
    """One end of an in-memory pipe."""

    message_based = True
    default_framing = None

    def __init__(self, incoming: _Channel, outgoing: _Channel, description: str) -> None:
        self._incoming = incoming
        self._outgoing = outgoing
        self.description = description

    def read(self) -> bytes | None:
        return self._incoming.get()

    def write(self, chunks: list[bytes]) -> None:
        self._outgoing.put(chunks)

    def abort(self) -> None:
        # Closing both directions: our reader wakes with end of stream, and so does the
        # other end's (it sees the peer close).
        self._incoming.close()
        self._outgoing.close()

    def close(self) -> None:
        self.abort()


def memory_pair(capacity: int = DEFAULT_PIPE_CAPACITY) -> tuple[MemoryTransport, MemoryTransport]:
    """Two connected in-memory transports."""
    a_to_b = _Channel(capacity)
    b_to_a = _Channel(capacity)
    return (
        MemoryTransport(b_to_a, a_to_b, "pipe:a"),
        MemoryTransport(a_to_b, b_to_a, "pipe:b"),
    )
