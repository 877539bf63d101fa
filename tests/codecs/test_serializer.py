"""rpcbd.codecs.serializer: the stdlib and orjson serializers behave identically.

Every test runs against each serializer of ``available_serializers()`` (orjson is skipped
when it is not installed), and the cross tests compare them directly.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import math
import re
import sys
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpcbd.codecs.serializer import (
    JsonDecodeError,
    OrjsonSerializer,
    Serializer,
    StdlibSerializer,
    available_serializers,
    default_serializer,
    nesting_depth_exceeds,
)

#: Longer than the lengths from which the serializer and the depth check take their
#: large-text paths (16 KiB), so a text padded with it goes down those paths.
LARGE_PAD = "x" * (20 * 1024)

try:
    import orjson  # noqa: F401

    HAVE_ORJSON = True
except ImportError:  # pragma: no cover - depends on the environment
    HAVE_ORJSON = False

NAMES = [
    "json",
    pytest.param(
        "orjson", marks=pytest.mark.skipif(not HAVE_ORJSON, reason="orjson is not installed")
    ),
]


@pytest.fixture(params=NAMES)
def serializer(request: pytest.FixtureRequest) -> Serializer:
    return available_serializers()[request.param]


def stable_id(value: Any) -> str:
    """A test id from ``repr`` without memory addresses, the same in every process (so
    pytest-xdist workers collect the same tests)."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(value))


def both() -> list[Serializer]:
    return list(available_serializers().values())


def outcome(func: Any, *args: Any) -> tuple[str, Any]:
    """What a call does: ("ok", value) or ("raise", exception class)."""
    try:
        return ("ok", func(*args))
    except Exception as exc:
        return ("raise", type(exc))


class Color(enum.Enum):
    RED = "red"
    ONE = 1


class Level(enum.IntEnum):
    HIGH = 3


@dataclasses.dataclass
class Point:
    x: int = 1


INVALID_TEXTS = [
    pytest.param(b"\xff", id="invalid-utf8"),
    pytest.param(b'"\xc3"', id="truncated-utf8"),
    pytest.param(b'"\xed\xa0\x80"', id="utf8-encoded-surrogate"),
    pytest.param(b"\xef\xbb\xbf{}", id="bom"),
    pytest.param(b'"\\ud800"', id="lone-high-surrogate"),
    pytest.param(b'["\\udc00"]', id="lone-low-surrogate"),
    pytest.param(b'{"\\ud800":1}', id="lone-surrogate-key"),
    pytest.param(b"NaN", id="nan"),
    pytest.param(b"[Infinity]", id="infinity"),
    pytest.param(b"-Infinity", id="minus-infinity"),
    pytest.param(b"", id="empty"),
    pytest.param(b"   ", id="blank"),
    pytest.param(b"1 2", id="two-values"),
    pytest.param(b"[1,]", id="trailing-comma"),
    pytest.param(b"{'a':1}", id="single-quotes"),
    pytest.param(b'"\x00"', id="control-character"),
    pytest.param(b"01", id="leading-zero"),
    pytest.param(b"[" * 100000 + b"]" * 100000, id="100000-deep-arrays"),
    pytest.param(b'{"a":' * 100000 + b"1" + b"}" * 100000, id="100000-deep-objects"),
    pytest.param(b"[" * 100000, id="100000-open-brackets"),
]


class TestLoads:
    @pytest.mark.parametrize("data", INVALID_TEXTS)
    def test_invalid_text_is_json_decode_error(self, serializer: Serializer, data: bytes) -> None:
        with pytest.raises(JsonDecodeError):
            serializer.loads(data)

    def test_json_decode_error_is_a_value_error(self) -> None:
        assert issubclass(JsonDecodeError, ValueError)

    @pytest.mark.parametrize(
        "number",
        [
            2**63 - 1,
            2**63,
            2**64 - 1,
            2**64,
            -(2**63),
            -(2**63) - 1,
            10**19,
            -(10**19) + 1,
            10**30,
            -(10**40),
        ],
    )
    def test_big_integers_are_exact(self, serializer: Serializer, number: int) -> None:
        text = str(number).encode()
        assert serializer.loads(text) == number and type(serializer.loads(text)) is int
        assert serializer.loads(b'{"n":[' + text + b"]}") == {"n": [number]}
        assert serializer.dumps(number) == text

    @pytest.mark.parametrize("number", [2**64, -(2**63) - 1, 10**30, 2**64 - 1, -(2**63)])
    def test_big_integers_in_large_texts_are_exact(
        self, serializer: Serializer, number: int
    ) -> None:
        # A few large strings and one number: the value is searched, not the text.
        text = json.dumps({"pad": LARGE_PAD, "n": [number, 1.5]}).encode()
        assert serializer.loads(text)["n"] == [number, 1.5]
        assert type(serializer.loads(text)["n"][0]) is int
        # Long lists: all ints (summed in C), mixed with strings or floats (the text is
        # searched, as for a short text), with the big integer last.
        for head in ([*range(10_000)], [*range(10_000), "s"], [0.5 * i for i in range(5_000)]):
            many = json.dumps([*head, number]).encode()
            assert len(many) > 16 * 1024
            decoded = serializer.loads(many)
            assert decoded[-1] == number and type(decoded[-1]) is int
            assert decoded[:-1] == head

    def test_large_floats_in_large_texts_stay_floats(self, serializer: Serializer) -> None:
        text = json.dumps({"pad": LARGE_PAD, "f": [1e19, -1e300, 2.0**63]}).encode()
        assert serializer.loads(text)["f"] == [1e19, -1e300, 2.0**63]

    def test_valid_surrogate_pair(self, serializer: Serializer) -> None:
        assert serializer.loads(b'"\\ud83d\\ude00"') == "\U0001f600"

    def test_deep_but_reasonable_nesting_is_read(self, serializer: Serializer) -> None:
        value = serializer.loads(b"[" * 500 + b"]" * 500)
        depth = 1
        while value:
            value, depth = value[0], depth + 1
        assert depth == 500
        # Brackets inside strings are not nesting.
        assert serializer.loads(b'["' + b"[" * 2000 + b'"]') == ["[" * 2000]

    @pytest.mark.parametrize(
        "data",
        [b"[" * n + b"]" * n for n in (100, 500, 900, 1025, 5000)],
        ids=lambda d: f"depth-{len(d) // 2}",
    )
    def test_depths_away_from_the_parsers_limits_agree(self, data: bytes) -> None:
        # Between about 1000 and 1024 levels the standard library (whose limit depends on
        # the caller's stack) and orjson (1024) differ; the Endpoint's max_nesting_depth
        # (default 512) refuses such texts before either parser sees them.
        outcomes = [outcome(s.loads, data) for s in both()]
        assert all(o == outcomes[0] for o in outcomes), outcomes

    def test_large_exponent_reads_the_same(self, serializer: Serializer) -> None:
        assert serializer.loads(b"1e400") == math.inf
        assert (
            serializer.loads(b"-0.0") == 0.0 and math.copysign(1, serializer.loads(b"-0.0")) == -1
        )


class TestDumps:
    def test_compact_utf8(self, serializer: Serializer) -> None:
        assert serializer.dumps({"a": [1, "é", None, True]}) == '{"a":[1,"é",null,true]}'.encode()

    @pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
    def test_non_finite_floats_are_null(self, serializer: Serializer, value: float) -> None:
        assert serializer.dumps(value) == b"null"
        assert serializer.dumps({"x": [1.5, value]}) == b'{"x":[1.5,null]}'
        assert serializer.dumps(("s", [value, 2], {"k": None})) == b'["s",[null,2],{"k":null}]'

    @pytest.mark.parametrize(
        "value",
        [
            object(),
            {1, 2},
            frozenset(),
            b"bytes",
            bytearray(b"x"),
            1j,
            decimal.Decimal("1.5"),
            datetime.datetime(2020, 1, 2, 3, 4, 5),
            datetime.date(2020, 1, 2),
            datetime.time(1, 2),
            Point(),
            [Point()],
            {"k": object()},
            {(1, 2): "tuple key"},
            print,
        ],
        ids=stable_id,
    )
    def test_non_json_values_are_type_error(self, serializer: Serializer, value: Any) -> None:
        with pytest.raises(TypeError):
            serializer.dumps(value)

    def test_circular_and_too_deep_values_are_type_error(self, serializer: Serializer) -> None:
        loop: list[Any] = []
        loop.append(loop)
        with pytest.raises(TypeError):
            serializer.dumps(loop)
        deep: list[Any] = []
        for _ in range(100000):
            deep = [deep]
        with pytest.raises(TypeError):
            serializer.dumps(deep)

    @pytest.mark.parametrize("value", ["\ud800", ["ok", "\udfff"], {"\ud800": 1}])
    def test_lone_surrogates_are_value_error(self, serializer: Serializer, value: Any) -> None:
        with pytest.raises(ValueError):
            serializer.dumps(value)

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (Color.RED, b'"red"'),
            (Color.ONE, b"1"),
            (Level.HIGH, b"3"),
            (uuid.UUID(int=1), b'"00000000-0000-0000-0000-000000000001"'),
            ((1, 2), b"[1,2]"),
            ({1: "a", None: "b", False: "c"}, b'{"1":"a","null":"b","false":"c"}'),
            (2**70, str(2**70).encode()),
        ],
        ids=stable_id,
    )
    def test_values_beyond_plain_json(
        self, serializer: Serializer, value: Any, expected: bytes
    ) -> None:
        assert serializer.dumps(value) == expected


class TestSerializersAgree:
    """The same input gives the same outcome in both (when orjson is installed)."""

    VALUES: list[Any] = [
        object(),
        Color.RED,
        uuid.UUID(int=5),
        datetime.datetime(2020, 1, 1),
        Point(),
        {1: 2},
        {(1,): 2},
        math.nan,
        [math.inf, {"a": -math.inf}],
        2**64,
        -(2**63) - 1,
        "\ud800",
        "é\U0001f600",
    ]

    @pytest.mark.parametrize("value", VALUES, ids=stable_id)
    def test_dumps(self, value: Any) -> None:
        outcomes = [outcome(s.dumps, value) for s in both()]
        assert all(o == outcomes[0] for o in outcomes), outcomes

    @pytest.mark.parametrize(
        "data", [*(p.values[0] for p in INVALID_TEXTS), b"1e400", b"-9999999999999999999"]
    )
    def test_loads(self, data: bytes) -> None:
        outcomes = [outcome(s.loads, data) for s in both()]
        assert all(o == outcomes[0] for o in outcomes), outcomes


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)


@settings(max_examples=100, deadline=None)
@given(value=JSON_VALUES)
def test_round_trip_of_large_texts_is_equal_in_every_serializer(value: Any) -> None:
    padded = {"pad": LARGE_PAD, "value": value}
    for writer in both():
        data = writer.dumps(padded)
        for reader in both():
            decoded = reader.loads(data)
            assert decoded == padded
            assert json.dumps(decoded, sort_keys=True) == json.dumps(padded, sort_keys=True)


def _depth(data: bytes) -> int:
    """The nesting depth of a JSON text, the slow and obvious way."""

    def depth_of(value: Any) -> int:
        if isinstance(value, list):
            return 1 + max(map(depth_of, value), default=0)
        if isinstance(value, dict):
            return 1 + max(map(depth_of, value.values()), default=0)
        return 0

    return depth_of(json.loads(data))


class TestStdlibFastPaths:
    """StdlibSerializer calls json's C scanner and a reusable C encoder directly; every
    text and value they do not handle goes through json's full decoder and encoder."""

    @pytest.mark.skipif(
        sys.implementation.name != "cpython", reason="json's C encoder is CPython's"
    )
    def test_the_fast_paths_exist_on_cpython(self) -> None:
        assert StdlibSerializer()._fast_encode is not None

    @pytest.mark.parametrize(
        "data", [b' {"a":1}', b'{"a":1} ', b"\t[1]\r\n", b"1", b'"s"', b" ", b"[1] x", b"[1,]"]
    )
    def test_whitespace_around_and_bad_texts_read_as_json_does(self, data: bytes) -> None:
        expected = outcome(json.loads, data)
        got = outcome(StdlibSerializer().loads, data)
        if expected[0] == "ok":
            assert got == expected
        else:
            assert got == ("raise", JsonDecodeError)

    def test_failed_encodings_leave_no_state_behind(self) -> None:
        serializer = StdlibSerializer()
        loop: list[Any] = []
        loop.append(loop)
        for bad in (loop, object(), {"k": {1, 2}}):
            with pytest.raises(TypeError):
                serializer.dumps(bad)
        assert serializer.dumps([math.nan, {"x": [1]}]) == b'[null,{"x":[1]}]'
        shared = [1]
        assert serializer.dumps([shared, shared, {"a": shared}]) == b'[[1],[1],{"a":[1]}]'

    def test_without_the_c_encoder(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(json.encoder, "c_make_encoder", None)
        serializer = StdlibSerializer()
        assert serializer._fast_encode is None
        assert serializer.dumps({"a": [1, "é"]}) == '{"a":[1,"é"]}'.encode()


class TestNestingDepth:
    @pytest.mark.parametrize("pad", ["", LARGE_PAD], ids=["short", "large"])
    @pytest.mark.parametrize("depth", [1, 7, 8, 9, 40])
    def test_depth_against_the_limit(self, pad: str, depth: int) -> None:
        data = b"[" * depth + json.dumps(pad).encode() + b"]" * depth
        assert _depth(data) == depth
        assert nesting_depth_exceeds(data, 8) is (depth > 8)

    @pytest.mark.parametrize("pad", ["", LARGE_PAD], ids=["short", "large"])
    def test_brackets_inside_strings_are_not_nesting(self, pad: str) -> None:
        data = json.dumps([pad, "[{" * 600, {"a": ["]"]}]).encode()
        assert not nesting_depth_exceeds(data, 8)
        assert nesting_depth_exceeds(data, 1)

    @settings(max_examples=100, deadline=None)
    @given(value=JSON_VALUES, limit=st.integers(1, 6), large=st.booleans())
    def test_agrees_with_the_parsed_depth(self, value: Any, limit: int, large: bool) -> None:
        data = json.dumps([LARGE_PAD if large else "", value]).encode()
        assert nesting_depth_exceeds(data, limit) is (_depth(data) > limit)


@settings(max_examples=200, deadline=None)
@given(value=JSON_VALUES)
def test_round_trip_is_equal_in_every_serializer(value: Any) -> None:
    serializers = both()
    for writer in serializers:
        data = writer.dumps(value)
        assert json.loads(data) == value  # valid, strict JSON for anyone
        for reader in serializers:
            decoded = reader.loads(data)
            assert decoded == value
            assert json.dumps(decoded, sort_keys=True) == json.dumps(
                value, sort_keys=True
            )  # int stays int


class TestChoosing:
    def test_available(self) -> None:
        found = available_serializers()
        assert isinstance(found["json"], StdlibSerializer)
        assert ("orjson" in found) is HAVE_ORJSON

    def test_default_serializer_preferences(self) -> None:
        assert isinstance(default_serializer("json"), StdlibSerializer)
        assert isinstance(default_serializer("stdlib"), StdlibSerializer)
        expected = OrjsonSerializer if HAVE_ORJSON else StdlibSerializer
        assert isinstance(default_serializer(), expected)
        assert isinstance(default_serializer("auto"), expected)
        with pytest.raises(ValueError, match="unknown JSON serializer"):
            default_serializer("simplejson")

    @pytest.mark.skipif(not HAVE_ORJSON, reason="orjson is not installed")
    def test_orjson_preference(self) -> None:
        assert isinstance(default_serializer("orjson"), OrjsonSerializer)


class TestWithoutOrjson:
    """What happens on a machine without orjson (simulated by hiding the module)."""

    @pytest.fixture(autouse=True)
    def no_orjson(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(sys.modules, "orjson", None)  # makes "import orjson" fail

    def test_only_the_standard_library_is_available(self) -> None:
        assert list(available_serializers()) == ["json"]

    def test_default_falls_back_to_the_standard_library(self) -> None:
        assert isinstance(default_serializer(), StdlibSerializer)
        assert isinstance(default_serializer("auto"), StdlibSerializer)

    def test_asking_for_orjson_explicitly_fails(self) -> None:
        with pytest.raises(ImportError):
            default_serializer("orjson")
