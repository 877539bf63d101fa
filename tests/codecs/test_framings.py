"""Example-based tests for the stream framings: exact wire bytes, header variants, errors."""

from __future__ import annotations

import pytest

from rpcbd.codecs.base import Deframer, Framing
from rpcbd.codecs.buffer import ReceiveBuffer
from rpcbd.codecs.content_length import MAX_HEADER_SIZE, ContentLengthFraming
from rpcbd.codecs.eot import EotFraming
from rpcbd.codecs.framing import ALIASES, FRAMINGS, get_framing, register_framing
from rpcbd.codecs.json_stream import JsonStreamFraming
from rpcbd.codecs.length_prefix import LengthPrefixFraming
from rpcbd.codecs.netstring import NetstringFraming
from rpcbd.codecs.newline import NewlineFraming
from rpcbd.exceptions import FramingError, MessageTooLargeError

PAYLOAD = b'{"jsonrpc":"2.0","method":"ping"}'
BUILTIN = ["newline", "eot", "content-length", "netstring", "length-prefix", "json-stream"]


def drain(deframer: Deframer) -> list[bytes | FramingError]:
    """Pull frames until next_frame() returns None, or a non-recoverable error (twice)."""
    out: list[bytes | FramingError] = []
    while (frame := deframer.next_frame()) is not None:
        out.append(frame)
        if isinstance(frame, FramingError) and not frame.recoverable:
            assert deframer.next_frame() is frame
            break
    return out


def parse(framing: Framing, data: bytes, max_message_size: int = 1024) -> list[bytes | str]:
    """Feed ``data`` in one go; frames as bytes, errors as "too-large", "error" or "fatal"."""
    deframer = framing.deframer(max_message_size)
    deframer.feed(data)
    out: list[bytes | str] = []
    for frame in drain(deframer):
        if isinstance(frame, MessageTooLargeError):
            out.append("too-large" if frame.recoverable else "fatal-too-large")
        elif isinstance(frame, FramingError):
            out.append("error" if frame.recoverable else "fatal")
        else:
            out.append(frame)
    return out


def fatal_reason(framing: Framing, data: bytes, max_message_size: int = 1024) -> str:
    deframer = framing.deframer(max_message_size)
    deframer.feed(data)
    frames = drain(deframer)
    assert frames, "expected an error"
    error = frames[-1]
    assert isinstance(error, FramingError)
    assert not error.recoverable
    # Dead for good: later input changes nothing.
    deframer.feed(b"0:,\n" + ContentLengthFraming().frame(PAYLOAD))
    assert deframer.next_frame() is error
    assert deframer.feed_eof() is error
    return error.reason


class TestWireFormat:
    """The exact bytes each framing writes."""

    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("newline", PAYLOAD + b"\n"),
            ("eot", PAYLOAD + b"\x04"),
            ("content-length", b"Content-Length: 33\r\n\r\n" + PAYLOAD),
            ("netstring", b"33:" + PAYLOAD + b","),
            ("length-prefix", b"\x00\x00\x00\x21" + PAYLOAD),
            ("json-stream", PAYLOAD + b"\n"),
        ],
    )
    def test_frame(self, name: str, expected: bytes) -> None:
        framing = get_framing(name)
        assert framing.name == name
        assert framing.frame(PAYLOAD) == expected
        assert parse(framing, expected + expected) == [PAYLOAD, PAYLOAD]

    def test_content_length_counts_bytes_not_characters(self) -> None:
        payload = '{"text":"héllo €"}'.encode()
        assert len(payload) == 21  # 18 characters
        assert ContentLengthFraming().frame(payload).startswith(b"Content-Length: 21\r\n\r\n")

    def test_netstring_empty(self) -> None:
        assert NetstringFraming().frame(b"") == b"0:,"
        assert parse(NetstringFraming(), b"0:,") == [b""]

    def test_length_prefix_empty(self) -> None:
        assert LengthPrefixFraming().frame(b"") == b"\x00\x00\x00\x00"
        assert parse(LengthPrefixFraming(), b"\x00\x00\x00\x00") == [b""]

    def test_newline_refuses_embedded_newline(self) -> None:
        with pytest.raises(ValueError, match="newline"):
            NewlineFraming().frame(b'{"a":\n1}')

    def test_eot_refuses_embedded_eot(self) -> None:
        with pytest.raises(ValueError, match="x04"):
            EotFraming().frame(b"{\x04}")

    def test_json_stream_refuses_scalars(self) -> None:
        with pytest.raises(ValueError, match="object or array"):
            JsonStreamFraming().frame(b"42")
        assert JsonStreamFraming().frame(b"[1]") == b"[1]\n"

    @pytest.mark.parametrize("name", BUILTIN)
    def test_max_message_size_must_be_positive(self, name: str) -> None:
        with pytest.raises(ValueError, match="positive"):
            get_framing(name).deframer(0)


class TestRegistry:
    """get_framing() and register_framing()."""

    def test_builtin_names(self) -> None:
        assert set(BUILTIN) <= set(FRAMINGS)

    @pytest.mark.parametrize(
        ("alias", "name"),
        [
            ("lsp", "content-length"),
            ("content_length", "content-length"),
            ("LSP", "content-length"),
            ("Content-Length", "content-length"),
            ("length_prefix", "length-prefix"),
            ("json_stream", "json-stream"),
            ("ndjson", "newline"),
            ("lines", "newline"),
            ("NEWLINE", "newline"),
        ],
    )
    def test_aliases_and_case(self, alias: str, name: str) -> None:
        assert get_framing(alias) is FRAMINGS[name]

    def test_instance_passes_through(self) -> None:
        framing = NetstringFraming()
        assert get_framing(framing) is framing

    def test_unknown_name_lists_valid_names(self) -> None:
        with pytest.raises(ValueError, match="unknown framing 'xml'") as info:
            get_framing("xml")
        for name in [*BUILTIN, *ALIASES]:
            assert name in str(info.value)

    def test_wrong_type(self) -> None:
        with pytest.raises(TypeError):
            get_framing(42)  # type: ignore[arg-type]

    def test_register(self) -> None:
        class Shout(NewlineFraming):
            name = "Shout"

        shout = Shout()
        try:
            register_framing(shout)
            assert get_framing("shout") is shout
            assert get_framing("SHOUT") is shout
            with pytest.raises(ValueError, match="already registered"):
                register_framing(Shout())
            other = Shout()
            register_framing(other, replace=True)
            assert get_framing("shout") is other
        finally:
            FRAMINGS.pop("shout", None)

    def test_register_refuses_builtin_names_and_aliases(self) -> None:
        class Fake(NewlineFraming):
            name = "lsp"

        with pytest.raises(ValueError, match="already registered"):
            register_framing(Fake())
        with pytest.raises(ValueError, match="already registered"):
            register_framing(NewlineFraming())

    def test_register_refuses_bad_framings(self) -> None:
        class Nameless(NewlineFraming):
            name = ""

        with pytest.raises(ValueError, match="non-empty"):
            register_framing(Nameless())
        with pytest.raises(TypeError):
            register_framing("newline")  # type: ignore[arg-type]


class TestNewline:
    framing = NewlineFraming()

    def test_crlf_blank_and_whitespace_lines(self) -> None:
        data = b"\n\r\n  \n\t\r\n[1]\r\n   [2]\n\n{}\n"
        assert parse(self.framing, data) == [b"[1]", b"[2]", b"{}"]

    def test_only_one_cr_is_stripped_and_inner_cr_is_kept(self) -> None:
        assert parse(self.framing, b"[1]\r\r\n[\r2]\n") == [b"[1]\r", b"[\r2]"]

    def test_oversize_line_is_skipped(self) -> None:
        data = b"[" + b"1," * 20 + b"1]\n[2]\n"
        assert parse(self.framing, data, max_message_size=10) == ["too-large", b"[2]"]

    def test_limit_is_inclusive_and_cr_does_not_count(self) -> None:
        assert parse(self.framing, b"x" * 10 + b"\r\n", max_message_size=10) == [b"x" * 10]
        assert parse(self.framing, b"x" * 11 + b"\n", max_message_size=10) == ["too-large"]
        assert parse(self.framing, b"x" * 11 + b"\r\n", max_message_size=10) == ["too-large"]

    def test_oversize_reported_early_and_not_buffered(self) -> None:
        deframer = self.framing.deframer(100)
        deframer.feed(b"[" + b"7" * 150)
        frame = deframer.next_frame()
        assert isinstance(frame, MessageTooLargeError)
        assert frame.recoverable
        assert frame.limit == 100
        assert deframer.buffered == 0
        for _ in range(1000):
            deframer.feed(b"7" * 1000)
            assert deframer.buffered == 0
            assert deframer.next_frame() is None
        deframer.feed(b"]\n[1]\n")
        assert drain(deframer) == [b"[1]"]
        assert deframer.feed_eof() is None

    def test_leading_whitespace_does_not_count_toward_the_limit(self) -> None:
        deframer = self.framing.deframer(10)
        deframer.feed(b" " * 50)
        assert deframer.next_frame() is None
        deframer.feed(b"[123456]\n")
        assert drain(deframer) == [b"[123456]"]

    def test_eof(self) -> None:
        deframer = self.framing.deframer()
        deframer.feed(b"[1]\n \r\n")
        assert drain(deframer) == [b"[1]"]
        assert deframer.feed_eof() is None
        deframer.feed(b"[2")
        assert deframer.next_frame() is None
        error = deframer.feed_eof()
        assert isinstance(error, FramingError)
        assert not error.recoverable

    def test_eof_while_skipping_an_oversize_line(self) -> None:
        deframer = self.framing.deframer(4)
        deframer.feed(b"[12345678")
        assert isinstance(deframer.next_frame(), MessageTooLargeError)
        assert isinstance(deframer.feed_eof(), FramingError)

    def test_many_frames_in_one_chunk(self) -> None:
        frames = [b'{"id":%d}' % i for i in range(1000)]
        deframer = self.framing.deframer()
        deframer.feed(b"".join(self.framing.frame(f) for f in frames) + b'{"id":')
        assert deframer.buffered == sum(map(len, frames)) + 1000 + 6
        assert deframer.next_frame() == frames[0]
        assert deframer.buffered == sum(map(len, frames[1:])) + 6
        assert drain(deframer) == frames[1:]
        assert deframer.buffered == 6


class TestEot:
    framing = EotFraming()

    def test_whitespace_and_empty_frames_between_messages(self) -> None:
        data = b"\x04 \n[1]\x04\r\n[2]\x04\x04\n  \x04{}\x04\n"
        assert parse(self.framing, data) == [b"[1]", b"[2]", b"{}"]

    def test_newlines_inside_a_frame_are_kept(self) -> None:
        assert parse(self.framing, b'{\n"a": 1\n}\x04') == [b'{\n"a": 1\n}']

    def test_oversize(self) -> None:
        data = b"[" + b"0" * 100 + b"]\x04[1]\x04"
        assert parse(self.framing, data, max_message_size=50) == ["too-large", b"[1]"]
        deframer = self.framing.deframer(50)
        deframer.feed(b"[" + b"0" * 100)
        assert isinstance(deframer.next_frame(), MessageTooLargeError)
        deframer.feed(b"0" * 100 + b"\n\x04[2]\x04")
        assert drain(deframer) == [b"[2]"]

    def test_eof(self) -> None:
        deframer = self.framing.deframer()
        deframer.feed(b"[1]\x04\n")
        assert drain(deframer) == [b"[1]"]
        assert deframer.feed_eof() is None
        deframer.feed(b"[1]")
        assert drain(deframer) == []
        assert isinstance(deframer.feed_eof(), FramingError)


class TestContentLength:
    framing = ContentLengthFraming()

    @pytest.mark.parametrize(
        "header",
        [
            b"Content-Length: 3\r\n\r\n",
            b"content-length: 3\r\n\r\n",
            b"CONTENT-LENGTH:3\r\n\r\n",
            b"Content-Length:   3   \r\n\r\n",
            b"Content-Length: 003\r\n\r\n",
            b"Content-Length: 3\n\n",
            b"Content-Length: 3\r\n\n",
            b"Content-Length: 3\n\r\n",
            b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\nContent-Length: 3\r\n\r\n",
            b"Content-Length: 3\r\nContent-Type: application/vscode-jsonrpc; charset=utf8\r\n\r\n",
            b'Content-Length: 3\r\nContent-Type: application/json; Charset="UTF-8"\r\n\r\n',
            b"Content-Length: 3\r\nContent-Type: application/json\r\n\r\n",
            b"Content-Length: 3\r\nX-Trace: abc\r\nUser-Agent: x\r\n\r\n",
            b"Content-Length: 3\r\nContent-Length: 3\r\n\r\n",
            b"\r\n\r\nContent-Length: 3\r\n\r\n",
        ],
    )
    def test_header_variants(self, header: bytes) -> None:
        assert parse(self.framing, header + b"[1]" + header + b"[2]") == [b"[1]", b"[2]"]

    def test_header_variants_split_everywhere(self) -> None:
        data = b"Content-Type: application/json; charset=utf8\r\ncontent-length: 3\n\r\n[1]"
        for cut in range(len(data) + 1):
            deframer = self.framing.deframer()
            deframer.feed(data[:cut])
            first = drain(deframer)
            deframer.feed(data[cut:])
            assert first + drain(deframer) == [b"[1]"]
            assert deframer.feed_eof() is None

    def test_zero_length(self) -> None:
        assert parse(self.framing, b"Content-Length: 0\r\n\r\n") == [b""]
        assert parse(self.framing, b"Content-Length: 000\r\n\r\n") == [b""]

    def test_thousands_of_leading_zeros(self) -> None:
        # More digits than int() accepts from a string (4300 by default since Python 3.11).
        data = b"Content-Length: " + b"0" * 5000 + b"3\r\n\r\n[1]"
        assert parse(self.framing, data) == [b"[1]"]

    def test_body_may_contain_anything(self) -> None:
        body = b"Content-Length: 5\r\n\r\n\x00\xff"
        assert parse(self.framing, self.framing.frame(body)) == [body]

    @pytest.mark.parametrize(
        ("header", "reason"),
        [
            (b"Content-Type: application/json\r\n\r\n", "missing Content-Length"),
            (b"X-Other: 1\r\n\r\n", "missing Content-Length"),
            (b"Content-Length: abc\r\n\r\n", "not a decimal number"),
            (b"Content-Length: \r\n\r\n", "not a decimal number"),
            (b"Content-Length: 1.5\r\n\r\n", "not a decimal number"),
            (b"Content-Length: +3\r\n\r\n", "not a decimal number"),
            (b"Content-Length: -3\r\n\r\n", "negative"),
            (b"Content-Length: \xd9\xa3\r\n\r\n", "not a decimal number"),
            (b"Content-Length: 1" + b"0" * 20 + b"\r\n\r\n", "out of range"),
            (b"Content-Length: 3\r\nContent-Length: 4\r\n\r\n", "conflicting"),
            (b"Content-Length 3\r\n\r\n", "without a colon"),
            (b"Content Length: 3\r\n\r\n", "invalid header name"),
            (b": 3\r\n\r\n", "invalid header name"),
            # A peer speaking newline framing: caught at the first line, not after 8 KiB.
            (b'{"jsonrpc":"2.0"}\n', "invalid header name"),
        ],
    )
    def test_fatal_header_errors(self, header: bytes, reason: str) -> None:
        assert reason in fatal_reason(self.framing, header + b"[1]")

    def test_header_section_cap(self) -> None:
        filler = b"X-Filler: " + b"a" * 100 + b"\r\n"
        data = filler * (MAX_HEADER_SIZE // len(filler) + 1)
        deframer = self.framing.deframer()
        for i in range(0, len(data), 7):
            deframer.feed(data[i : i + 7])
            frames = drain(deframer)
            assert deframer.buffered <= MAX_HEADER_SIZE
            if frames:
                break
        assert len(frames) == 1
        assert isinstance(frames[0], FramingError)
        assert "header section longer" in frames[0].reason
        assert not frames[0].recoverable

    def test_header_line_without_newline_hits_the_cap(self) -> None:
        assert "longer than" in fatal_reason(self.framing, b"X" * (MAX_HEADER_SIZE + 1))

    def test_header_just_under_the_cap(self) -> None:
        header = b"Content-Length: 3\r\nX-Pad: "
        header += b"p" * (MAX_HEADER_SIZE - len(header) - 4) + b"\r\n\r\n"
        assert len(header) == MAX_HEADER_SIZE
        assert parse(self.framing, header + b"[1]") == [b"[1]"]

    @pytest.mark.parametrize(
        "content_type",
        [
            b"application/vscode-jsonrpc; charset=utf-16",
            b"application/json; charset=latin-1",
            b"text/plain; charset=\xff",
        ],
    )
    def test_bad_charset_is_recoverable(self, content_type: bytes) -> None:
        data = b"Content-Length: 3\r\nContent-Type: " + content_type + b"\r\n\r\n[1]"
        data += self.framing.frame(b"[2]")
        deframer = self.framing.deframer()
        deframer.feed(data)
        error, frame = drain(deframer)
        assert isinstance(error, FramingError)
        assert not isinstance(error, MessageTooLargeError)
        assert error.recoverable
        assert "utf-8" in error.reason
        assert frame == b"[2]"

    def test_oversize_body_is_skipped_without_buffering(self) -> None:
        deframer = self.framing.deframer(1000)
        deframer.feed(b"Content-Length: 1000000\r\n\r\n" + b"x" * 500)
        error = deframer.next_frame()
        assert isinstance(error, MessageTooLargeError)
        assert error.recoverable
        assert deframer.buffered == 0
        for _ in range(999):
            deframer.feed(b"y" * 1000)
            assert deframer.buffered == 0
            assert deframer.next_frame() is None
        assert isinstance(deframer.feed_eof(), FramingError)  # 500 bytes still to come
        deframer.feed(b"z" * 500 + self.framing.frame(b"[1]"))
        assert drain(deframer) == [b"[1]"]
        assert deframer.feed_eof() is None

    def test_oversize_and_bad_charset_in_one_message(self) -> None:
        data = b"Content-Length: 20\r\nContent-Type: a/b; charset=ascii\r\n\r\n" + b"x" * 20
        assert parse(self.framing, data + self.framing.frame(b"{}"), 10) == ["too-large", b"{}"]

    def test_eof(self) -> None:
        for partial in [b"C", b"Content-Length: 3\r\n", b"Content-Length: 3\r\n\r\n[1"]:
            deframer = self.framing.deframer()
            deframer.feed(partial)
            assert drain(deframer) == []
            error = deframer.feed_eof()
            assert isinstance(error, FramingError), partial
        deframer = self.framing.deframer()
        deframer.feed(self.framing.frame(b"[1]") + b"\r\n")
        assert drain(deframer) == [b"[1]"]
        assert deframer.feed_eof() is None


class TestNetstring:
    framing = NetstringFraming()

    def test_whitespace_between_netstrings(self) -> None:
        assert parse(self.framing, b"3:[1],\n 3:[2],\r\n") == [b"[1]", b"[2]"]

    def test_payload_may_contain_anything(self) -> None:
        payload = b"5:abc,,:\x00"
        assert parse(self.framing, self.framing.frame(payload)) == [payload]

    @pytest.mark.parametrize(
        ("data", "reason"),
        [
            (b"03:[1],", "leading zero"),
            (b"00:,", "leading zero"),
            (b"x3:[1],", "not a decimal number"),
            (b":[1],", "not a decimal number"),
            (b"-3:[1],", "not a decimal number"),
            (b"3 :[1],", "not a decimal number"),
            (b"3:[1]]", "missing its trailing comma"),
            (b"3:[1];3:[2],", "missing its trailing comma"),
            (b"1" * 21, "too many digits"),
            (b"1" * 21 + b":", "too many digits"),
        ],
    )
    def test_fatal_errors(self, data: bytes, reason: str) -> None:
        assert reason in fatal_reason(self.framing, data)

    def test_garbage_is_reported_before_the_colon(self) -> None:
        deframer = self.framing.deframer()
        deframer.feed(b"12")
        assert deframer.next_frame() is None
        deframer.feed(b"a")
        assert isinstance(deframer.next_frame(), FramingError)

    def test_oversize_is_skipped_and_its_comma_checked(self) -> None:
        data = b"100:" + b"x" * 100 + b",3:[1],"
        assert parse(self.framing, data, max_message_size=10) == ["too-large", b"[1]"]
        # A length with more digits than the limit has is still just too large.
        data = b"99999999999999999999:" + b"x" * 10
        assert parse(self.framing, data, max_message_size=10) == ["too-large"]
        data = b"20:" + b"x" * 20 + b";"
        assert parse(self.framing, data, max_message_size=10) == ["too-large", "fatal"]

    def test_oversize_not_buffered(self) -> None:
        deframer = self.framing.deframer(10)
        deframer.feed(b"5000:")
        assert isinstance(deframer.next_frame(), MessageTooLargeError)
        for _ in range(50):
            deframer.feed(b"x" * 100)
            assert deframer.buffered == 0
            assert deframer.next_frame() is None
        assert isinstance(deframer.feed_eof(), FramingError)
        deframer.feed(b",1:x,")
        assert drain(deframer) == [b"x"]
        assert deframer.feed_eof() is None

    def test_eof(self) -> None:
        for partial in [b"3", b"3:", b"3:[1]", b"3:[1]"]:
            deframer = self.framing.deframer()
            deframer.feed(partial)
            assert drain(deframer) == []
            assert isinstance(deframer.feed_eof(), FramingError)


class TestLengthPrefix:
    framing = LengthPrefixFraming()

    def test_oversize_is_skipped_without_buffering(self) -> None:
        deframer = self.framing.deframer(10)
        deframer.feed(b"\x00\x00\x10\x00" + b"x" * 100)
        assert isinstance(deframer.next_frame(), MessageTooLargeError)
        assert deframer.buffered == 0
        deframer.feed(b"x" * (4096 - 100) + b"\x00\x00\x00\x03[1]")
        assert drain(deframer) == [b"[1]"]

    def test_maximum_length(self) -> None:
        deframer = self.framing.deframer(10)
        deframer.feed(b"\xff\xff\xff\xff")
        error = deframer.next_frame()
        assert isinstance(error, MessageTooLargeError)
        assert error.recoverable

    def test_eof(self) -> None:
        for partial in [b"\x00", b"\x00\x00\x00\x03", b"\x00\x00\x00\x03[1"]:
            deframer = self.framing.deframer()
            deframer.feed(partial)
            assert drain(deframer) == []
            assert isinstance(deframer.feed_eof(), FramingError)
        deframer = self.framing.deframer()
        assert deframer.feed_eof() is None


class TestJsonStream:
    framing = JsonStreamFraming()

    def test_concatenated_values(self) -> None:
        data = b'{"a":1}{"b":[1,{"c":2}]}\n\t [1,2] [] {}'
        assert parse(self.framing, data) == [
            b'{"a":1}',
            b'{"b":[1,{"c":2}]}',
            b"[1,2]",
            b"[]",
            b"{}",
        ]

    def test_brackets_and_quotes_inside_strings(self) -> None:
        value = rb'{"s":"}]{[\"\\","t":"\\\\","u":"\\\"}"}'
        assert parse(self.framing, value + value) == [value, value]

    def test_split_at_every_position(self) -> None:
        value = rb'[{"k\"}":"\\\\\"]","n":[[1],{"x":"\u00e9"}]},"\\"]'
        data = value + b" " + value
        for cut in range(len(data) + 1):
            deframer = self.framing.deframer()
            deframer.feed(data[:cut])
            first = drain(deframer)
            deframer.feed(data[cut:])
            assert first + drain(deframer) == [value, value], cut

    def test_byte_at_a_time_with_escapes(self) -> None:
        value = b'{"a":"' + b'\\"' * 50 + b'\\\\"}'
        deframer = self.framing.deframer()
        out = []
        for byte in value * 2:
            deframer.feed(bytes([byte]))
            out += drain(deframer)
        assert out == [value, value]

    @pytest.mark.parametrize("data", [b"1", b'"s"', b"null", b"{}x", b"}", b"]", b"\x00"])
    def test_bad_top_level_byte(self, data: bytes) -> None:
        assert "expected a JSON object or array" in fatal_reason(self.framing, data)

    def test_oversize_is_fatal(self) -> None:
        deframer = self.framing.deframer(10)
        deframer.feed(b"[1][" + b"1," * 10)
        first, error = drain(deframer)
        assert first == b"[1]"
        assert isinstance(error, MessageTooLargeError)
        assert not error.recoverable
        assert deframer.buffered == 0
        deframer.feed(b"[1]")
        assert deframer.next_frame() is error
        assert deframer.buffered == 0

    def test_limit_is_inclusive(self) -> None:
        value = b'["' + b"x" * 6 + b'"]'
        assert parse(self.framing, value, max_message_size=10) == [value]
        assert parse(self.framing, value[:-1] + b" ]", max_message_size=10) == ["fatal-too-large"]

    def test_eof(self) -> None:
        deframer = self.framing.deframer()
        deframer.feed(b"[1] \n")
        assert drain(deframer) == [b"[1]"]
        assert deframer.feed_eof() is None
        deframer.feed(b'["]')
        assert drain(deframer) == []
        assert isinstance(deframer.feed_eof(), FramingError)


class TestReceiveBuffer:
    """The buffer's bookkeeping: resumable search, lazy compaction, discarding."""

    def test_find_resumes_where_it_stopped(self) -> None:
        buffer = ReceiveBuffer()
        buffer.append(b"abcdef")
        assert buffer.find(b"\n") == -1
        assert buffer._scan == 6
        buffer.append(b"gh\nij")
        assert buffer.find(b"\n") == 8
        assert buffer.find(b"\r\n") == -1
        assert buffer._scan == 10  # one byte short of the end: b"\r" could still come
        buffer.append(b"\r\n")
        assert buffer.find(b"\r\n") == 11

    def test_find_end_limits_the_search(self) -> None:
        buffer = ReceiveBuffer()
        buffer.append(b"0123456789\n")
        assert buffer.find(b"\n", 10) == -1
        assert buffer.find(b"\n", 11) == 10
        assert buffer.find(b"\n") == 10

    def test_take_skip_and_lazy_compaction(self) -> None:
        buffer = ReceiveBuffer()
        buffer.append(b"a" * 10 + b"b" * 10 + b"c" * 10)
        assert buffer.take(5, 5) == b"aaaaa"
        assert buffer._start == 10  # not compacted yet: under half
        assert len(buffer) == 20
        buffer.skip(6)
        assert buffer._start == 0  # compacted: 16 of 30 consumed
        assert len(buffer._data) == 14
        assert buffer.peek(100) == b"bbbb" + b"c" * 10
        assert buffer[4] == ord("c")
        with pytest.raises(IndexError):
            buffer[14]
        buffer.skip(100)
        assert len(buffer) == 0
        assert not buffer

    def test_take_through_last(self) -> None:
        buffer = ReceiveBuffer()
        buffer.append(b"a\nb\nc")
        assert buffer.take_through_last(b"\n") == b"a\nb"
        assert buffer.take_through_last(b"\n") is None
        buffer.append(b"\n")
        assert buffer.take_through_last(b"\n") == b"c"
        assert len(buffer) == 0

    def test_discard_counts_future_bytes(self) -> None:
        buffer = ReceiveBuffer()
        buffer.append(b"abc")
        buffer.discard(10)
        assert buffer.discarding
        assert len(buffer) == 0
        buffer.append(b"defg")
        buffer.append(b"hijkl")
        assert not buffer.discarding
        assert buffer.peek(10) == b"kl"

    def test_discard_through_drops_until_the_delimiter(self) -> None:
        buffer = ReceiveBuffer()
        buffer.append(b"abc")
        buffer.discard_through(b"\n")
        buffer.append(b"def")
        assert buffer.discarding
        assert len(buffer) == 0
        buffer.append(b"g\nhi\n")
        assert not buffer.discarding
        assert buffer.peek(10) == b"hi\n"
        buffer.discard_through(b"\n")
        assert not buffer.discarding
        assert len(buffer) == 0
        with pytest.raises(ValueError, match="one-byte"):
            buffer.discard_through(b"\r\n")

    def test_whitespace(self) -> None:
        buffer = ReceiveBuffer()
        assert buffer.is_blank()
        buffer.append(b" \t\r\n x ")
        assert buffer.is_blank() is False
        buffer.skip_whitespace()
        assert buffer.peek(10) == b"x "
        buffer.skip(1)
        assert buffer.is_blank()
