"""Handlers and the method registry: which Python methods the wire may call, and how a
call's params bind to them. No I/O; the runtimes decide where a method runs.

Exposure rules (the security boundary; tested in tests/test_dispatch.py):

- Exposed: public methods defined by the user's class and its user-defined bases.
- Never exposed: names starting with ``_`` (unless decorated ``@exposed``), ``@hidden``
  methods, anything defined on :class:`Handler` itself (``on_connect``, ...), attributes
  that are not functions. A wire name is looked up in a table built once per class, so no
  attribute traversal (``a.b.__class__``) is possible from the wire.
"""

from __future__ import annotations

import inspect
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

from rpcbd.exceptions import RpcInvalidParamsError

if TYPE_CHECKING:
    from rpcbd.typing import Params

__all__ = [
    "CALLBACK_PREFIX",
    "Handler",
    "MethodInfo",
    "MethodTable",
    "bind_params",
    "exposed",
    "hidden",
    "mayblock",
    "method_table",
    "plain_positional_args",
    "willnotblock",
]

#: Method names of implicit callbacks: ``rpc.callback.<uuid4>``.
CALLBACK_PREFIX = "rpc.callback."

F = TypeVar("F", bound=Callable[..., Any])


class Handler:
    """Base class of request handlers.

    Subclass it and define methods; each public method becomes a JSON-RPC method. One
    instance is made per connection and handler class, with :attr:`connection` set to the
    connection it serves, so a handler can call the other side through
    ``self.connection.request.x(...)``.

    Class attributes:
        assume_methods_block: where undecorated methods run. ``True`` (default): on the
            worker pool, so they may block and call back. ``False``: inline on the
            connection's reader thread (fast; must not block). ``None``: every exposed
            method must say, with ``@mayblock`` or ``@willnotblock``.
    """

    assume_methods_block: bool | None = True
    connection: Any = None

    def on_connect(self) -> None:
        """Called once when the connection opens (override to use)."""

    def on_disconnect(self) -> None:
        """Called once after the connection closed (override to use)."""


def _copy_function(func: types.FunctionType) -> types.FunctionType:
    copy = types.FunctionType(
        func.__code__, func.__globals__, func.__name__, func.__defaults__, func.__closure__
    )
    copy.__kwdefaults__ = func.__kwdefaults__
    copy.__qualname__ = func.__qualname__
    copy.__doc__ = func.__doc__
    copy.__module__ = func.__module__
    copy.__annotations__ = dict(func.__annotations__)
    copy.__dict__.update(func.__dict__)
    return copy


def _mark(func: Any, attribute: str, value: Any) -> Any:
    """Return ``func`` (a function, staticmethod or classmethod) marked with ``attribute``.

    A plain function is copied before it is marked: ``echo = hidden(Base.echo)`` or
    ``_reset = exposed(Base._reset)`` in a subclass must change the subclass only, never
    expose or hide the method on ``Base`` (whose table may not be built yet) as well.
    """
    wrapper = type(func) if isinstance(func, (staticmethod, classmethod)) else None
    target = func.__func__ if wrapper is not None else func
    if isinstance(target, types.FunctionType):
        target = _copy_function(target)
    setattr(target, attribute, value)
    return target if wrapper is None else wrapper(target)


@overload
def exposed(func: F) -> F: ...
@overload
def exposed(func: str | None = None, *, name: str | None = None) -> Callable[[F], F]: ...


def exposed(func: Any = None, *, name: str | None = None) -> Any:
    """Expose a method: also one whose name starts with ``_``, and under another wire name.

    ``@exposed``, ``@exposed("textDocument/hover")`` or ``@exposed(name="$/progress")``.
    """
    if isinstance(func, str):
        name, func = func, None

    def decorate(f: F) -> F:
        marked = _mark(f, "_rpcbd_exposed", True)
        if name is not None:
            marked = _mark(marked, "_rpcbd_name", name)
        return cast(F, marked)

    return decorate if func is None else decorate(func)


def hidden(func: F) -> F:
    """Never expose this method to the wire."""
    return cast(F, _mark(func, "_rpcbd_hidden", True))


def mayblock(func: F) -> F:
    """Run this method on the worker pool: it may block and may call the other side."""
    return cast(F, _mark(func, "_rpcbd_blocks", True))


def willnotblock(func: F) -> F:
    """Run this method inline on the reader thread (or event loop): it must not block."""
    return cast(F, _mark(func, "_rpcbd_blocks", False))


@dataclass(frozen=True, slots=True)
class MethodInfo:
    """One exposed method.

    Attributes:
        name: the wire name (with any prefix).
        attribute: the Python attribute on the handler class.
        handler_class: the class that holds it.
        blocks: True to run on the worker pool, False to run inline.
        is_async: whether it is an ``async def`` (runs as a task in asyncio).
        signature: the signature of the bound method (without ``self``).
    """

    name: str
    attribute: str
    handler_class: type
    blocks: bool
    is_async: bool
    signature: inspect.Signature
    shape: _Shape = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", _Shape(self.signature))


class _Shape:
    """What a signature accepts, precomputed so that binding a call's params costs a few
    comparisons; ``Signature.bind`` runs only to explain a mismatch."""

    __slots__ = (
        "max_positional",
        "min_positional",
        "most_positional",
        "named_possible",
        "names",
        "required_names",
    )

    def __init__(self, signature: inspect.Signature) -> None:
        kinds = inspect.Parameter
        self.min_positional = 0
        self.max_positional: int | None = 0  # None: *args
        names: set[str] | None = set()  # None: **kwargs
        required: set[str] = set()
        required_keyword_only = False
        self.named_possible = True
        for parameter in signature.parameters.values():
            kind = parameter.kind
            has_default = parameter.default is not kinds.empty
            if kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD):
                if self.max_positional is not None:
                    self.max_positional += 1
                if not has_default:
                    self.min_positional += 1
                    # A required positional-only parameter cannot come from an object.
                    self.named_possible &= kind is not kinds.POSITIONAL_ONLY
            if kind is kinds.VAR_POSITIONAL:
                self.max_positional = None
            if kind is kinds.VAR_KEYWORD:
                names = None
            elif kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY):
                if names is not None:
                    names.add(parameter.name)
                if not has_default:
                    required.add(parameter.name)
                    required_keyword_only |= kind is kinds.KEYWORD_ONLY
        self.names = None if names is None else frozenset(names)
        self.required_names = frozenset(required)
        if required_keyword_only:
            # Positional params can never satisfy a required keyword-only parameter.
            self.max_positional = -1
        self.most_positional = sys.maxsize if self.max_positional is None else self.max_positional

    def accepts_positional(self, count: int) -> bool:
        if count < self.min_positional:
            return False
        return self.max_positional is None or count <= self.max_positional

    def accepts_named(self, keys: Any) -> bool:
        if not self.named_possible or not self.required_names.issubset(keys):
            return False
        return self.names is None or self.names.issuperset(keys)


#: A wire name to its method.
MethodTable = dict[str, MethodInfo]

_TABLES: dict[tuple[type, str | None], MethodTable] = {}


def _function_of(value: Any) -> Callable[..., Any] | None:
    if isinstance(value, (staticmethod, classmethod)):
        value = value.__func__
    if inspect.isfunction(value):
        return value
    return None


def method_table(cls: type, prefix: str | None = None) -> MethodTable:
    """The exposed methods of handler class ``cls``, by wire name (cached per class).

    Raises:
        TypeError: ``cls`` has ``assume_methods_block = None`` and an exposed method
            without ``@mayblock`` / ``@willnotblock``.
    """
    key = (cls, prefix)
    table = _TABLES.get(key)
    if table is not None:
        return table
    table = {}
    seen: set[str] = set()
    default_blocks = getattr(cls, "assume_methods_block", True)
    undecided: list[str] = []
    for klass in cls.__mro__:
        if klass in Handler.__mro__:  # Handler itself and object expose nothing
            continue
        for attribute, value in vars(klass).items():
            if attribute in seen:
                continue  # a subclass's definition (or hiding) wins
            seen.add(attribute)
            func = _function_of(value)
            if func is None or getattr(func, "_rpcbd_hidden", False):
                continue
            explicit = getattr(func, "_rpcbd_exposed", False)
            if attribute.startswith("_") and not explicit:
                continue
            if attribute in vars(Handler) and not explicit:
                continue  # on_connect and friends are hooks, not methods
            blocks = getattr(func, "_rpcbd_blocks", default_blocks)
            if blocks is None:
                undecided.append(attribute)
                continue
            wire = getattr(func, "_rpcbd_name", attribute)
            if prefix:
                wire = f"{prefix}.{wire}"
            bound_signature = inspect.signature(func)
            if not isinstance(value, staticmethod):
                params = list(bound_signature.parameters.values())[1:]
                bound_signature = bound_signature.replace(parameters=params)
            table[wire] = MethodInfo(
                wire,
                attribute,
                cls,
                bool(blocks),
                inspect.iscoroutinefunction(func),
                bound_signature,
            )
    if undecided:
        raise TypeError(
            f"{cls.__name__} has assume_methods_block = None, so every method needs "
            f"@mayblock or @willnotblock; missing on: {', '.join(sorted(undecided))}"
        )
    _TABLES[key] = table
    return table


def plain_positional_args(info: MethodInfo, params: Params) -> list[Any] | None:
    """``params`` itself if it is a list that fits the method's positional parameters
    and holds no implicit callback name: the common call, bound in a few steps. None:
    anything else, which goes through the runtime's callback wrapping and
    :func:`bind_params`."""
    if type(params) is not list:
        return None
    shape = info.shape
    if not shape.min_positional <= len(params) <= shape.most_positional:
        return None
    for value in params:  # a plain loop: no generator per call
        if type(value) is str and value.startswith(CALLBACK_PREFIX):
            return None
    return params


def bind_params(info: MethodInfo, params: Params) -> tuple[list[Any], dict[str, Any]]:
    """Bind JSON-RPC params to the method's signature.

    Returns:
        ``(args, kwargs)`` to call the bound method with.

    Raises:
        RpcInvalidParamsError: the params do not fit the signature (``data`` says why).
    """
    if params is None:
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
    elif type(params) is list:
        args, kwargs = params, {}
    elif type(params) is dict:
        args, kwargs = [], params
    else:
        raise RpcInvalidParamsError(data="params must be an array or an object")
    shape = info.shape
    if (
        (shape.accepts_named(kwargs) and not args)
        if kwargs
        else shape.accepts_positional(len(args))
    ):
        return args, kwargs
    try:
        info.signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise RpcInvalidParamsError(data=str(exc)) from None
    return args, kwargs  # pragma: no cover - the shape check and bind() agree
