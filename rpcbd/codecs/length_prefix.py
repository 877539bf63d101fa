"""Length-prefix framing: a 4-byte big-endian unsigned length, then the payload.

Wire format (``N`` = ``len(payload)``, ``0 <= N < 2**32``)::

    N.to_bytes(4, "big") + payload

The framing of many binary RPC systems; compact and cheap to parse, but it cannot
resynchronise after a corrupted length, so it is for reliable byte streams only.

A length over ``max_message_size`` gives a recoverable
:class:`~rpcbd.exceptions.MessageTooLargeError`: the length says exactly where the next frame
starts, so the body is counted off as it arrives and never buffered.

Memory bound: after ``next_frame()`` returns ``None`` the deframer holds at most
``max_message_size`` bytes (a partial body), or 3 bytes of a partial length.
"""

from __future__ import annotations

import struct

from rpcbd._compiled import mypyc_attr
from rpcbd.codecs.base import DEFAULT_MAX_MESSAGE_SIZE, Deframer, Framing
from rpcbd.codecs.buffer import ReceiveBuffer
from rpcbd.exceptions import FramingError, MessageTooLargeError

__all__ = ["LengthPrefixFraming"]

_PREFIX = struct.Struct(">I")
_PREFIX_SIZE = _PREFIX.size
_MAX_LENGTH = 2 ** (8 * _PREFIX_SIZE) - 1


class _LengthPrefixDeframer(Deframer):
    """Reads a 4-byte length, then that many bytes."""

    def __init__(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        super().__init__(max_message_size)
        self._buffer = ReceiveBuffer()
        # Length of the body being read, or -1 while waiting for a prefix.
        self._length = -1

    def feed(self, data: bytes | bytearray) -> None:
        """Append received bytes (bytes of an oversized body are dropped on arrival)."""
        self._buffer.append(data)

    def next_frame(self) -> bytes | FramingError | None:
        """Return the next payload, a recoverable :class:`MessageTooLargeError`, or ``None``."""
        buffer = self._buffer
        length = self._length
        if length < 0:
            if buffer.discarding or len(buffer) < _PREFIX_SIZE:
                return None
            data, start = buffer.view()
            (length,) = _PREFIX.unpack_from(data, start)
            buffer.skip(_PREFIX_SIZE)
            if length > self.max_message_size:
                buffer.discard(length)
                return MessageTooLargeError(self.max_message_size, recoverable=True)
        if len(buffer) < length:
            self._length = length
            return None
        self._length = -1
        return buffer.take(length)

    def feed_eof(self) -> FramingError | None:
        """Return an error if the stream ended inside a frame."""
        if self._length >= 0 or self._buffer or self._buffer.discarding:
            return FramingError("stream ended inside a frame", recoverable=False)
        return None

    @property
    def buffered(self) -> int:
        """Bytes held and not yet returned as frames."""
        return len(self._buffer)


@mypyc_attr(allow_interpreted_subclasses=True)
class LengthPrefixFraming(Framing):
    """4-byte big-endian length prefix (name ``"length-prefix"``)."""

    name = "length-prefix"

    def frame(self, payload: bytes) -> bytes:
        """Return the 4-byte big-endian length of ``payload`` followed by ``payload``.

        Raises:
            ValueError: ``payload`` is 4 GiB or longer and its length does not fit.
        """
        size = len(payload)
        if size > _MAX_LENGTH:
            raise ValueError("a length-prefixed payload must be shorter than 4 GiB")
        return size.to_bytes(_PREFIX_SIZE, "big") + payload

    def deframer(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> Deframer:
        """Return a new incremental length-prefix parser."""
        return _LengthPrefixDeframer(max_message_size)

    def __repr__(self) -> str:
        return "LengthPrefixFraming()"
