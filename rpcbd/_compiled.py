"""What the optional compiled build (mypyc) needs from the pure-Python sources.

The sans-IO core, the codecs and both runtimes' connections can be compiled with
mypyc (see ``docs/performance.md``); the same sources run unchanged when they are not. This
module is never compiled itself.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TypeVar

__all__ = ["COMPILED_MODULES", "build_description", "compiled_modules", "mypyc_attr"]

_T = TypeVar("_T")

try:
    # mypyc reads this decorator at compile time; at run time it does nothing.
    from mypy_extensions import mypyc_attr
except ImportError:  # a pure-Python install need not have mypy_extensions

    def mypyc_attr(*attrs: str, **kwattrs: object) -> Callable[[_T], _T]:
        """Stand-in for :func:`mypy_extensions.mypyc_attr`: returns the class unchanged."""
        return lambda cls: cls


#: The modules the compiled build compiles: the sans-IO core, the codecs, and both
#: runtimes' per-call paths. (``rpcbd.calls`` stays interpreted: both connections derive
#: from its ``ConnectionBase``, and mypyc checks ``self`` of a compiled non-native class
#: by exact type; ``rpcbd.dispatch`` holds ``Handler``, which users subclass.)
COMPILED_MODULES = (
    "rpcbd.core.endpoint",
    "rpcbd.core.events",
    "rpcbd.core.messages",
    "rpcbd.core.pending",
    "rpcbd.core.state",
    "rpcbd.codecs.base",
    "rpcbd.codecs.buffer",
    "rpcbd.codecs.content_length",
    "rpcbd.codecs.eot",
    "rpcbd.codecs.framing",
    "rpcbd.codecs.json_stream",
    "rpcbd.codecs.jsonrpc1",
    "rpcbd.codecs.jsonrpc2",
    "rpcbd.codecs.length_prefix",
    "rpcbd.codecs.netstring",
    "rpcbd.codecs.newline",
    "rpcbd.codecs.serializer",
    "rpcbd.context",
    "rpcbd.proxy",
    "rpcbd.threaded.connection",
    "rpcbd.aio.connection",
)


def compiled_modules() -> list[str]:
    """The modules of :data:`COMPILED_MODULES` that were imported from a compiled
    extension (empty for a pure-Python install)."""
    compiled = []
    for name in COMPILED_MODULES:
        path = getattr(importlib.import_module(name), "__file__", None) or ""
        if not path.endswith(".py"):
            compiled.append(name)
    return compiled


def build_description() -> str:
    """One line for ``rpcbd --version``: compiled or pure Python, and the JSON library."""
    from rpcbd.codecs.serializer import default_serializer

    compiled = compiled_modules()
    if not compiled:
        build = "pure Python"
    elif len(compiled) == len(COMPILED_MODULES):
        build = "compiled with mypyc"
    else:
        build = f"compiled with mypyc: {len(compiled)} of {len(COMPILED_MODULES)} modules"
    return f"{build}; JSON: {default_serializer().name}"
