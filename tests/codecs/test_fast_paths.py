"""The codecs' fast paths give exactly what their general paths give (hypothesis).

- ``JsonRpc2.decode`` (fast path for the common shapes) against
  ``JsonRpc2._decode_general`` (every value, valid or not).
- :class:`~rpcbd.codecs.newline.DelimiterDeframer` (a chunk of whole records kept as it
  came; one record handed out without a split) against a model of the newline and EOT
  framings written from their documentation, and against itself fed ``bytearray`` chunks
  (which never take the chunk fast path).
- The Content-Length deframer (one whole message in one chunk cut out in place) fed
  ``bytes`` against the same fed ``bytearray``.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rpcbd.codecs.base import Deframer
from rpcbd.codecs.buffer import WHITESPACE
from rpcbd.codecs.framing import get_framing
from rpcbd.codecs.jsonrpc2 import JSONRPC_V2, _common_shape
from rpcbd.core.messages import ErrorResponse, Invalid, Notification, Request, Response
from rpcbd.exceptions import FramingError, MessageTooLargeError
from tests.codecs.test_framing_properties import split

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- JsonRpc2.decode ----------------------------------------------------------------------

#: Member values chosen to sit on both sides of every check of the fast path.
MEMBER_VALUES = st.one_of(
    st.sampled_from(["2.0", "1.0", "", "echo", "$/cancelRequest", 2.0, 1.5, float("inf")]),
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.text(max_size=4),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)
MEMBERS = st.sampled_from(["jsonrpc", "id", "method", "params", "result", "error", "x"])
MESSAGES = st.one_of(
    st.dictionaries(MEMBERS, MEMBER_VALUES, max_size=6),
    # The valid shapes, so that most examples exercise the fast path itself.
    st.fixed_dictionaries(
        {"jsonrpc": st.just("2.0"), "method": st.text(max_size=4)},
        optional={"id": MEMBER_VALUES, "params": MEMBER_VALUES},
    ),
    st.fixed_dictionaries(
        {"jsonrpc": st.just("2.0"), "id": MEMBER_VALUES},
        optional={"result": MEMBER_VALUES, "error": MEMBER_VALUES},
    ),
    MEMBER_VALUES,
)


def describe(message: Any) -> Any:
    """A comparable form of a decoded message (exceptions compare by identity)."""
    if isinstance(message, Invalid):
        error = message.error
        return (Invalid, message.id, message.is_response, type(error), str(error), error.data)
    if isinstance(message, ErrorResponse):
        error = message.error
        return (ErrorResponse, message.id, type(error), error.code, str(error), error.data)
    return message


class TestDecodeFastPath:
    @SETTINGS
    @given(value=MESSAGES)
    @example(value={"jsonrpc": "2.0", "id": 1, "method": "echo", "params": ["x"]})
    @example(value={"jsonrpc": "2.0", "id": True, "method": "echo"})
    @example(value={"jsonrpc": "2.0", "method": "echo", "params": None})
    @example(value={"jsonrpc": "2.0", "method": None, "result": 1, "id": 1})
    @example(value={"result": 1, "id": "a"})
    @example(value={"result": 1, "id": 1, "error": None})
    def test_decode_equals_general_path(self, value: Any) -> None:
        assert describe(JSONRPC_V2.decode(value)) == describe(JSONRPC_V2._decode_general(value))

    def test_common_shapes_take_the_fast_path(self) -> None:
        request = {"jsonrpc": "2.0", "id": "a", "method": "m", "params": {"x": 1}}
        assert _common_shape(request) == ("m", {"x": 1}, "a")
        assert JSONRPC_V2.decode(request) == Request("m", {"x": 1}, "a")
        notification = {"jsonrpc": "2.0", "method": "m"}
        assert _common_shape(notification) == ("m", None, None)
        assert JSONRPC_V2.decode(notification) == Notification("m", None)
        response = {"jsonrpc": "2.0", "result": [1], "id": 7}
        assert _common_shape(response) == (None, [1], 7)
        assert JSONRPC_V2.decode(response) == Response(7, [1])

    def test_other_shapes_take_the_general_path(self) -> None:
        for value in (
            {"jsonrpc": "2.0", "id": None, "method": "m"},
            {"jsonrpc": "2.0", "id": 1.0, "method": "m"},
            {"jsonrpc": "2.0", "id": False, "method": "m"},
            {"jsonrpc": "2.0", "id": 1, "method": "m", "params": 3},
            {"jsonrpc": "1.0", "id": 1, "method": "m"},
            {"jsonrpc": "2.0", "id": 1, "result": 1, "error": None},
            {"jsonrpc": "2.0", "id": None, "result": 1},
            {"jsonrpc": "2.0", "id": 1, "error": {"code": 1, "message": "x"}},
            [1],
            "x",
        ):
            assert _common_shape(value) is None, value


# -- deframers ----------------------------------------------------------------------------

TOO_LARGE = "too large"

#: Records biased toward what the deframers treat specially: whitespace in front, a \r at
#: the end, empty records, EOT and newline bytes inside.
RECORDS = st.lists(
    st.one_of(
        st.binary(max_size=14),
        st.sampled_from([b"", b" ", b"\r", b"\t\r", b"  {}", b"{}\r", b"[1]", b"x\ry", b"\x04"]),
    ),
    max_size=8,
)


def pull(deframer: Deframer) -> list[Any]:
    """Every frame available now, errors as comparable tuples."""
    out: list[Any] = []
    while (frame := deframer.next_frame()) is not None:
        if isinstance(frame, FramingError):
            out.append(TOO_LARGE if isinstance(frame, MessageTooLargeError) else repr(frame))
            if not frame.recoverable:
                break
        else:
            assert type(frame) is bytes
            out.append(frame)
    return out


def drive(deframer: Deframer, chunks: list[Any], pull_every: int) -> tuple[list[Any], Any]:
    """Feed the chunks, pulling frames after every ``pull_every`` of them; record what came
    out and ``buffered`` at each pull, then the end of stream."""
    trace: list[Any] = []
    for index, chunk in enumerate(chunks, 1):
        deframer.feed(chunk)
        if index % pull_every == 0:
            trace.append((pull(deframer), deframer.buffered))
    trace.append((pull(deframer), deframer.buffered))
    eof = deframer.feed_eof()
    return trace, None if eof is None else (type(eof), str(eof), eof.recoverable)


def delimiter_model(
    stream: bytes, max_size: int, delimiter: bytes, strip_cr: bool
) -> tuple[list[Any], bool]:
    """The frames of a whole stream as the newline/EOT framings document them, and whether
    its end is inside a frame."""
    *records, last = stream.split(delimiter)
    frames: list[Any] = []
    for record in records:
        if strip_cr and record.endswith(b"\r"):
            record = record[:-1]
        record = record.lstrip(WHITESPACE)
        if record:
            frames.append(TOO_LARGE if len(record) > max_size else record)
    # An unterminated record is reported too large as soon as it is (the \r it may end in
    # counts, whitespace in front does not); either way the stream ends inside it.
    partial = last.lstrip(WHITESPACE)
    if len(partial) > (max_size + 1 if strip_cr else max_size):
        frames.append(TOO_LARGE)
    return frames, bool(partial)


class TestDelimiterDeframer:
    @SETTINGS
    @given(
        framing=st.sampled_from(["newline", "eot"]),
        records=RECORDS,
        tail=st.sampled_from([b"", b"  ", b"{", b"x" * 20, b"\r"]),
        points=st.lists(st.integers(0, 200), max_size=6),
        max_size=st.integers(1, 12),
        pull_every=st.integers(1, 3),
    )
    def test_matches_the_documented_model(
        self,
        framing: str,
        records: list[bytes],
        tail: bytes,
        points: list[int],
        max_size: int,
        pull_every: int,
    ) -> None:
        delimiter, strip_cr = (b"\n", True) if framing == "newline" else (b"\x04", False)
        stream = b"".join(record + delimiter for record in records) + tail
        chunks = split(stream, points)
        trace, eof = drive(get_framing(framing).deframer(max_size), chunks, pull_every)
        frames, ends_inside = delimiter_model(stream, max_size, delimiter, strip_cr)
        assert [frame for pulled, _ in trace for frame in pulled] == frames
        assert (eof is not None) == ends_inside

    @SETTINGS
    @given(
        framing=st.sampled_from(["newline", "eot", "content-length"]),
        records=RECORDS,
        points=st.lists(st.integers(0, 200), max_size=6),
        max_size=st.integers(1, 12),
        pull_every=st.integers(1, 3),
        tail=st.sampled_from([b"", b" ", b"x", b"Content-Length: 2\r\n\r\n{"]),
    )
    def test_bytes_and_bytearray_chunks_give_the_same(
        self,
        framing: str,
        records: list[bytes],
        points: list[int],
        max_size: int,
        pull_every: int,
        tail: bytes,
    ) -> None:
        # Only bytes chunks take the fast paths (a bytearray may be reused by the caller):
        # frames, `buffered` after every pull and the end of stream must not differ.
        frame = get_framing(framing).frame
        stream = b""
        for record in records:
            try:
                stream += frame(record)
            except ValueError:  # the delimiter inside: sent raw, as a peer might
                stream += record
        chunks = split(stream + tail, points)
        fast = drive(get_framing(framing).deframer(max_size), chunks, pull_every)
        general = drive(
            get_framing(framing).deframer(max_size),
            [bytearray(chunk) for chunk in chunks],
            pull_every,
        )
        assert fast == general

    def test_one_record_chunk_is_kept_as_received(self) -> None:
        deframer = get_framing("newline").deframer()
        deframer.feed(b'{"a":1}\n')
        assert deframer.buffered == 8
        assert deframer.next_frame() == b'{"a":1}'
        assert deframer.buffered == 0
        assert deframer.next_frame() is None
        assert deframer.feed_eof() is None

    def test_bytes_after_a_kept_chunk_come_after_it(self) -> None:
        deframer = get_framing("newline").deframer()
        deframer.feed(b"1\n2\n")
        deframer.feed(b"3\n4")
        assert deframer.buffered == 7
        assert [deframer.next_frame() for _ in range(4)] == [b"1", b"2", b"3", None]
        deframer.feed(b"\n")
        assert deframer.next_frame() == b"4"

    def test_content_length_one_message_chunk(self) -> None:
        deframer = get_framing("content-length").deframer()
        deframer.feed(b"Content-Length: 2\r\n\r\n{}")
        assert deframer.buffered == 23
        assert deframer.next_frame() == b"{}"
        assert deframer.next_frame() is None
        deframer.feed(b"Content-Length: 2\r\n\r\n{")
        assert deframer.next_frame() is None
        deframer.feed(b"}")
        assert deframer.next_frame() == b"{}"
        assert deframer.feed_eof() is None
