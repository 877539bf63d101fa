"""Newline framing: one compact JSON text per line (NDJSON / JSON Lines).

Wire format::

    {"jsonrpc":"2.0","method":"ping"}\\n

The deframer is lenient in what it accepts:

* a ``\\r`` before the ``\\n`` is stripped, so CRLF peers work;
* empty and whitespace-only lines are skipped, and whitespace at the start of a line is
  dropped (JSON ignores it anyway);
* a line whose payload (without the ``\\r``) is longer than ``max_message_size`` gives a
  recoverable :class:`~rpcbd.exceptions.MessageTooLargeError`, reported as soon as the limit
  is passed. The rest of the line is then dropped as it arrives, never buffered, and the
  next line is read normally.

Memory bound: after :meth:`~rpcbd.codecs.base.Deframer.next_frame` returns ``None`` the
deframer holds at most ``max_message_size + 1`` bytes (an incomplete line and its ``\\r``).

This module also holds :class:`DelimiterDeframer`, the deframer shared with the EOT framing.
"""

from __future__ import annotations

from rpcbd._compiled import mypyc_attr
from rpcbd.codecs.base import DEFAULT_MAX_MESSAGE_SIZE, Deframer, Framing
from rpcbd.codecs.buffer import WHITESPACE, ReceiveBuffer
from rpcbd.exceptions import FramingError, MessageTooLargeError

__all__ = ["DelimiterDeframer", "NewlineFraming"]

_WHITESPACE_INTS = frozenset(WHITESPACE)


class DelimiterDeframer(Deframer):
    """Cuts a stream at a one-byte delimiter (newline framing, EOT framing).

    Whitespace before a frame is skipped and empty frames are dropped, so blank lines or
    whitespace between EOT-terminated messages are not errors. A frame longer than
    ``max_message_size`` gives a recoverable :class:`MessageTooLargeError`; if its end has
    not arrived yet, its bytes are discarded up to the next delimiter as they arrive,
    without being buffered.

    For speed, every complete record held is split off in one C-level ``split`` and the
    frames are handed out from a list; frames already received but not yet pulled count in
    :attr:`buffered`. The common case takes neither the buffer nor the list: a ``bytes``
    chunk that ends a record while nothing is held is kept as it came, and when it holds
    one record the frame is cut out of it with one copy.

    Args:
        max_message_size: the largest payload accepted, in bytes.
        delimiter: the one-byte frame terminator.
        strip_cr: strip one ``\\r`` before the delimiter (CRLF line endings); the ``\\r``
            does not count toward the size limit.
    """

    def __init__(
        self,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        *,
        delimiter: bytes,
        strip_cr: bool = False,
    ) -> None:
        super().__init__(max_message_size)
        if len(delimiter) != 1:
            raise ValueError("the delimiter must be one byte")
        self._buffer = ReceiveBuffer()
        self._delimiter = delimiter
        self._strip_cr = strip_cr
        # Frames split off but not yet returned, last one first (so pop() is O(1)), and the
        # number of payload bytes in them.
        self._pending: list[bytes | FramingError] = []
        self._pending_size = 0
        # The longest run of bytes allowed before the delimiter: the payload plus the \r.
        self._max_run = max_message_size + 1 if strip_cr else max_message_size
        # A chunk of whole records received while the buffer was idle, kept as it came
        # (delimiter included) instead of being copied into the buffer and out again. Its
        # bytes come before anything in the buffer.
        self._complete: bytes | None = None

    def feed(self, data: bytes | bytearray) -> None:
        """Append received bytes (bytes of an oversized frame are dropped on arrival)."""
        # The common case: a read ends at the end of a record and nothing is held. Only
        # immutable bytes are kept (a caller may reuse a bytearray for its next read).
        if (
            self._complete is None
            and type(data) is bytes
            and data[-1:] == self._delimiter
            and self._buffer.is_idle()
        ):
            self._complete = data
        else:
            self._buffer.append(data)

    def next_frame(self) -> bytes | FramingError | None:
        """Return the next payload, a recoverable :class:`MessageTooLargeError`, or ``None``."""
        pending = self._pending
        while not pending:
            complete = self._complete
            if complete is not None:
                self._complete = None
                complete = complete[:-1]
            elif not self._buffer:
                return None  # nothing held: nothing complete, nothing over the limit
            else:
                complete = self._buffer.take_through_last(self._delimiter)
                if complete is None:
                    return self._no_delimiter()
            # One record (no delimiter inside) that is a frame as it is: not empty, no
            # whitespace to strip in front, no \r to strip at the end, not too long. This is
            # what _queue() would return, without splitting and counting a list.
            if (
                complete[:1] > b" "
                and len(complete) <= self.max_message_size
                and not (self._strip_cr and complete[-1:] == b"\r")
                and complete.find(self._delimiter) < 0  # cheaper than `in` (see endpoint.py)
            ):
                return complete
            self._queue(complete)
            pending = self._pending
        frame = pending.pop()
        if type(frame) is bytes:
            self._pending_size -= len(frame)
        return frame

    def _queue(self, complete: bytes) -> None:
        records = complete.split(self._delimiter)
        # The common case, checked at C speed over the whole batch: no record is empty or
        # starts with whitespace (min() finds the record with the smallest first byte, and
        # every whitespace byte is <= b" "), none can end in \r, none is too long. Then
        # every record is a frame as it is.
        if (
            min(records)[:1] > b" "
            and max(map(len, records)) <= self.max_message_size
            and not (self._strip_cr and b"\r" in complete)
        ):
            records.reverse()
            self._pending = records  # type: ignore[assignment]  # list is invariant
            self._pending_size = sum(map(len, records))
            return
        frames: list[bytes | FramingError] = []
        size = 0
        for record in records:
            frame = record
            if self._strip_cr and frame.endswith(b"\r"):
                frame = frame[:-1]
            if not frame or frame[0] in _WHITESPACE_INTS:
                frame = frame.lstrip(WHITESPACE)
                if not frame:
                    continue  # an empty or whitespace-only frame: nothing to deliver
            if len(frame) > self.max_message_size:
                frames.append(MessageTooLargeError(self.max_message_size, recoverable=True))
            else:
                frames.append(frame)
                size += len(frame)
        frames.reverse()
        self._pending = frames
        self._pending_size = size

    def _no_delimiter(self) -> FramingError | None:
        # No complete frame is held. If the partial one is already over the limit, say so
        # now and drop the rest of it as it arrives, instead of buffering it to the end.
        buffer = self._buffer
        if len(buffer) <= self._max_run:
            return None
        # Whitespace before the frame does not count toward the limit.
        buffer.skip_whitespace()
        if len(buffer) <= self._max_run:
            return None
        buffer.discard_through(self._delimiter)
        return MessageTooLargeError(self.max_message_size, recoverable=True)

    def feed_eof(self) -> FramingError | None:
        """Return an error if the stream ended inside a frame (whitespace is fine)."""
        buffer = self._buffer
        complete = self._complete
        if (
            buffer.discarding
            or (complete is not None and complete.strip(WHITESPACE))
            or not buffer.is_blank()
        ):
            return FramingError("stream ended inside a frame", recoverable=False)
        return None

    @property
    def buffered(self) -> int:
        """Bytes held and not yet returned as frames (including frames already split off)."""
        complete = self._complete
        held = len(self._buffer) + self._pending_size
        return held if complete is None else held + len(complete)


@mypyc_attr(allow_interpreted_subclasses=True)
class NewlineFraming(Framing):
    """Newline-delimited framing (name ``"newline"``, aliases ``"ndjson"`` and ``"lines"``).

    The framing every line-oriented tool speaks: ``nc``, ``jq -c``, log files. It relies on
    compact JSON never containing a raw newline (JSON escapes control characters in strings
    and the encoder emits no whitespace between tokens).
    """

    name = "newline"

    def frame(self, payload: bytes) -> bytes:
        """Return ``payload + b"\\n"``.

        Raises:
            ValueError: ``payload`` contains a newline, which would split it in two.
        """
        if b"\n" in payload:
            raise ValueError("a newline-framed payload must not contain b'\\n'")
        return payload + b"\n"

    def deframer(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> Deframer:
        """Return a new :class:`DelimiterDeframer` that splits on ``\\n`` and strips ``\\r``."""
        return DelimiterDeframer(max_message_size, delimiter=b"\n", strip_cr=True)

    def __repr__(self) -> str:
        return "NewlineFraming()"
