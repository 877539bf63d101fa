"""JSON serializers: the standard library's ``json`` and, when installed, ``orjson``.

Both behave identically as far as a peer can tell:

- ``loads`` takes UTF-8 bytes and raises :class:`JsonDecodeError` (a ``ValueError``) for
  anything that is not one strict JSON text: invalid UTF-8, a byte-order mark, lone UTF-16
  surrogates (``"\\ud800"``), ``NaN``/``Infinity`` literals, and nesting deep enough to hit a
  recursion limit (never ``RecursionError``). No other exception escapes. The two parsers'
  own depth limits differ (orjson: 1024 levels; the standard library: about 1000 minus the
  caller's stack), so texts nested about 1000 deep may be read by one and refused by the
  other; an :class:`~rpcbd.core.Endpoint` refuses anything deeper than its
  ``max_nesting_depth`` (default :data:`DEFAULT_MAX_NESTING_DEPTH`, 512) before parsing,
  which makes them agree on the wire.
- ``dumps`` returns compact UTF-8 bytes (no spaces, non-ASCII kept as UTF-8). Non-finite
  floats are sent as ``null`` (as orjson and JavaScript's ``JSON.stringify`` do); an
  ``enum.Enum`` member is sent as its value and a ``uuid.UUID`` as its string (orjson does
  both natively and cannot be told not to); other values that are not JSON (datetimes,
  dataclasses, sets, bytes, ...) raise ``TypeError``; strings with lone surrogates raise
  ``ValueError``.

The ``fast`` extra installs orjson; :func:`default_serializer` picks it when importable.
Set the environment variable ``RPCBD_JSON=stdlib`` to force the standard library (the
runtimes read it; this module only reads what it is given).
"""

from __future__ import annotations

import array
import enum
import importlib
import itertools
import json
import math
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

from rpcbd._compiled import mypyc_attr

__all__ = [
    "DEFAULT_MAX_NESTING_DEPTH",
    "JsonDecodeError",
    "OrjsonSerializer",
    "Serializer",
    "StdlibSerializer",
    "available_serializers",
    "default_serializer",
    "nesting_depth_exceeds",
]

#: Default ``max_nesting_depth``: below both parsers' own recursion limits (about 1000),
#: so the stdlib and orjson agree on every input.
DEFAULT_MAX_NESTING_DEPTH = 512


class JsonDecodeError(ValueError):
    """The bytes are not one valid JSON text."""


@mypyc_attr(allow_interpreted_subclasses=True)
class Serializer(ABC):
    """Turns JSON values into bytes and back."""

    name: ClassVar[str] = ""

    @abstractmethod
    def dumps(self, value: Any) -> bytes:
        """Encode ``value`` as compact UTF-8 JSON."""

    @abstractmethod
    def loads(self, data: bytes) -> Any:
        """Decode one JSON text; raise :class:`JsonDecodeError` for anything invalid."""


def _reject_constant(name: str) -> Any:
    # RFC 8259 section 6: "Numeric values that cannot be represented in the grammar below
    # (such as Infinity and NaN) are not permitted."
    raise JsonDecodeError(f"{name} is not valid JSON")


# A \uD800-\uDFFF escape; only when one is present can a decoded string hold a lone surrogate.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abAB89cdefCDEF]")


# Nineteen digits in a row may be an integer beyond 64 bits (or just digits in a string):
# orjson reads integers below -2**63 (nineteen digits) or above 2**64 - 1 as floats.
# Found by mapping every digit to "0" and searching for nineteen of them: translate() and
# a substring search run in C, about eight times faster than a regex over the same bytes.
_DIGITS_TO_ZERO = bytes.maketrans(b"0123456789", b"0" * 10)
_LONG_RUN = b"0" * 19

# From this length on, OrjsonSerializer parses first and looks for such floats in the
# value (see _may_hold_big_integer), which for a message of a few large strings costs a
# handful of steps instead of two passes over every byte (about 0.6 ms per MiB).
_PARSE_FIRST_MIN = 16 * 1024
# orjson reads an integer literal beyond [-2**63, 2**64 - 1] as a float of at least this
# magnitude (-2**63 - 1 rounds to -2**63).
_BIG_FLOAT = float(2**63)


# A JSON string, unrolled so the regex engine does not backtrack.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_TO_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


# From this length on, opening brackets are counted with find() (memchr: about 30 times
# faster per byte than count(), which reads every byte) as long as there are few of them.
_FIND_BRACKETS_MIN = 16 * 1024


def _more_opening_brackets_than(data: bytes, limit: int) -> bool:
    if len(data) < _FIND_BRACKETS_MIN:
        return data.count(b"[") + data.count(b"{") > limit
    found = 0
    for bracket in (b"[", b"{"):
        position = data.find(bracket)
        while position >= 0:
            found += 1
            if found > limit:
                return True
            position = data.find(bracket, position + 1)
    return False


def nesting_depth_exceeds(data: bytes, limit: int) -> bool:
    """Whether the JSON text ``data`` nests arrays/objects deeper than ``limit``.

    Cheap for ordinary messages: depth can only exceed ``limit`` if there are more than
    ``limit`` opening brackets, so the scan runs only then (and a text of at most ``limit``
    bytes is not even counted). The scan removes strings and everything but brackets (in
    C), then follows the depth.
    """
    if len(data) <= limit or not _more_opening_brackets_than(data, limit):
        return False
    # Without escapes every '"' delimits a string, so the even pieces of a split on '"'
    # are the text outside strings (much faster than the regex, which handles escapes).
    outside = b"".join(data.split(b'"')[::2]) if b"\\" not in data else _JSON_STRING.sub(b"", data)
    brackets = outside.translate(_TO_STEPS, _NOT_BRACKETS)
    # Each opening bracket is +1 and each closing one -1 (as a signed byte); the deepest
    # point is the largest running sum.
    return max(itertools.accumulate(array.array("b", brackets)), default=0) > limit


def _may_hold_big_integer(value: Any, budget: int) -> bool:
    """False if ``value`` (as orjson parsed it) has no float of an integer's magnitude
    beyond 64 bits, found in at most ``budget`` steps; True if it may have one (found
    one, or ran out of steps)."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is float:
            if not -_BIG_FLOAT < item < _BIG_FLOAT:
                return True
        elif kind is list or kind is dict:
            budget -= 1
            if kind is list and len(item) > budget:
                # A long list of numbers (the common large list): sum() runs in C and
                # gives an int only if every member is an int, and ints are exact.
                try:
                    if type(sum(item)) is int:
                        continue
                except TypeError:
                    pass  # not all numbers
                return True
            budget -= len(item)
            if budget < 0:
                return True
            stack.extend(item.values() if kind is dict else item)
    return False


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _default(value: Any) -> Any:
    # What orjson serializes natively beyond plain JSON and cannot be told to refuse:
    # enum members (by value) and UUIDs (as their canonical string).
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _finite(value: Any) -> Any:
    """A copy of ``value`` with NaN and infinities replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def _reusable_c_encoder(encoder: json.JSONEncoder) -> Callable[[Any, int], Any] | None:
    """The C encoder that ``encoder.encode()`` makes on every call, made once, or None
    where there is none (PyPy) or it does not give the same text.

    It is made without the cycle check's table (``markers``), the one piece of state that
    would outlive a failed call: a cycle then ends in RecursionError, and the caller hands
    every failure to ``encoder.encode()``, which reports it as before.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return None
    probe = {"a": [1, -2.5, None, True, "é\n"], "b": {}, "c": "x"}
    try:
        fast: Callable[[Any, int], Any] = make(
            None,
            encoder.default,
            json.encoder.encode_basestring,
            None,
            encoder.key_separator,
            encoder.item_separator,
            encoder.sort_keys,
            encoder.skipkeys,
            encoder.allow_nan,
        )
        same = "".join(fast(probe, 0)) == encoder.encode(probe)
    except Exception:  # another signature (a future Python): keep to encode()
        return None
    return fast if same else None


@mypyc_attr(allow_interpreted_subclasses=True)
class StdlibSerializer(Serializer):
    """The standard library's ``json``, made strict."""

    name = "json"

    def __init__(self) -> None:
        self._decoder = json.JSONDecoder(parse_constant=_reject_constant)
        self._encoder = json.JSONEncoder(
            ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_default
        )
        # The C scanner decode() calls after stripping whitespace (Python-level work
        # that costs as much as scanning a small message), and the C encoder encode()
        # builds anew on every call: used directly, a small message takes half the time.
        decoder: Any = self._decoder  # (typeshed does not list scan_once)
        self._scan_once: Callable[[str, int], tuple[Any, int]] = decoder.scan_once
        self._fast_encode = _reusable_c_encoder(self._encoder)

    def dumps(self, value: Any) -> bytes:
        fast_encode = self._fast_encode
        if fast_encode is not None:
            try:
                text = "".join(fast_encode(value, 0))
            except Exception:
                pass  # (not JSON, NaN, a cycle, too deep): the full encoder says how below
            else:
                try:
                    return text.encode("utf-8")
                except UnicodeEncodeError as exc:
                    raise ValueError(
                        "string with a lone surrogate cannot be sent as UTF-8"
                    ) from exc
        try:
            text = self._encoder.encode(value)
        except ValueError as exc:
            if "Circular reference" in str(exc):
                raise TypeError("circular reference in JSON value") from exc
            text = self._encoder.encode(_finite(value))
        except RecursionError as exc:
            raise TypeError("JSON value nested too deeply") from exc
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError("string with a lone surrogate cannot be sent as UTF-8") from exc

    def loads(self, data: bytes) -> Any:
        try:
            text = data.decode("utf-8")
            value = self._decode(text)
        except JsonDecodeError:
            raise
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise JsonDecodeError(str(exc)) from None
        if _SURROGATE_ESCAPE.search(data) and _has_lone_surrogate(value):
            raise JsonDecodeError("lone UTF-16 surrogate in string")
        return value

    def _decode(self, text: str) -> Any:
        """``self._decoder.decode(text)``, with the scanner called directly when the text
        is one value with no whitespace around it (compact JSON, as peers send)."""
        try:
            value, end = self._scan_once(text, 0)
        except Exception:
            # No value at 0 (whitespace first, or not JSON), a syntax error, too deep:
            # decode() says which, in its own words.
            return self._decoder.decode(text)
        if end != len(text):
            return self._decoder.decode(text)  # whitespace after it, or extra data
        return value


@mypyc_attr(allow_interpreted_subclasses=True)
class OrjsonSerializer(Serializer):
    """``orjson`` where it can, the strict standard library where orjson refuses.

    orjson refuses integers beyond 64 bits and non-string dict keys that the standard
    library accepts, reads integers beyond 64 bits as floats, and serializes datetimes and
    dataclasses unless told not to; falling back keeps behaviour identical to
    :class:`StdlibSerializer`.
    """

    name = "orjson"

    def __init__(self) -> None:
        # import_module(), not an import statement: compiled (mypyc), the statement keeps
        # the module it found first, and an orjson hidden later through sys.modules (as
        # tests do) would still be used.
        orjson = importlib.import_module("orjson")
        self._orjson_dumps = orjson.dumps
        # Datetimes and dataclasses are not JSON: let them fail as in the standard library
        # instead of being turned into strings and objects.
        self._orjson_options = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
        self._orjson_loads = orjson.loads
        self._decode_error = orjson.JSONDecodeError
        self._encode_error = orjson.JSONEncodeError
        self._stdlib = StdlibSerializer()

    def dumps(self, value: Any) -> bytes:
        try:
            data: bytes = self._orjson_dumps(value, option=self._orjson_options)
        except self._encode_error:
            return self._stdlib.dumps(value)
        return data

    def loads(self, data: bytes) -> Any:
        if len(data) >= _PARSE_FIRST_MIN:
            return self._loads_large(data)
        # find(), not `in`: on CPython `bytes in bytes` first tries the operand as an
        # integer (a TypeError raised and cleared), which costs as much as this search.
        if data.translate(_DIGITS_TO_ZERO).find(_LONG_RUN) >= 0:
            # orjson turns integers beyond 64 bits into floats; keep them exact.
            return self._stdlib.loads(data)
        try:
            return self._orjson_loads(data)
        except self._decode_error:
            # orjson is stricter in a few places (huge integers, deep nesting); the
            # standard library decides, so both serializers accept the same texts.
            return self._stdlib.loads(data)

    def _loads_large(self, data: bytes) -> Any:
        """``loads`` of a large text: parse first, then search the text for long digit
        runs only if the value may hold an integer that orjson read as a float. Same
        result as the order above; the second parse happens only for such texts."""
        try:
            value = self._orjson_loads(data)
        except self._decode_error:
            return self._stdlib.loads(data)
        # At most one step per 256 bytes, so the walk never costs much of what the text
        # search would (a long list of numbers is summed in C instead of walked).
        if _may_hold_big_integer(value, len(data) >> 8) and (
            data.translate(_DIGITS_TO_ZERO).find(_LONG_RUN) >= 0
        ):
            return self._stdlib.loads(data)
        return value


def available_serializers() -> dict[str, Serializer]:
    """Every serializer that can be used here, by name."""
    found: dict[str, Serializer] = {"json": StdlibSerializer()}
    try:
        found["orjson"] = OrjsonSerializer()
    except ImportError:
        pass
    return found


def default_serializer(preference: str | None = None) -> Serializer:
    """The serializer to use: ``preference`` if given ("json"/"stdlib" or "orjson"), else
    orjson when installed, else the standard library."""
    if preference in ("json", "stdlib"):
        return StdlibSerializer()
    if preference not in (None, "", "orjson", "auto"):
        raise ValueError(f"unknown JSON serializer {preference!r}; use 'json' or 'orjson'")
    try:
        return OrjsonSerializer()
    except ImportError:
        if preference == "orjson":
            raise
        return StdlibSerializer()
