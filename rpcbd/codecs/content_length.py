"""Content-Length framing: the Language Server Protocol base protocol (also vscode-jsonrpc).

Wire format::

    Content-Length: 52\\r\\n
    \\r\\n
    {"jsonrpc":"2.0","method":"initialized","params":{}}

From the LSP specification, "Base Protocol"
(https://microsoft.github.io/language-server-protocol/specifications/lsp/3.17/specification/#baseProtocol):

    The base protocol consists of a header and a content part (comparable to HTTP). The
    header and content part are separated by a '\\r\\n'.

    The header part consists of header fields. Each header field is comprised of a name
    and a value, separated by ': ' (a colon and a space). [...] Each header field is
    terminated by '\\r\\n'. Considering the last header field and the overall header itself
    are each terminated with '\\r\\n', and that at least one header is mandatory, this means
    that two '\\r\\n' sequences always immediately precede the content part of a message.

    Content-Length  number  The length of the content part in bytes. This header is
                            required.
    Content-Type    string  The mime type of the content part. Defaults to
                            application/vscode-jsonrpc; charset=utf-8

    The header part is encoded using the 'ascii' encoding.

and, on the content part:

    It defaults to utf-8, which is the only encoding supported right now. If a server or
    client receives a header with a different encoding than utf-8 it should respond with
    an error. (Prior versions of the protocol used the string constant utf8 which is not a
    correct encoding constant according to specification.) For backwards compatibility it
    is highly recommended that a client and a server treats the string utf8 as utf-8.

What this deframer does with that:

* Header names are matched case-insensitively (the spec says the fields follow "HTTP
  semantic", and HTTP field names are case-insensitive). Unknown headers are ignored.
  Spaces around the colon and the value are optional.
* Lenient line endings: a bare ``\\n`` is accepted where ``\\r\\n`` is expected, because
  hand-written clients and some test harnesses send it and it is never ambiguous here.
  Whitespace (blank lines) before a header section is skipped, for the same reason.
  The encoder always writes ``\\r\\n``.
* ``Content-Length`` missing, not a decimal number (including negative numbers), longer than
  20 digits, or given twice with different values: :class:`FramingError`,
  ``recoverable=False``, because the end of the message is unknown.
* A header line without a colon or whose name is not an HTTP token, or a header section
  longer than :data:`MAX_HEADER_SIZE` bytes: :class:`FramingError`, ``recoverable=False``.
* A ``Content-Type`` whose ``charset`` is not ``utf-8`` (``utf8`` and no charset at all are
  accepted, case-insensitively): :class:`FramingError`, ``recoverable=True``; the length is
  known, so the body is skipped without being buffered and the next message is read. (The
  spec's "respond with an error" is up to the endpoint that receives this error.)
* ``Content-Length`` over ``max_message_size``: :class:`MessageTooLargeError`,
  ``recoverable=True``, body skipped the same way.

Memory bound: after ``next_frame()`` returns ``None`` the deframer holds at most
``max_message_size`` bytes of a body, or :data:`MAX_HEADER_SIZE` bytes of header.
"""

from __future__ import annotations

import re

from rpcbd._compiled import mypyc_attr
from rpcbd.codecs.base import DEFAULT_MAX_MESSAGE_SIZE, Deframer, Framing
from rpcbd.codecs.buffer import WHITESPACE, ReceiveBuffer
from rpcbd.exceptions import FramingError, MessageTooLargeError

__all__ = ["MAX_HEADER_SIZE", "ContentLengthFraming"]

#: The most bytes a header section (all header lines and the empty line) may take. Real LSP
#: headers are under 100 bytes; the cap stops a peer from making us buffer headers forever.
MAX_HEADER_SIZE = 8 * 1024

# Twenty digits hold any 64-bit length; more is garbage (and int() of thousands of digits is
# slow and, from Python 3.11, refused).
_MAX_LENGTH_DIGITS = 20
_UTF8_CHARSETS = frozenset({"utf-8", "utf8"})
# RFC 9110 section 5.6.2: token = 1*tchar.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CANONICAL_HEADER = re.compile(rb"Content-Length: ([0-9]{1,%d})\r\n\r\n" % _MAX_LENGTH_DIGITS)


def _charset_ok(content_type: str) -> bool:
    # Content-Type: type/subtype *( ";" name "=" value ), RFC 9110 section 8.3. Only the
    # charset parameter matters to us; the media type itself is not checked because peers
    # send all sorts (application/vscode-jsonrpc, application/json, ...).
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').lower() in _UTF8_CHARSETS
    return True


class _ContentLengthDeframer(Deframer):
    """Reads header lines up to an empty line, then ``Content-Length`` bytes."""

    def __init__(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        super().__init__(max_message_size)
        self._buffer = ReceiveBuffer()
        self._error: FramingError | None = None
        # A chunk received while nothing was held, kept as it came: when it is exactly one
        # message with the canonical header, the body is cut out of it with one copy (not
        # copied into the buffer and out again). Only set while the buffer is empty.
        self._chunk: bytes | None = None
        self._reset_headers()

    def _reset_headers(self) -> None:
        # Header lines are consumed one at a time, so these carry what was read so far.
        self._header_size = 0
        self._content_length = -1
        self._content_type: str | None = None
        # Length of the body being read, or -1 while reading headers.
        self._length = -1

    def _fail(self, reason: str) -> FramingError:
        self._error = FramingError(reason, recoverable=False)
        self._buffer.clear()
        return self._error

    def feed(self, data: bytes | bytearray) -> None:
        """Append received bytes (dropped once the stream is broken or while skipping)."""
        if self._error is not None:
            return
        chunk = self._chunk
        if chunk is not None:
            # Bytes after the chunk: give up on the fast path, keep the order.
            self._chunk = None
            self._buffer.append(chunk)
        elif (
            type(data) is bytes  # a caller may reuse a bytearray for its next read
            and self._length < 0
            and self._header_size == 0
            and self._buffer.is_idle()
        ):
            self._chunk = data
            return
        self._buffer.append(data)

    def next_frame(self) -> bytes | FramingError | None:
        """Return the next content part, a :class:`FramingError`, or ``None``."""
        if self._error is not None:
            return self._error
        buffer = self._buffer
        chunk = self._chunk
        if chunk is not None:
            self._chunk = None
            # What the loop below does for a buffer holding exactly this one message.
            canonical = _CANONICAL_HEADER.match(chunk)
            if canonical is not None:
                start = canonical.end()
                length = int(canonical[1])
                if start + length == len(chunk) and length <= self.max_message_size:
                    return chunk[start:]
            buffer.append(chunk)
        elif self._length < 0 and not buffer:
            # No header byte held, or the body of a skipped message is still being dropped
            # as it arrives (which holds nothing either).
            return None
        while self._length < 0:
            if self._header_size == 0:
                buffer.skip_whitespace()
                # Fast path for the header every LSP implementation sends. Anything else
                # (other headers, other spellings, a header split across reads) takes the
                # general line-by-line path below, which gives the same result.
                data, start = buffer.view()
                canonical = _CANONICAL_HEADER.match(data, start)
                if canonical is not None:
                    self._content_length = int(canonical[1])
                    buffer.skip(canonical.end() - start)
                    result = self._end_of_headers()
                    if result is not None:
                        return result
                    continue
            room = MAX_HEADER_SIZE - self._header_size
            newline = buffer.find(b"\n", room)
            if newline < 0:
                if len(buffer) >= room:
                    return self._fail(f"header section longer than {MAX_HEADER_SIZE} bytes")
                return None
            line = buffer.take(newline, 1)
            self._header_size += newline + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            if line:
                error = self._header_line(line)
                if error is not None:
                    return error
            else:
                result = self._end_of_headers()
                if result is not None:
                    return result
        length = self._length
        if len(buffer) < length:
            return None
        self._reset_headers()
        return buffer.take(length)

    def _header_line(self, line: bytes) -> FramingError | None:
        name, colon, value = line.partition(b":")
        if not colon:
            return self._fail(f"header line without a colon: {line[:40]!r}")
        name = name.strip()
        if _TOKEN.fullmatch(name) is None:
            # RFC 9110 section 5.1: field-name = token. Checking it catches a peer that
            # sends bare JSON (another framing) at the first line, not after MAX_HEADER_SIZE.
            return self._fail(f"invalid header name: {name[:40]!r}")
        name = name.lower()
        value = value.strip()
        if name == b"content-length":
            if not value.isdigit():  # bytes.isdigit() is ASCII-only; rejects "-1" and "+1"
                kind = "negative" if value.startswith(b"-") else "not a decimal number"
                return self._fail(f"Content-Length is {kind}: {value[:40]!r}")
            # Strip leading zeros before int(): a few thousand of them would otherwise hit
            # Python's limit on int() of long digit strings (ValueError).
            digits = value.lstrip(b"0")
            if len(digits) > _MAX_LENGTH_DIGITS:
                return self._fail("Content-Length is out of range")
            length = int(digits or b"0")
            # Two different lengths make the end of the message ambiguous; HTTP treats
            # that as an unrecoverable framing error (RFC 9110 section 8.6, RFC 9112
            # section 6.3), and so do we, rather than guess which one the peer meant.
            if self._content_length >= 0 and self._content_length != length:
                return self._fail("conflicting Content-Length headers")
            self._content_length = length
        elif name == b"content-type":
            # "The header part is encoded using the 'ascii' encoding"; latin-1 decodes any
            # byte, so a stray non-ASCII byte makes the charset check fail, not crash.
            self._content_type = value.decode("latin-1")
        return None

    def _end_of_headers(self) -> FramingError | None:
        length = self._content_length
        if length < 0:
            return self._fail("missing Content-Length header")
        content_type = self._content_type
        if length > self.max_message_size:
            self._reset_headers()
            self._buffer.discard(length)
            return MessageTooLargeError(self.max_message_size, recoverable=True)
        if content_type is not None and not _charset_ok(content_type):
            self._reset_headers()
            self._buffer.discard(length)
            return FramingError(
                f"unsupported Content-Type {content_type[:80]!r}: only utf-8 is supported",
                recoverable=True,
            )
        self._length = length
        return None

    def feed_eof(self) -> FramingError | None:
        """Return an error if the stream ended inside a message (whitespace is fine)."""
        if self._error is not None:
            return self._error
        buffer = self._buffer
        chunk = self._chunk
        if (
            self._header_size
            or self._length >= 0
            or buffer.discarding
            or (chunk is not None and chunk.strip(WHITESPACE))
            or not buffer.is_blank()
        ):
            return FramingError("stream ended inside a message", recoverable=False)
        return None

    @property
    def buffered(self) -> int:
        """Bytes held and not yet returned as frames."""
        chunk = self._chunk
        return len(self._buffer) if chunk is None else len(chunk)


@mypyc_attr(allow_interpreted_subclasses=True)
class ContentLengthFraming(Framing):
    """LSP base protocol headers (name ``"content-length"``, aliases ``"lsp"``,
    ``"content_length"``)."""

    name = "content-length"

    def frame(self, payload: bytes) -> bytes:
        """Return ``Content-Length: N\\r\\n\\r\\n`` followed by ``payload`` (N in bytes).

        No ``Content-Type`` is written: the default (utf-8 JSON-RPC) is what is sent.
        """
        return b"Content-Length: %d\r\n\r\n%b" % (len(payload), payload)

    def deframer(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> Deframer:
        """Return a new incremental LSP header/content parser."""
        return _ContentLengthDeframer(max_message_size)

    def __repr__(self) -> str:
        return "ContentLengthFraming()"
