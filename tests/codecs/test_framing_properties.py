"""Hypothesis properties every framing must have.

1. Round trip: any list of payloads comes back intact however the byte stream is split.
2. Garbage in, documented errors out: random bytes give only payloads and FramingError
   instances; after a non-recoverable error the deframer stays dead.
3. Size limit: the deframer never holds more than max_message_size + a header allowance +
   the latest chunk; oversized frames give MessageTooLargeError and, when recoverable, the
   frames after them still come out intact.
4. End of stream: feed_eof() reports a partial frame and accepts a clean end.

Each property runs every framing on the same generated example (rather than parametrizing
over framings) because generating the JSON payloads is what takes the time.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rpcbd.codecs.base import Deframer
from rpcbd.codecs.content_length import MAX_HEADER_SIZE
from rpcbd.codecs.framing import get_framing
from rpcbd.exceptions import FramingError, MessageTooLargeError

FRAMINGS = ["newline", "eot", "content-length", "netstring", "length-prefix", "json-stream"]

#: Bytes a deframer may hold beyond max_message_size for a well-formed stream (a partial
#: header, a trailing \r or comma). Documented in each framing module.
HEADER_ALLOWANCE = 64
#: Worst case for arbitrary input: a Content-Length header section may grow to its cap.
GARBAGE_ALLOWANCE = dict.fromkeys(FRAMINGS, HEADER_ALLOWANCE)
GARBAGE_ALLOWANCE["content-length"] = MAX_HEADER_SIZE

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Strings biased toward the bytes that matter to some framing: brackets and quotes for the
# JSON scanner, escapes, newlines (escaped by JSON), control bytes, non-ASCII.
TRICKY = ["}", "{", "]", "[", '"', "\\", '\\"', "\n", "\r\n", "\x04", ",", ":", "é", "€", "😀"]
texts = st.one_of(
    st.text(st.characters(codec="utf-8"), max_size=20),
    st.lists(st.sampled_from(TRICKY), max_size=8).map("".join),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=12,
)
containers = st.one_of(
    st.lists(json_values, max_size=5), st.dictionaries(texts, json_values, max_size=5)
)


def compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


payloads = containers.map(compact)


def split(data: bytes, points: list[int]) -> list[bytes]:
    """Cut ``data`` at the given points (taken modulo len + 1)."""
    cuts = sorted({p % (len(data) + 1) for p in points})
    edges = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def run(
    deframer: Deframer, chunks: list[bytes], allowance: int | None = None
) -> list[bytes | FramingError]:
    """Feed ``chunks`` one by one, pulling every frame after each; check the memory bound."""
    out: list[bytes | FramingError] = []
    limit = deframer.max_message_size
    for chunk in chunks:
        deframer.feed(chunk)
        if allowance is not None:
            assert deframer.buffered <= limit + allowance + len(chunk)
        while (frame := deframer.next_frame()) is not None:
            assert isinstance(frame, (bytes, FramingError)), frame
            out.append(frame)
            if isinstance(frame, FramingError) and not frame.recoverable:
                break
        if allowance is not None:
            assert deframer.buffered <= limit + allowance
        if out and isinstance(out[-1], FramingError) and not out[-1].recoverable:
            break
    return out


class TestRoundTrip:
    """Property 1: payloads survive framing, any split of the stream, and deframing."""

    @SETTINGS
    @given(items=st.lists(payloads, max_size=8), points=st.lists(st.integers(0, 10_000)))
    def test_any_split(self, items: list[bytes], points: list[int]) -> None:
        for name in FRAMINGS:
            framing = get_framing(name)
            data = b"".join(framing.frame(item) for item in items)
            deframer = framing.deframer()
            assert run(deframer, split(data, points)) == items, name
            assert deframer.buffered == 0, name
            assert deframer.feed_eof() is None, name

    @SETTINGS
    @given(items=st.lists(payloads, max_size=4))
    def test_byte_at_a_time(self, items: list[bytes]) -> None:
        for name in FRAMINGS:
            framing = get_framing(name)
            data = b"".join(framing.frame(item) for item in items)
            deframer = framing.deframer()
            assert run(deframer, [data[i : i + 1] for i in range(len(data))]) == items, name
            assert deframer.feed_eof() is None, name


# Random bytes, mixed with fragments that get a parser past its first check.
FRAGMENTS = [
    b"{", b"}", b"[", b"]", b'"', b"\\", b"\n", b"\r\n", b" ", b"\x04", b":", b",", b"0",
    b"7", b"12:", b"Content-Length: ", b"content-length:5\n", b"Content-Type: a; charset=x\r\n",
    b"\r\n\r\n", b"\x00\x00\x00\x05", b"\x00\x00\x01\x00", b"\xff", b"a",
]  # fmt: skip
garbage = st.lists(st.sampled_from(FRAGMENTS) | st.binary(max_size=12), max_size=30).map(b"".join)


@pytest.mark.parametrize("name", FRAMINGS)
class TestGarbage:
    """Property 2: arbitrary input gives payloads or FramingErrors, never an exception."""

    @settings(SETTINGS, max_examples=200)
    @given(
        data=garbage,
        points=st.lists(st.integers(0, 10_000)),
        max_size=st.sampled_from([1, 8, 64, 1024]),
    )
    def test_only_documented_results(
        self, name: str, data: bytes, points: list[int], max_size: int
    ) -> None:
        deframer = get_framing(name).deframer(max_size)
        out = run(deframer, split(data, points), GARBAGE_ALLOWANCE[name])
        for frame in out:
            if isinstance(frame, bytes):
                assert len(frame) <= max_size
        if out and isinstance(out[-1], FramingError) and not out[-1].recoverable:
            error = out[-1]
            assert deframer.next_frame() is error
            deframer.feed(data)
            assert deframer.next_frame() is error
            assert deframer.buffered <= max_size + GARBAGE_ALLOWANCE[name]
            assert deframer.feed_eof() is error
        else:
            result = deframer.feed_eof()
            assert result is None or isinstance(result, FramingError)


LIMIT = 64
# Payloads from a few bytes to about three times the limit.
sized_payloads = st.one_of(
    payloads,
    st.lists(st.text(st.sampled_from('ab"\\é{}'), max_size=60), max_size=4).map(compact),
)


class TestSizeLimit:
    """Property 3: the limit holds, and recoverable oversize frames do not lose later ones."""

    @SETTINGS
    @given(items=st.lists(sized_payloads, max_size=8), points=st.lists(st.integers(0, 10_000)))
    def test_limit(self, items: list[bytes], points: list[int]) -> None:
        for name in FRAMINGS:
            self.check(name, items, points)

    def check(self, name: str, items: list[bytes], points: list[int]) -> None:
        framing = get_framing(name)
        data = b"".join(framing.frame(item) for item in items)
        deframer = framing.deframer(LIMIT)
        out = run(deframer, split(data, points), HEADER_ALLOWANCE)

        expected: list[bytes | str] = []
        for item in items:
            if len(item) <= LIMIT:
                expected.append(item)
            elif name == "json-stream":
                expected.append("fatal")  # no delimiter to resynchronise on
                break
            else:
                expected.append("too-large")
        got: list[bytes | str] = []
        for frame in out:
            if isinstance(frame, MessageTooLargeError):
                assert frame.limit == LIMIT
                got.append("too-large" if frame.recoverable else "fatal")
            else:
                assert isinstance(frame, bytes), frame
                got.append(frame)
        assert got == expected, name
        if "fatal" not in expected:
            assert deframer.feed_eof() is None, name


class TestEndOfStream:
    """Property 4: feed_eof() reports a partial frame, and only a partial frame."""

    @SETTINGS
    @given(items=st.lists(payloads, min_size=1, max_size=4), fraction=st.floats(0, 1))
    def test_partial_frame(self, items: list[bytes], fraction: float) -> None:
        for name in FRAMINGS:
            framing = get_framing(name)
            frames = [framing.frame(item) for item in items]
            last = frames[-1]
            # Strictly inside the last frame. A json-stream frame is complete as soon as its
            # value is: the newline after it is only whitespace.
            end = len(items[-1]) - 1 if name == "json-stream" else len(last) - 1
            cut = 1 + round(fraction * (end - 1))
            deframer = framing.deframer()
            out = run(deframer, [b"".join(frames[:-1]), last[:cut]])
            assert out == items[:-1], name
            error = deframer.feed_eof()
            assert isinstance(error, FramingError), name
            assert not error.recoverable, name

    @SETTINGS
    @given(items=st.lists(payloads, max_size=4), whitespace=st.sampled_from([b"", b" ", b"\r\n"]))
    def test_clean_end(self, items: list[bytes], whitespace: bytes) -> None:
        for name in FRAMINGS:
            framing = get_framing(name)
            # length-prefix is binary: every byte belongs to a frame, so no whitespace.
            tail = b"" if name == "length-prefix" else whitespace
            deframer = framing.deframer()
            data = b"".join(framing.frame(item) for item in items) + tail
            assert run(deframer, [data]) == items, name
            assert deframer.feed_eof() is None, name
