"""The transport interfaces: small enough that a new transport is one file.

A threaded transport is a blocking byte pipe (or message pipe) with four methods. The
runtime runs one reader thread per connection that calls :meth:`Transport.read`; any thread
may call :meth:`Transport.write` (the runtime serialises writers); :meth:`Transport.abort`
must wake a reader blocked in :meth:`read` from another thread; :meth:`close` frees the
resources once the reader has stopped.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

__all__ = ["ListenerBackend", "Transport"]


class Transport(ABC):
    """A blocking connection to the peer.

    Attributes:
        message_based: True when each :meth:`read` returns one whole message and each
            item given to :meth:`write` is sent as one message (WebSocket, in-memory pipe);
            False for byte streams, which need a framing.
        default_framing: the framing used when the user names none (stream transports).
        description: a short human-readable name of the peer, e.g. ``tcp://127.0.0.1:5000``.
    """

    message_based: bool = False
    default_framing: str | None = "newline"
    description: str = ""

    @abstractmethod
    def read(self) -> bytes | str | None:
        """Block until data arrives; return a chunk (or one message), or None at end of
        stream. Raises OSError (or TransportError) if the connection failed."""

    @abstractmethod
    def write(self, chunks: list[bytes]) -> None:
        """Send ``chunks`` in order (for a message transport, each is one message).
        Blocks while the peer is not reading (that is the back pressure)."""

    @abstractmethod
    def abort(self) -> None:
        """Stop the connection now: wake a blocked :meth:`read` (it returns None or
        raises) and fail later writes. Thread-safe, idempotent, never blocks for long."""

    @abstractmethod
    def close(self) -> None:
        """Free the resources (file descriptors, child processes). Called after the
        reader stopped. Idempotent."""

    def fileno(self) -> int | None:
        """A file descriptor that ``select()`` reports readable exactly when :meth:`read`
        would not block, or None (the default) if there is none.

        When there is one, a thread blocked in a call reads its own reply instead of
        waiting for the reader thread to hand it over (lower latency); the transport must
        then implement :meth:`read_nowait`. TLS sockets have no such descriptor (the TLS
        layer buffers records the kernel no longer sees).
        """
        return None

    def read_nowait(self) -> bytes | str | None:
        """Like :meth:`read`, but raise ``BlockingIOError`` instead of blocking. Only
        called when :meth:`fileno` is not None."""
        return self.read()


class ListenerBackend(ABC):
    """Accepts connections for a threaded listener.

    Attributes:
        address: the local address as the socket reports it (a ``(host, port)`` tuple, a
            path, ...).
        port: the real port (when 0 was asked) or None.
        url: a URL a client can pass to ``connect``.
    """

    address: object = None
    port: int | None = None
    url: str = ""

    @abstractmethod
    def start(self, on_transport: Callable[[Transport], None]) -> None:
        """Start accepting in the backend's own thread; call ``on_transport`` for each
        new connection."""

    @abstractmethod
    def close(self) -> None:
        """Stop accepting and join the backend's threads. Idempotent."""
