"""Prototypes of proposed changes, applied by monkeypatching in the benchmark processes only.

``python -m benchmarks.run --experiment no_gc ...`` applies the named patches in
every server and client process before anything runs, so a proposal from PROFILE.md can be
measured without editing rpcbd. rpcbd itself is never changed on disk.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["EXPERIMENTS", "apply"]


EXPERIMENTS: dict[str, Callable[[], None]] = {}


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

    OrjsonSerializer._loads_large = _loads_large  # type: ignore[method-assign]


EXPERIMENTS["no_big_integer_check"] = no_big_integer_check


def no_gc() -> None:
    """The cyclic garbage collector off in every benchmark process (measuring only)."""
    import gc

    gc.disable()


EXPERIMENTS["no_gc"] = no_gc


def slow_server_tick() -> None:
    """About 150 ns more work per ``tick`` notification on the server (a short busy
    loop), to see how a notification flood's throughput follows the server's speed: over
    TCP with one write per notification (the threaded client), a slower server reads
    more notifications per ``recv`` and the pair can get faster (see PROFILE.md)."""
    from benchmarks import impls

    original = impls.Counter.tick

    def tick(self: impls.Counter) -> None:
        for _ in range(8):
            pass
        original(self)

    impls.Counter.tick = tick  # type: ignore[method-assign]


EXPERIMENTS["slow_server_tick"] = slow_server_tick
