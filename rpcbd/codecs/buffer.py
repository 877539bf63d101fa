"""The receive buffer the stream deframers parse from.

One :class:`ReceiveBuffer` per incoming stream. Bytes are appended at the end as they arrive
and consumed from the front as frames are cut out. Two properties keep a deframer linear in
the number of bytes received, however the stream is split:

* **No rescanning.** :meth:`ReceiveBuffer.find` remembers how far it has already searched
  for a delimiter, so a frame that arrives one byte at a time is still scanned only once.
* **No quadratic consumption.** Taking a frame from the front only moves a start offset; the
  consumed prefix is deleted (``del data[:start]``) lazily, once it is more than half of the
  buffer, so each byte is moved at most a constant number of times. (CPython's ``bytearray``
  already makes front deletion cheap; PyPy's does not, and the lazy compaction keeps the
  number of ``del`` calls low on both.)

It also implements *discarding*: :meth:`ReceiveBuffer.discard` and
:meth:`ReceiveBuffer.discard_through` drop bytes that have not arrived yet, so a deframer can
skip an oversized frame without ever holding it (``STYLE.md`` practice 7: a size limit is
enforced by not buffering, not by buffering and complaining afterwards).

The buffer is sans-IO and knows nothing about frames; the deframers in this package decide
what to search for and what to take.
"""

from __future__ import annotations

import re

__all__ = ["WHITESPACE", "ReceiveBuffer"]

#: The JSON "insignificant whitespace" bytes (RFC 8259 section 2: space, horizontal tab,
#: line feed, carriage return). Deframers skip these between frames.
WHITESPACE = b" \t\n\r"

_WHITESPACE_INTS = frozenset(WHITESPACE)
_WHITESPACE_RUN = re.compile(rb"[ \t\n\r]*")

# Below this many bytes a slice of the bytearray is the cheapest copy; above it, slicing a
# memoryview avoids an intermediate bytearray (one copy instead of two: about ten times
# faster for a 1 MiB frame).
_VIEW_COPY_THRESHOLD = 4096


def _copy_out(data: bytearray, start: int, end: int) -> bytes:
    """``bytes(data[start:end])``, copying large ranges only once."""
    if end - start < _VIEW_COPY_THRESHOLD:
        return bytes(data[start:end])
    # Released explicitly (not left to reference counting, e.g. on PyPy): a live export
    # would make the next resize of `data` fail with BufferError.
    with memoryview(data) as view, view[start:end] as piece:
        return bytes(piece)


class ReceiveBuffer:
    """A ``bytearray`` with a consumed-prefix offset, a resumable search and lazy compaction.

    Offsets taken and returned by the methods are relative to the first unconsumed byte.
    """

    __slots__ = ("_data", "_discard", "_discard_through", "_scan", "_scan_delimiter", "_start")

    def __init__(self) -> None:
        self._data = bytearray()
        # Absolute index of the first byte not yet consumed.
        self._start = 0
        # Absolute index where the next find() for _scan_delimiter resumes: every position
        # before it is known not to start the delimiter.
        self._scan = 0
        self._scan_delimiter = b""
        # Bytes still to drop from future appends (discard()).
        self._discard = 0
        # Drop future appends up to and including this byte (discard_through()).
        self._discard_through: bytes | None = None

    def __len__(self) -> int:
        """Number of bytes held and not yet consumed."""
        return len(self._data) - self._start

    def __bool__(self) -> bool:
        """True when at least one unconsumed byte is held."""
        return len(self._data) > self._start

    def is_idle(self) -> bool:
        """True when no byte is held and no discard is pending, so the next bytes appended
        would be held exactly as they are (a deframer may then parse them in place)."""
        if len(self._data) > self._start:
            return False
        return not self._discard and self._discard_through is None

    def __getitem__(self, index: int) -> int:
        """The byte at ``index`` (relative, non-negative) as an ``int``.

        Raises:
            IndexError: ``index`` is not smaller than ``len(self)``.
        """
        position = self._start + index
        if index < 0 or position >= len(self._data):
            raise IndexError("ReceiveBuffer index out of range")
        return self._data[position]

    @property
    def discarding(self) -> bool:
        """True while bytes that have not arrived yet are set to be dropped on arrival."""
        return self._discard > 0 or self._discard_through is not None

    def append(self, data: bytes | bytearray) -> None:
        """Add received bytes at the end, first dropping any that a discard still owes."""
        if self._discard:
            count = min(self._discard, len(data))
            self._discard -= count
            self._data += data[count:]
        elif self._discard_through is not None:
            index = data.find(self._discard_through)
            if index >= 0:
                self._discard_through = None
                self._data += data[index + 1 :]
        else:
            self._data += data

    def find(self, delimiter: bytes, end: int | None = None) -> int:
        """Return the offset of the first ``delimiter``, or -1 if there is none yet.

        Only a delimiter that lies entirely within the first ``end`` bytes is found, so a
        caller can stop searching at its size limit. Bytes searched by an earlier call for
        the same delimiter are not searched again, until bytes are consumed.

        Args:
            delimiter: the byte string to look for.
            end: how many bytes from the front to search (default: all of them).
        """
        data = self._data
        start = self._start
        scan = self._scan
        position = scan if scan > start and self._scan_delimiter == delimiter else start
        stop = len(data) if end is None else start + end
        index = data.find(delimiter, position, stop)
        if index < 0:
            self._remember_scan(delimiter, position, stop)
            return -1
        return index - start

    def _remember_scan(self, delimiter: bytes, position: int, stop: int) -> None:
        # Nothing in [position, stop) starts the delimiter, except possibly in the last
        # len(delimiter) - 1 bytes, where a match could still be completed by more bytes.
        self._scan = max(position, min(stop, len(self._data)) - len(delimiter) + 1)
        self._scan_delimiter = delimiter

    def take_through_last(self, delimiter: bytes) -> bytes | None:
        """Consume every byte up to and including the last ``delimiter`` held.

        The hot path of the delimiter framings: the caller splits the result at the
        delimiter in C (``bytes.split``) instead of finding records one by one in Python.
        Bytes after the last delimiter stay held, remembered as scanned.

        Args:
            delimiter: a single byte.

        Returns:
            The consumed bytes without the final delimiter, or ``None`` if no delimiter is
            held.
        """
        data = self._data
        start = self._start
        scan = self._scan
        position = scan if scan > start and self._scan_delimiter == delimiter else start
        # Searching backwards from the end still only looks at bytes after `position`, so a
        # frame that trickles in is scanned once, not once per call.
        last = data.rfind(delimiter, position)
        self._scan_delimiter = delimiter
        if last < 0:
            self._scan = len(data)
            return None
        chunk = _copy_out(data, start, last)
        self._start = start = last + 1
        if start >= len(data):
            data.clear()
            self._start = self._scan = 0
        else:
            # The tail after the last delimiter has just been searched and has none.
            self._scan = len(data)
            if start > len(data) >> 1:
                del data[:start]
                self._scan -= start
                self._start = 0
        return chunk

    def peek(self, count: int) -> bytes:
        """Return (without consuming) up to ``count`` bytes from the front."""
        start = self._start
        return _copy_out(self._data, start, start + count)

    def take(self, count: int, drop: int = 0) -> bytes:
        """Consume and return ``count`` bytes from the front, then drop ``drop`` more.

        The caller must know that ``count + drop`` bytes are held (the usual case: it has
        just found a delimiter and takes the frame before it and drops the delimiter).
        """
        data = self._data
        start = self._start
        end = start + count
        chunk = _copy_out(data, start, end)
        self._start = start = end + drop
        # Lazy compaction, inlined because take() is on every deframer's hot path.
        if start >= len(data):
            data.clear()
            self._start = self._scan = 0
        elif start > len(data) >> 1:
            del data[:start]
            self._scan = max(self._scan - start, 0)
            self._start = 0
        return chunk

    def skip(self, count: int) -> None:
        """Consume and drop ``count`` bytes from the front (at most ``len(self)``)."""
        data = self._data
        self._start = start = min(self._start + count, len(data))
        if start >= len(data):
            data.clear()
            self._start = self._scan = 0
        elif start > len(data) >> 1:
            del data[:start]
            self._scan = max(self._scan - start, 0)
            self._start = 0

    def skip_whitespace(self) -> None:
        """Consume any :data:`WHITESPACE` bytes at the front."""
        data = self._data
        start = self._start
        # Checking one byte first keeps the common case (no whitespace) free of regex calls.
        if start < len(data) and data[start] in _WHITESPACE_INTS:
            match = _WHITESPACE_RUN.match(data, start)
            assert match is not None  # the pattern matches the empty string
            self.skip(match.end() - start)

    def is_blank(self) -> bool:
        """True when every held byte is :data:`WHITESPACE` (or none is held)."""
        return _WHITESPACE_RUN.fullmatch(self._data, self._start) is not None

    def clear(self) -> None:
        """Drop every held byte. Pending discards stay in force."""
        self._data.clear()
        self._start = self._scan = 0

    def discard(self, count: int) -> None:
        """Drop the next ``count`` bytes of the stream, held or not yet received."""
        held = len(self)
        if count <= held:
            self.skip(count)
        else:
            self.clear()
            self._discard = count - held

    def discard_through(self, delimiter: bytes) -> None:
        """Drop bytes up to and including the next ``delimiter``, held or not yet received.

        Args:
            delimiter: a single byte; being one byte, it cannot straddle two appends.
        """
        if len(delimiter) != 1:
            raise ValueError("discard_through() takes a one-byte delimiter")
        index = self.find(delimiter)
        if index >= 0:
            self.skip(index + 1)
        else:
            self.clear()
            self._discard_through = delimiter

    def view(self) -> tuple[bytearray, int]:
        """Return the underlying ``bytearray`` and the absolute index of the first held byte.

        For scanners (``re`` with ``pos``/``endpos``) that must not copy. The pair is valid
        until the next call that consumes or appends; the caller must not mutate it.
        """
        return self._data, self._start
