"""JSON-stream framing: bare concatenated JSON objects and arrays, no delimiter.

What many JSON-RPC peers send over raw TCP (the ``json-rpc`` Go package's stream codec,
``jsonrpclib``, hand-rolled servers)::

    {"jsonrpc":"2.0","method":"a"}{"jsonrpc":"2.0","method":"b"}
    [{"jsonrpc":"2.0","method":"c","id":1}]

Frames are found with a small incremental scanner, not a parser: it tracks the nesting depth
of ``{}``/``[]`` and whether it is inside a string (where brackets do not count, and a
backslash escapes the next byte). A value ends when the depth returns to zero. The JSON is
not validated here (``{]`` closes like ``{}``); the dialect parses each frame afterwards and
reports any syntax error as a Parse error.

The scanner keeps its state between calls, so bytes are scanned once however the stream is
split, and it jumps between interesting bytes with :mod:`re` instead of looping over every
byte in Python.

Errors, both ``recoverable=False`` because without a delimiter there is nothing to
resynchronise on:

* a byte between values that is neither whitespace nor ``{`` / ``[`` (JSON-RPC messages
  are objects, batches are arrays): :class:`~rpcbd.exceptions.FramingError`;
* a value growing past ``max_message_size`` before its end is found:
  :class:`~rpcbd.exceptions.MessageTooLargeError` (its end could only be found by scanning
  it, which is what the limit forbids).

The encoder appends a newline to each payload, which keeps the output readable and is
whitespace to any JSON-stream reader.

Memory bound: after ``next_frame()`` returns ``None`` the deframer holds at most
``max_message_size`` bytes.
"""

from __future__ import annotations

import re

from rpcbd._compiled import mypyc_attr
from rpcbd.codecs.base import DEFAULT_MAX_MESSAGE_SIZE, Deframer, Framing
from rpcbd.codecs.buffer import WHITESPACE, ReceiveBuffer
from rpcbd.exceptions import FramingError, MessageTooLargeError

__all__ = ["JsonStreamFraming"]

# Inside a string: everything up to the closing quote, taking escapes two bytes at a time.
# Written as the "unrolled loop" so the regex engine does not backtrack. It stops at the
# closing quote, at the end of the searched range, or just before a backslash that is the
# last byte in range (its escaped byte has not arrived yet).
_STRING_BODY_PATTERN = rb'[^"\\]*(?:\\.[^"\\]*)*'
_STRING_BODY = re.compile(_STRING_BODY_PATTERN, re.DOTALL)
# Outside strings, the only bytes that matter are brackets and strings. A string token
# always matches, complete or not; group 1 is the closing quote, empty if not yet received.
# Between tokens, numbers, literals, commas and colons are skipped by the regex engine.
_TOKEN = re.compile(rb'[\[\]{}]|"' + _STRING_BODY_PATTERN + rb'("?)', re.DOTALL)

_QUOTE = 0x22
_OPENERS = frozenset(b"[{")


class _JsonStreamDeframer(Deframer):
    """Finds where each top-level JSON object or array ends."""

    def __init__(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        super().__init__(max_message_size)
        self._buffer = ReceiveBuffer()
        self._error: FramingError | None = None
        # Scanner state for the value being read: nesting depth (0 between values), whether
        # the scan stopped inside a string, and how far (relative to the value's first byte)
        # has been scanned.
        self._depth = 0
        self._in_string = False
        self._scanned = 0

    def feed(self, data: bytes | bytearray) -> None:
        """Append received bytes (dropped once the stream is broken)."""
        if self._error is None:
            self._buffer.append(data)

    def _fail(self, error: FramingError) -> FramingError:
        self._error = error
        self._buffer.clear()
        return error

    def next_frame(self) -> bytes | FramingError | None:
        """Return the next JSON value's bytes, a :class:`FramingError`, or ``None``."""
        if self._error is not None:
            return self._error
        buffer = self._buffer
        if self._depth == 0:
            buffer.skip_whitespace()
            if not buffer:
                return None
            first = buffer[0]
            if first not in _OPENERS:
                return self._fail(
                    FramingError(
                        f"expected a JSON object or array, got byte {bytes([first])!r}",
                        recoverable=False,
                    )
                )
            self._depth = 1
            self._in_string = False
            self._scanned = 1

        data, start = buffer.view()
        # Never scan past the limit: a value that does not end within it is an error.
        stop = min(len(data), start + self.max_message_size)
        position = start + self._scanned
        depth = self._depth
        if self._in_string:
            # Resume inside the string the last call stopped in.
            match = _STRING_BODY.match(data, position, stop)
            assert match is not None  # the pattern matches the empty string
            position = match.end()
            if position < stop and data[position] == _QUOTE:
                position += 1
                self._in_string = False
        if not self._in_string:
            # search() in a loop rather than finditer(): a finditer() scanner keeps the
            # bytearray exported (unresizable) for as long as it lives.
            search = _TOKEN.search
            while True:
                token = search(data, position, stop)
                if token is None:
                    position = stop
                    break
                position = token.end()
                byte = data[token.start()]
                if byte == _QUOTE:
                    if not token[1]:
                        # The string runs past the bytes received so far (or ends in a
                        # backslash whose escaped byte has not arrived): resume inside it.
                        self._in_string = True
                        break
                elif byte in _OPENERS:
                    depth += 1
                else:
                    depth -= 1
                    if depth == 0:
                        self._depth = 0
                        return buffer.take(position - start)

        self._depth = depth
        self._scanned = position - start
        if len(buffer) > self.max_message_size:
            return self._fail(MessageTooLargeError(self.max_message_size, recoverable=False))
        return None

    def feed_eof(self) -> FramingError | None:
        """Return an error if the stream ended inside a value (whitespace is fine)."""
        if self._error is not None:
            return self._error
        if self._depth or not self._buffer.is_blank():
            return FramingError("stream ended inside a JSON value", recoverable=False)
        return None

    @property
    def buffered(self) -> int:
        """Bytes held and not yet returned as frames."""
        return len(self._buffer)


@mypyc_attr(allow_interpreted_subclasses=True)
class JsonStreamFraming(Framing):
    """Concatenated JSON values (name ``"json-stream"``, alias ``"json_stream"``)."""

    name = "json-stream"

    def frame(self, payload: bytes) -> bytes:
        """Return ``payload + b"\\n"``.

        Raises:
            ValueError: ``payload`` is not a JSON object or array (a scalar cannot be
                delimited in a JSON stream: ``1`` followed by ``2`` reads as ``12``).
        """
        if payload.lstrip(WHITESPACE)[:1] not in (b"{", b"["):
            raise ValueError("a json-stream payload must be a JSON object or array")
        return payload + b"\n"

    def deframer(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> Deframer:
        """Return a new incremental JSON-stream scanner."""
        return _JsonStreamDeframer(max_message_size)

    def __repr__(self) -> str:
        return "JsonStreamFraming()"
