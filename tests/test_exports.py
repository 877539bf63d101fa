"""The public surface: rpcbd's re-exports and every module's ``__all__`` (STYLE.md, practice 11;
API.md section 2)."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import pytest

import rpcbd

#: API.md section 2: the names of the seed docs plus the names added since.
SEED_NAMES = [
    "Handler",
    "ThreadedTCPJsonRpcPeer",
    "JSONRPC_V1",
    "JSONRPC_V2",
    "exposed",
    "hidden",
    "mayblock",
    "willnotblock",
    "RpcError",
    "RpcParseError",
    "RpcInvalidError",
    "RpcMethodNotFoundError",
    "RpcInvalidParamsError",
    "RpcInternalError",
    "RpcServerError",
    "TransportError",
    "__version__",
]
ADDED_NAMES = ["RpcCancelledError", "RpcTimeoutError", "current_call"]


def all_module_names() -> list[str]:
    names = ["rpcbd"]
    for info in pkgutil.walk_packages(rpcbd.__path__, "rpcbd."):
        if info.name.split(".")[-1] == "__main__":
            continue  # importing it would run the command line
        names.append(info.name)
    return sorted(names)


def import_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        # Only an optional third-party dependency may be missing; a broken rpcbd import fails.
        if exc.name is None or exc.name.split(".")[0] == "rpcbd":
            raise
        pytest.skip(f"{name} needs {exc.name}, which is not installed")


@pytest.mark.parametrize("name", SEED_NAMES + ADDED_NAMES)
def test_api_md_names_are_exported(name: str) -> None:
    assert name in rpcbd.__all__
    assert hasattr(rpcbd, name)


def test_every_name_in_rpcbd_all_exists() -> None:
    missing = [name for name in rpcbd.__all__ if not hasattr(rpcbd, name)]
    assert not missing
    assert len(rpcbd.__all__) == len(set(rpcbd.__all__)), "duplicates in rpcbd.__all__"


@pytest.mark.parametrize("name", all_module_names())
def test_module_all_names_exist(name: str) -> None:
    module = import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert all(isinstance(item, str) for item in exported)
    assert len(exported) == len(set(exported)), f"duplicates in {name}.__all__"
    missing = [item for item in exported if not hasattr(module, item)]
    assert not missing, f"{name}.__all__ names missing attributes: {missing}"


def test_modules_are_found() -> None:
    names = all_module_names()
    for expected in (
        "rpcbd.core.endpoint",
        "rpcbd.codecs.serializer",
        "rpcbd.dispatch",
        "rpcbd.exceptions",
    ):
        assert expected in names


def test_top_level_names_are_the_same_objects_as_in_their_modules() -> None:
    from rpcbd import core, dispatch, exceptions
    from rpcbd.codecs import jsonrpc1, jsonrpc2

    for module in (core, dispatch, exceptions, jsonrpc1, jsonrpc2):
        for item in module.__all__:
            if item in rpcbd.__all__:
                assert getattr(rpcbd, item) is getattr(module, item), item


def test_added_error_classes() -> None:
    assert rpcbd.RpcCancelledError.code == -32800
    assert issubclass(rpcbd.RpcCancelledError, rpcbd.RpcError)
    assert issubclass(rpcbd.RpcTimeoutError, rpcbd.TransportError)
    assert issubclass(rpcbd.RpcTimeoutError, TimeoutError)
    assert issubclass(rpcbd.TransportError, ConnectionError)
    assert callable(rpcbd.current_call)


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        ("RpcParseError", -32700),
        ("RpcInvalidError", -32600),
        ("RpcMethodNotFoundError", -32601),
        ("RpcInvalidParamsError", -32602),
        ("RpcInternalError", -32603),
        ("RpcServerError", -32000),
    ],
)
def test_seed_error_codes(cls: str, code: int) -> None:
    error_class = getattr(rpcbd, cls)
    assert error_class.code == code
    assert error_class().code == code
    assert issubclass(error_class, rpcbd.RpcError)


def test_version_is_a_string() -> None:
    assert isinstance(rpcbd.__version__, str) and rpcbd.__version__[0].isdigit()
