"""rpcbd.dispatch: which Python methods the wire may call (API.md section 6, the security
boundary) and how params bind to them."""

from __future__ import annotations

import functools
import inspect
from typing import Any

import pytest

from rpcbd import Handler, RpcInvalidParamsError, exposed, hidden, mayblock, willnotblock
from rpcbd.dispatch import (
    CALLBACK_PREFIX,
    MethodInfo,
    bind_params,
    method_table,
    plain_positional_args,
)


class Helper:
    """A callable object: callable, but not a method."""

    def __call__(self) -> str:
        return "called"


class Example(Handler):
    assume_methods_block = False

    limit = 5
    helper = Helper()
    nested = Handler
    partial = functools.partial(print, "x")
    builtin = len

    def echo(self, data: Any) -> Any:
        return data

    def _private(self) -> None: ...

    def __dunder__(self) -> None: ...

    def __call__(self) -> None: ...

    def on_connect(self) -> None:  # a hook, even when overridden
        ...

    def on_disconnect(self) -> None: ...

    @property
    def computed(self) -> int:
        return 1

    @staticmethod
    def add(a: int, b: int = 2) -> int:
        return a + b

    @classmethod
    def kind(cls, label: str) -> str:
        return f"{cls.__name__}:{label}"

    async def later(self, x: int) -> int:
        return x

    @exposed
    def _special(self) -> str:
        return "special"

    @exposed("textDocument/hover")
    def hover(self, position: dict[str, int]) -> None: ...

    @exposed(name="$/progress")
    def progress(self, token: str, value: Any = None) -> None: ...

    @hidden
    def secret(self) -> None: ...

    @mayblock
    def slow(self) -> None: ...


EXPECTED = {
    "echo",
    "add",
    "kind",
    "later",
    "_special",
    "textDocument/hover",
    "$/progress",
    "slow",
}


class TestExposure:
    def test_exactly_the_public_methods(self) -> None:
        assert set(method_table(Example)) == EXPECTED

    @pytest.mark.parametrize(
        "name",
        [
            "__dunder__",
            "__call__",
            "__init__",
            "__class__",
            "__dict__",
            "__module__",
            "__subclasshook__",
            "_private",
            "_Example__x",
            "on_connect",
            "on_disconnect",
            "connection",
            "assume_methods_block",
            "limit",
            "helper",
            "nested",
            "partial",
            "builtin",
            "computed",
            "secret",
            "hover",  # renamed: only the wire name exists
            "progress",
            "echo.__class__",
            "echo.__globals__",
            "connection.close",
            "connection.request",
            "helper.__call__",
            "mro",
            "",
            ".",
        ],
    )
    def test_never_reachable(self, name: str) -> None:
        assert name not in method_table(Example)
        assert name not in method_table(Example, "foo")
        assert f"foo.{name}" not in method_table(Example, "foo")

    def test_nothing_from_handler_itself(self) -> None:
        class Empty(Handler):
            pass

        assert method_table(Empty) == {}
        assert method_table(Handler) == {}

    def test_user_defined_bases_are_exposed(self) -> None:
        class Mixin:
            def shared(self) -> str:
                return "shared"

            def _internal(self) -> None: ...

        class Both(Mixin, Handler):
            def own(self) -> None: ...

        assert set(method_table(Both)) == {"shared", "own"}

    def test_handler_names_are_hooks_unless_exposed(self) -> None:
        class Hooks(Handler):
            def connection(self) -> None: ...

            @exposed
            def on_connect(self) -> None: ...

        assert set(method_table(Hooks)) == {"on_connect"}

    def test_exposed_with_a_name_also_on_private_methods(self) -> None:
        class Named(Handler):
            @exposed(name="rpc.discover")
            def _discover(self) -> None: ...

            @exposed("textDocument/didOpen")
            @willnotblock
            def did_open(self) -> None: ...

        table = method_table(Named)
        assert set(table) == {"rpc.discover", "textDocument/didOpen"}
        assert table["rpc.discover"].attribute == "_discover"
        assert table["textDocument/didOpen"].attribute == "did_open"
        assert table["textDocument/didOpen"].blocks is False

    def test_bare_exposed_call_form(self) -> None:
        class Plain(Handler):
            @exposed()
            def _x(self) -> None: ...

        assert set(method_table(Plain)) == {"_x"}

    def test_renamed_and_prefixed(self) -> None:
        table = method_table(Example, prefix="foo")
        assert set(table) == {f"foo.{name}" for name in EXPECTED}
        assert table["foo.echo"].name == "foo.echo"
        assert table["foo.textDocument/hover"].attribute == "hover"
        assert method_table(Example, prefix="") == method_table(Example)


class TestHidden:
    def test_hiding_an_inherited_method_by_redefining_it(self) -> None:
        class Base(Handler):
            def echo(self, x: Any) -> Any:
                return x

            def other(self) -> None: ...

        class Sub(Base):
            @hidden
            def echo(self, x: Any) -> Any:
                return super().echo(x)

        assert set(method_table(Sub)) == {"other"}
        assert set(method_table(Base)) == {"echo", "other"}
        assert Sub().echo(3) == 3  # still an ordinary method for Python callers

    def test_hiding_an_inherited_function_leaves_the_base_alone(self) -> None:
        class Base(Handler):
            def echo(self, x: Any) -> Any:
                return x

            def _reset(self) -> str:
                return "reset"

        class Sub(Base):
            echo = hidden(Base.echo)
            reset = exposed(name="reset")(Base._reset)

        class Admin(Base):
            _reset = exposed(Base._reset)

        assert set(method_table(Sub)) == {"reset"}
        assert set(method_table(Admin)) == {"echo", "_reset"}
        # Neither decorator marked the base class's own function.
        assert set(method_table(Base)) == {"echo"}
        assert Sub().reset() == "reset" and Admin()._reset() == "reset"

    def test_a_subclass_can_expose_again(self) -> None:
        class Base(Handler):
            @hidden
            def tool(self) -> None: ...

        class Sub(Base):
            def tool(self) -> None: ...

        assert "tool" not in method_table(Base)
        assert "tool" in method_table(Sub)

    def test_decorating_a_callable_object_marks_it_in_place(self) -> None:
        helper = Helper()
        assert hidden(helper) is helper
        assert helper._rpcbd_hidden is True  # type: ignore[attr-defined]

    def test_none_shadowing_hides(self) -> None:
        class Base(Handler):
            def tool(self) -> None: ...

        class Sub(Base):
            tool = None  # type: ignore[assignment]

        assert "tool" not in method_table(Sub)


class TestBlocking:
    def test_default_is_to_block(self) -> None:
        class Default(Handler):
            def m(self) -> None: ...

        assert Handler.assume_methods_block is True
        assert method_table(Default)["m"].blocks is True

    def test_class_default_and_decorators(self) -> None:
        table = method_table(Example)
        assert table["echo"].blocks is False  # assume_methods_block = False
        assert table["slow"].blocks is True  # @mayblock

    def test_none_requires_a_decorator(self) -> None:
        class Strict(Handler):
            assume_methods_block = None

            @mayblock
            def fine(self) -> None: ...

            def undecided(self) -> None: ...

            def also_undecided(self) -> None: ...

        with pytest.raises(TypeError, match="also_undecided, undecided"):
            method_table(Strict)

    def test_none_with_every_method_decorated(self) -> None:
        class Strict(Handler):
            assume_methods_block = None

            @mayblock
            def a(self) -> None: ...

            @willnotblock
            def b(self) -> None: ...

            @hidden
            def c(self) -> None: ...  # hidden: needs no decision

            def _d(self) -> None: ...

        table = method_table(Strict)
        assert {name: info.blocks for name, info in table.items()} == {"a": True, "b": False}

    def test_decorators_on_static_and_class_methods(self) -> None:
        class Statics(Handler):
            @mayblock
            @staticmethod
            def s(x: int) -> int:
                return x

            @willnotblock
            @classmethod
            def c(cls, x: int) -> int:
                return x

        table = method_table(Statics)
        assert table["s"].blocks is True and table["c"].blocks is False
        assert list(table["s"].signature.parameters) == ["x"]
        assert list(table["c"].signature.parameters) == ["x"]
        assert Statics.s(1) == 1 and Statics.c(2) == 2


class TestMethodInfo:
    def test_fields(self) -> None:
        table = method_table(Example)
        echo = table["echo"]
        assert isinstance(echo, MethodInfo)
        assert echo.handler_class is Example and echo.attribute == "echo"
        assert list(echo.signature.parameters) == ["data"]  # no self
        assert echo.is_async is False
        assert table["later"].is_async is True
        assert list(table["add"].signature.parameters) == ["a", "b"]
        assert list(table["kind"].signature.parameters) == ["label"]

    def test_table_is_cached_per_class_and_prefix(self) -> None:
        assert method_table(Example) is method_table(Example)
        assert method_table(Example, "p") is method_table(Example, "p")
        assert method_table(Example, "p") is not method_table(Example)

    def test_decorated_functions_keep_their_identity_for_python(self) -> None:
        method = Example.hover
        assert method.__name__ == "hover" and method.__qualname__ == "Example.hover"
        assert inspect.signature(method).parameters["position"].annotation == "dict[str, int]"


def info(name: str) -> MethodInfo:
    class Target(Handler):
        def pair(self, a: int, b: int = 0) -> None: ...

        def kwonly(self, a: int, *, flag: bool = False) -> None: ...

        def star(self, *args: Any, **kwargs: Any) -> None: ...

        def posonly(self, a: int, /) -> None: ...

        def none(self) -> None: ...

    return method_table(Target)[name]


class TestBindParams:
    @pytest.mark.parametrize(
        ("name", "params", "expected"),
        [
            ("pair", [1], ([1], {})),
            ("pair", [1, 2], ([1, 2], {})),
            ("pair", {"a": 1}, ([], {"a": 1})),
            ("pair", {"b": 2, "a": 1}, ([], {"b": 2, "a": 1})),
            ("kwonly", {"a": 1, "flag": True}, ([], {"a": 1, "flag": True})),
            ("star", [1, 2, 3], ([1, 2, 3], {})),
            ("star", {"x": 1}, ([], {"x": 1})),
            ("star", None, ([], {})),
            ("posonly", [1], ([1], {})),
            ("none", None, ([], {})),
            ("none", [], ([], {})),
            ("none", {}, ([], {})),
        ],
    )
    def test_binding(self, name: str, params: Any, expected: Any) -> None:
        assert bind_params(info(name), params) == expected

    @pytest.mark.parametrize(
        ("name", "params", "why"),
        [
            ("pair", None, "missing"),
            ("pair", [], "missing"),
            ("pair", [1, 2, 3], "too many"),
            ("pair", {"a": 1, "c": 3}, "unexpected keyword"),
            ("pair", {"b": 1}, "missing"),
            ("kwonly", [1, True], "too many"),
            ("posonly", {"a": 1}, "positional"),
            ("none", [1], "too many"),
            ("none", {"x": 1}, "unexpected keyword"),
            ("pair", {"self": 1, "a": 1}, "unexpected keyword"),  # self is not a parameter
        ],
    )
    def test_params_that_do_not_bind(self, name: str, params: Any, why: str) -> None:
        with pytest.raises(RpcInvalidParamsError) as caught:
            bind_params(info(name), params)
        assert caught.value.code == -32602
        assert isinstance(caught.value.data, str) and why in caught.value.data

    @pytest.mark.parametrize("params", ["text", 5, True, (1, 2)])
    def test_params_of_the_wrong_type(self, params: Any) -> None:
        with pytest.raises(RpcInvalidParamsError) as caught:
            bind_params(info("star"), params)
        assert caught.value.data == "params must be an array or an object"


SIGNATURES = [
    "def f(a, b): pass",
    "def f(a, b=1): pass",
    "def f(*a): pass",
    "def f(a, *, k): pass",
    "def f(a, *, k=2): pass",
    "def f(a, /, b): pass",
    "def f(a=1, /, b=2): pass",
    "def f(**kw): pass",
    "def f(a, **kw): pass",
    "def f(): pass",
    "def f(a, *args, k=1, **kw): pass",
    "def f(a, /, **kw): pass",
]
PARAMS = [
    None,
    [],
    [1],
    [1, 2],
    [1, 2, 3],
    {},
    {"a": 1},
    {"a": 1, "b": 2},
    {"b": 2},
    {"k": 1},
    {"a": 1, "k": 1},
    {"z": 1},
    {"a": 1, "b": 2, "z": 3},
]


@pytest.mark.parametrize("source", SIGNATURES)
def test_fast_binding_agrees_with_signature_bind(source: str) -> None:
    """bind_params checks a precomputed shape instead of calling Signature.bind on every
    call; it must accept and refuse exactly what Signature.bind does."""
    namespace: dict[str, Any] = {}
    exec(source, namespace)
    signature = inspect.signature(namespace["f"])
    info = MethodInfo("f", "f", object, False, False, signature)
    for params in PARAMS:
        args = params if isinstance(params, list) else []
        kwargs = params if isinstance(params, dict) else {}
        try:
            signature.bind(*args, **kwargs)
            expected = True
        except TypeError:
            expected = False
        try:
            bind_params(info, params)
            got = True
        except RpcInvalidParamsError:
            got = False
        assert got == expected, (source, params)


@pytest.mark.parametrize("source", SIGNATURES)
def test_plain_positional_args_is_bind_params_for_the_common_call(source: str) -> None:
    """The runtimes' shortcut: a list that binds positionally and names no callback is
    passed on as it is; everything else is left to bind_params (None)."""
    namespace: dict[str, Any] = {}
    exec(source, namespace)
    info = MethodInfo("f", "f", object, False, False, inspect.signature(namespace["f"]))
    for params in [*PARAMS, [1, 2, 3, 4, 5, 6]]:
        try:
            bound = bind_params(info, params)
        except RpcInvalidParamsError:
            bound = None
        plain = plain_positional_args(info, params)
        if isinstance(params, list) and bound is not None:
            assert plain is params, (source, params)
            assert bound == (params, {})
        else:
            assert plain is None, (source, params)
        if isinstance(params, list) and params:
            # Any member that names an implicit callback sends it the long way.
            named = [*params[:-1], f"{CALLBACK_PREFIX}0"]
            assert plain_positional_args(info, named) is None
            other_text = [*params[:-1], "text"]
            expected = None if plain is None else other_text
            assert plain_positional_args(info, other_text) is expected
