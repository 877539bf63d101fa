"""MethodProxy: names from attribute access, per-call options, cached child proxies."""

from __future__ import annotations

from typing import Any

import pytest

from rpcbd.proxy import _MAX_CACHED_CHILDREN, MethodProxy, make_params


def recorder() -> tuple[MethodProxy, list[tuple[str, Any, Any, Any]]]:
    calls: list[tuple[str, Any, Any, Any]] = []

    def invoke(method: str, args: Any, kwargs: Any, options: Any) -> str:
        calls.append((method, args, kwargs, options))
        return method

    return MethodProxy(invoke), calls


def test_dotted_names_and_arguments() -> None:
    proxy, calls = recorder()
    assert proxy.a.b.echo(1, 2) == "a.b.echo"
    assert proxy("x/y", timeout=3)(k=1) == "x/y"
    assert calls == [("a.b.echo", (1, 2), {}, {}), ("x/y", (), {"k": 1}, {"timeout": 3})]


def test_child_proxies_are_built_once() -> None:
    proxy, calls = recorder()
    assert proxy.echo is proxy.echo
    assert proxy.a.b is proxy.a.b
    proxy.echo(1)
    proxy.echo(2)
    assert [call[:2] for call in calls] == [("echo", (1,)), ("echo", (2,))]
    # Kept where ordinary attribute lookup finds it: no __getattr__ call the next time.
    assert vars(proxy)["echo"] is proxy.echo


def test_internal_attribute_names_are_not_method_names_but_others_are() -> None:
    proxy, calls = recorder()
    # As before the cache: a name the proxy itself has is its own attribute; every other
    # name (a leading underscore or not) is a method.
    assert proxy._name == ""
    assert proxy._private_method() == "_private_method"
    assert proxy.result() == "result"
    assert [call[0] for call in calls] == ["_private_method", "result"]


def test_option_proxies_keep_their_options_on_cached_children() -> None:
    proxy, calls = recorder()
    timed = proxy("ns", timeout=5)
    timed.m(1)
    timed.m(2)
    assert [call[0] for call in calls] == ["ns.m", "ns.m"]
    assert all(call[3] == {"timeout": 5} for call in calls)
    assert proxy.ns.m is not timed.m  # different options, different proxies


def test_cache_is_bounded_for_generated_names() -> None:
    proxy, calls = recorder()
    for i in range(_MAX_CACHED_CHILDREN + 50):
        getattr(proxy, f"m{i}")()
    assert len(calls) == _MAX_CACHED_CHILDREN + 50
    assert calls[-1][0] == f"m{_MAX_CACHED_CHILDREN + 49}"
    assert len(vars(proxy)) == _MAX_CACHED_CHILDREN


def test_dunder_probes_are_refused() -> None:
    proxy, _ = recorder()
    with pytest.raises(AttributeError):
        proxy.__deepcopy__  # noqa: B018
    assert "__deepcopy__" not in vars(proxy)


def test_make_params() -> None:
    assert make_params((), {}) is None
    assert make_params((1, 2), {}) == [1, 2]
    assert make_params((), {"a": 1}) == {"a": 1}
    with pytest.raises(ValueError, match="do not mix"):
        make_params((1,), {"a": 1})
