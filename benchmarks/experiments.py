"""Prototypes of proposed changes, applied by monkeypatching in the benchmark processes only.

``python -m benchmarks.run --experiment fast_long_digits ...`` applies the named patches in
every server and client process before anything runs, so a proposal from PROFILE.md can be
measured without editing rpcbd. rpcbd itself is never changed on disk.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["EXPERIMENTS", "apply"]


class _TranslateSearch:
    """Stands in for ``re.compile(rb"[0-9]{n}")``: ``search`` answers whether ``n`` digits
    follow each other, by mapping digits to b"0" and the rest to b" " in C."""

    _TABLE = bytes(48 if 48 <= b <= 57 else 32 for b in range(256))

    def __init__(self, n: int) -> None:
        self._needle = b"0" * n

    def search(self, data: bytes) -> bool:
        return self._needle in data.translate(self._TABLE)


def fast_long_digits() -> None:
    """F1: the 19-digit check of ``OrjsonSerializer.loads`` without a regex."""
    from rpcbd.codecs import serializer

    pattern = serializer._LONG_DIGITS.pattern
    digits = int(pattern[pattern.index(b"{") + 1 : pattern.index(b"}")])
    serializer._LONG_DIGITS = _TranslateSearch(digits)  # type: ignore[assignment]


def short_depth_check() -> None:
    """F3: a text no longer than the limit cannot nest deeper than the limit."""
    from rpcbd.codecs import serializer
    from rpcbd.core import endpoint

    original = serializer.nesting_depth_exceeds

    def nesting_depth_exceeds(data: bytes, limit: int) -> bool:
        return len(data) > limit and original(data, limit)

    serializer.nesting_depth_exceeds = nesting_depth_exceeds
    endpoint.nesting_depth_exceeds = nesting_depth_exceeds  # type: ignore[attr-defined]


def single_frame_fast_path() -> None:
    """F2: a block holding one record is the frame as it is (no split, min, max, sum), and
    the endpoint's own payloads are framed without scanning them for a newline."""
    from rpcbd.codecs.newline import DelimiterDeframer, NewlineFraming

    original = DelimiterDeframer._queue

    def _queue(self: DelimiterDeframer, complete: bytes) -> None:
        if (
            complete[:1] > b" "
            and len(complete) <= self.max_message_size
            and not (self._strip_cr and complete.endswith(b"\r"))
            and self._delimiter not in complete
        ):
            self._pending = [complete]  # type: ignore[list-item]
            self._pending_size = len(complete)
            return
        original(self, complete)

    DelimiterDeframer._queue = _queue  # type: ignore[method-assign]
    # Compact JSON from the serializer never holds a raw newline.
    NewlineFraming.frame = lambda self, payload: payload + b"\n"  # type: ignore[method-assign]


EXPERIMENTS: dict[str, Callable[[], None]] = {
    "single_frame_fast_path": single_frame_fast_path,
    "fast_long_digits": fast_long_digits,
    "short_depth_check": short_depth_check,
}


def apply(names: list[str]) -> None:
    """Apply the named experiments (in a benchmark child process)."""
    for name in names:
        EXPERIMENTS[name]()


def no_caller_reads() -> None:
    """Threaded: every reply comes from the reader thread (callers never read)."""
    from rpcbd.threaded.connection import Connection

    original = Connection.__init__

    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        original(self, *args, **kwargs)
        self._caller_reads = False

    Connection.__init__ = __init__  # type: ignore[method-assign]


EXPERIMENTS["no_caller_reads"] = no_caller_reads


def no_big_integer_check() -> None:
    """Large texts parsed by orjson alone: what the exact-big-integer check costs (unsafe:
    integers beyond 64 bits would come back as floats)."""
    from rpcbd.codecs.serializer import OrjsonSerializer

    def _loads_large(self: OrjsonSerializer, data: bytes) -> object:
        return self._orjson_loads(data)

    OrjsonSerializer._loads_large = _loads_large  # type: ignore[assignment]


EXPERIMENTS["no_big_integer_check"] = no_big_integer_check


def no_gc() -> None:
    """The cyclic garbage collector off in every benchmark process (measuring only)."""
    import gc

    gc.disable()


EXPERIMENTS["no_gc"] = no_gc
