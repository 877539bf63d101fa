"""Attribute-style call builders shared by both runtimes.

``connection.request.foo.echo(1)`` calls ``"foo.echo"``; ``connection.request("a/b",
timeout=5)(1)`` names the method explicitly. Positional arguments send a JSON array,
keyword arguments a JSON object; mixing them is a ValueError.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rpcbd._compiled import mypyc_attr
from rpcbd.typing import Params

__all__ = ["MethodProxy", "make_params"]

#: Child proxies kept per proxy; names beyond it (generated ones, say) are built each time.
_MAX_CACHED_CHILDREN = 256

#: ``invoke(method, params, options) -> whatever the proxy returns``.
Invoker = Callable[[str, tuple[Any, ...], dict[str, Any], dict[str, Any]], Any]


def make_params(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Params:
    """JSON-RPC params from Python arguments.

    Raises:
        ValueError: both positional and keyword arguments were given.
    """
    if kwargs:
        if args:
            raise ValueError(
                "JSON-RPC params are either positional (an array) or named (an object); "
                "do not mix positional and keyword arguments"
            )
        return kwargs
    return list(args) if args else None


# Compiled (mypyc), still a regular Python class: child proxies are cached in the instance
# dictionary (see __getattr__), which a native class has not.
@mypyc_attr(native_class=False)
class MethodProxy:
    """Builds a method name from attribute access; calling it invokes the method.

    ``proxy.a.b(1)`` invokes ``"a.b"``; ``proxy("a/b", timeout=3)(1)`` invokes ``"a/b"``
    with per-call options.
    """

    __slots__ = ("__dict__", "_invoke", "_name", "_options")

    def __init__(self, invoke: Invoker, name: str = "", options: dict[str, Any] | None = None):
        self._invoke = invoke
        self._name = name
        self._options = options or {}

    def __getattr__(self, name: str) -> MethodProxy:
        # Only a name that ordinary lookup does not find gets here. Its child proxy is
        # kept in the instance dictionary, so `connection.request.echo(x)` in a loop finds
        # `echo` by ordinary lookup from then on: neither this call nor the AttributeError
        # the failed lookup raises first (about 390 ns down to 30 per call).
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)  # keep copy, pickle and friends from probing
        full = f"{self._name}.{name}" if self._name else name
        child = MethodProxy(self._invoke, full, self._options)
        cached = self.__dict__
        if len(cached) < _MAX_CACHED_CHILDREN:  # (names generated without end are not kept)
            cached[name] = child
        return child

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self._name:
            # proxy("method name", timeout=...) -> a callable for that method
            if len(args) != 1 or not isinstance(args[0], str):
                raise TypeError(
                    'name the method first: proxy("method")(*args) or proxy.method(*args)'
                )
            return MethodProxy(self._invoke, args[0], {**self._options, **kwargs})
        return self._invoke(self._name, args, kwargs, self._options)

    def __repr__(self) -> str:
        return f"<MethodProxy {self._name or '(unnamed)'}>"
