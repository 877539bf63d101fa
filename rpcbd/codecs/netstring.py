"""Netstring framing (D. J. Bernstein, https://cr.yp.to/proto/netstrings.txt).

Wire format: the payload length in ASCII decimal, a colon, the payload, a comma::

    12:hello world!,

The rules this deframer enforces, paraphrasing the netstrings document: the length is a
nonempty sequence of ASCII decimal digits giving the payload size in bytes; extra zeros at
the front are not allowed, so a length starts with ``0`` only for the empty string; and a
receiver should bound the length it accepts instead of trusting the sender. Errors:

* a length with a non-digit, a leading zero (other than ``0`` itself) or more than
  :data:`MAX_LENGTH_DIGITS` digits, or a missing trailing comma, cannot be resynchronised
  from: :class:`~rpcbd.exceptions.FramingError` with ``recoverable=False``;
* a well-formed length over ``max_message_size`` gives a recoverable
  :class:`~rpcbd.exceptions.MessageTooLargeError`: the body is counted off as it arrives,
  never buffered, and the comma after it is still checked.

Leniency: whitespace between netstrings is skipped (people put newlines between them to keep
a stream readable); the netstrings document itself does not allow it.

Memory bound: after ``next_frame()`` returns ``None`` the deframer holds at most
``max_message_size + 1`` bytes (a partial body and its comma), or a partial length of at
most :data:`MAX_LENGTH_DIGITS` digits.
"""

from __future__ import annotations

import re

from rpcbd._compiled import mypyc_attr
from rpcbd.codecs.base import DEFAULT_MAX_MESSAGE_SIZE, Deframer, Framing
from rpcbd.codecs.buffer import ReceiveBuffer
from rpcbd.exceptions import FramingError, MessageTooLargeError

__all__ = ["MAX_LENGTH_DIGITS", "NetstringFraming"]

#: The most digits a length may have. Lengths up to this size over ``max_message_size`` are
#: skipped (recoverable); longer ones are treated as garbage. Twenty digits hold any 64-bit
#: length, and bound how much of a length is buffered while waiting for the colon.
MAX_LENGTH_DIGITS = 20

_COLON = b":"
_LENGTH = re.compile(rb"(0|[1-9][0-9]{0,%d}):" % (MAX_LENGTH_DIGITS - 1))
_COMMA = 0x2C
_ZERO = 0x30


class _NetstringDeframer(Deframer):
    """Reads ``LEN:``, then ``LEN`` bytes, then a comma."""

    def __init__(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        super().__init__(max_message_size)
        self._buffer = ReceiveBuffer()
        # Length of the body being read, or -1 while waiting for a length.
        self._length = -1
        # The body of an oversized netstring was discarded; its comma is still to be read.
        self._expect_comma = False
        self._error: FramingError | None = None

    def feed(self, data: bytes | bytearray) -> None:
        """Append received bytes (dropped once the stream is broken or while skipping)."""
        if self._error is None:
            self._buffer.append(data)

    def _fail(self, reason: str) -> FramingError:
        self._error = FramingError(reason, recoverable=False)
        self._buffer.clear()
        return self._error

    def next_frame(self) -> bytes | FramingError | None:
        """Return the next payload, a :class:`FramingError`, or ``None``."""
        if self._error is not None:
            return self._error
        buffer = self._buffer
        if self._expect_comma:
            if not buffer:
                return None
            if buffer[0] != _COMMA:
                return self._fail("netstring is missing its trailing comma")
            buffer.skip(1)
            self._expect_comma = False
        length = self._length
        if length < 0:
            buffer.skip_whitespace()
            if not buffer:
                return None
            data, start = buffer.view()
            well_formed = _LENGTH.match(data, start)
            if well_formed is not None:
                length = int(well_formed[1])
                buffer.skip(well_formed.end() - start)
            else:
                error = self._check_partial_length()
                if error is not None:
                    return error
                return None
            if length > self.max_message_size:
                buffer.discard(length)
                self._expect_comma = True
                return MessageTooLargeError(self.max_message_size, recoverable=True)
        if len(buffer) <= length:
            self._length = length
            return None
        if buffer[length] != _COMMA:
            return self._fail("netstring is missing its trailing comma")
        self._length = -1
        return buffer.take(length, 1)

    def _check_partial_length(self) -> FramingError | None:
        # The length is not (yet) a well-formed "LEN:". Say why if it never can be;
        # checking the digits seen so far, before the colon arrives, reports garbage at once
        # instead of once MAX_LENGTH_DIGITS bytes have piled up.
        buffer = self._buffer
        colon = buffer.find(_COLON, MAX_LENGTH_DIGITS + 1)
        digits = buffer.peek(colon if colon >= 0 else MAX_LENGTH_DIGITS + 1)
        if not digits.isdigit():  # b"".isdigit() is False: catches ":" with no digits
            return self._fail("netstring length is not a decimal number")
        if len(digits) > 1 and digits[0] == _ZERO:
            return self._fail("netstring length has a leading zero")
        if len(digits) > MAX_LENGTH_DIGITS:
            return self._fail("netstring length has too many digits")
        # A proper prefix of a well-formed length: wait for more bytes.
        return None

    def feed_eof(self) -> FramingError | None:
        """Return an error if the stream ended inside a netstring (whitespace is fine)."""
        if self._error is not None:
            return self._error
        buffer = self._buffer
        if self._length >= 0 or self._expect_comma or buffer.discarding or not buffer.is_blank():
            return FramingError("stream ended inside a netstring", recoverable=False)
        return None

    @property
    def buffered(self) -> int:
        """Bytes held and not yet returned as frames."""
        return len(self._buffer)


@mypyc_attr(allow_interpreted_subclasses=True)
class NetstringFraming(Framing):
    """djb netstrings, ``LEN:payload,`` (name ``"netstring"``)."""

    name = "netstring"

    def frame(self, payload: bytes) -> bytes:
        """Return ``b"%d:" % len(payload) + payload + b","``."""
        return b"%d:%b," % (len(payload), payload)

    def deframer(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> Deframer:
        """Return a new incremental netstring parser."""
        return _NetstringDeframer(max_message_size)

    def __repr__(self) -> str:
        return "NetstringFraming()"
