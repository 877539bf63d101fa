"""The optional compiled build: which modules it compiles, and the stand-ins that keep the
same sources working when nothing is compiled.

CI builds the compiled wheel and runs the core, codec and runtime suites against it
(``RPCBD_TEST_COMPILED``, see tests/conftest.py and .ci/run).
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

import pytest

import rpcbd._compiled
from rpcbd._compiled import COMPILED_MODULES, build_description, compiled_modules

ROOT = Path(__file__).resolve().parent.parent


def test_every_core_and_codec_module_is_compiled() -> None:
    # A module added to rpcbd/core or rpcbd/codecs is compiled too, or this test says so.
    expected = sorted(
        [
            ".".join(path.relative_to(ROOT).with_suffix("").parts)
            for package in ("core", "codecs")
            for path in (ROOT / "rpcbd" / package).glob("*.py")
            if path.name != "__init__.py"
        ]
        + ["rpcbd.context", "rpcbd.proxy", "rpcbd.threaded.connection", "rpcbd.aio.connection"]
    )
    assert sorted(COMPILED_MODULES) == expected


def _hatch_build() -> Any:
    """The build hook module (hatch_build.py at the root of the checkout)."""
    pytest.importorskip("hatchling", reason="hatch_build.py needs hatchling (the test extra)")
    sys.path.insert(0, str(ROOT))
    try:
        return importlib.import_module("hatch_build")
    finally:
        sys.path.remove(str(ROOT))


def test_the_build_hook_compiles_exactly_those_modules() -> None:
    hatch_build = _hatch_build()
    paths = hatch_build.compiled_module_paths(ROOT)
    assert paths == [name.replace(".", "/") + ".py" for name in COMPILED_MODULES]
    assert all((ROOT / path).is_file() for path in paths)


@pytest.mark.parametrize(
    ("value", "requested"),
    [("1", True), ("yes", True), ("TRUE", True), ("0", False), ("", False), ("no", False)],
)
def test_the_build_hook_compiles_only_when_asked(
    monkeypatch: pytest.MonkeyPatch, value: str, requested: bool
) -> None:
    hatch_build = _hatch_build()
    monkeypatch.setenv("RPCBD_COMPILE", value)
    assert hatch_build.compile_requested() is requested


def test_compiled_modules_tells_extension_modules_from_sources() -> None:
    compiled = compiled_modules()
    for name in COMPILED_MODULES:
        path = sys.modules[name].__file__ or ""
        assert (name in compiled) is (not path.endswith(".py"))
    if os.environ.get("RPCBD_TEST_COMPILED"):
        assert compiled == list(COMPILED_MODULES)
        assert "compiled with mypyc" in build_description()
    elif all(sys.modules[name].__file__.endswith(".py") for name in COMPILED_MODULES):  # type: ignore[union-attr]
        assert compiled == []
        assert build_description().startswith("pure Python")


def test_mypyc_attr_without_mypy_extensions_leaves_the_class_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "mypy_extensions", None)  # makes the import fail
    try:
        fallback = importlib.reload(rpcbd._compiled)

        class Sample:
            pass

        assert fallback.mypyc_attr(allow_interpreted_subclasses=True)(Sample) is Sample
        assert fallback.mypyc_attr.__module__ == "rpcbd._compiled"
    finally:
        monkeypatch.undo()
        importlib.reload(rpcbd._compiled)


def test_users_can_subclass_framings_dialects_and_serializers() -> None:
    # Compiled, a class allows subclasses written in Python only when marked
    # (mypyc_attr(allow_interpreted_subclasses=True)); class attributes are ClassVars so a
    # subclass's own value is the one seen.
    from rpcbd.codecs.jsonrpc2 import JSONRPC_V2, JsonRpc2
    from rpcbd.codecs.newline import NewlineFraming
    from rpcbd.codecs.serializer import StdlibSerializer

    class Shout(NewlineFraming):
        name = "shout"

        def frame(self, payload: bytes) -> bytes:
            return super().frame(payload.upper())

    class Quiet(JsonRpc2):
        cancel_method = None

    class Named(StdlibSerializer):
        name = "named"

    assert Shout().name == "shout"
    assert Shout().frame(b'{"a":1}') == b'{"A":1}\n'
    assert Quiet().cancel_method is None
    assert JSONRPC_V2.cancel_method == "$/cancelRequest"
    assert Named().name == "named"
    assert Named().loads(b"[1]") == [1]


def test_a_threaded_connection_stays_a_regular_python_object() -> None:
    # Compiled, Connection is a non-native class (mypyc_attr(native_class=False)):
    # weak references and attributes set by users keep working.
    import weakref

    from rpcbd import pipe_pair
    from tests.threaded.helpers import Service

    client, server = pipe_pair(None, Service)
    try:
        ref = weakref.ref(client)
        client.note = "mine"  # type: ignore[attr-defined]
        assert ref() is client
        assert client.note == "mine"  # type: ignore[attr-defined]
        assert client.request.add(2, 3) == 5
    finally:
        client.close()
        server.close()


def test_an_asyncio_connection_stays_a_regular_python_object() -> None:
    import asyncio
    import weakref

    from rpcbd import Handler
    from rpcbd.aio import AsyncPeer

    class Adder(Handler):
        assume_methods_block = False

        def add(self, a: int, b: int) -> int:
            return a + b

    async def main() -> None:
        peer = AsyncPeer(default_handler=Adder)
        try:
            client, _ = peer.pipe_pair()
            ref = weakref.ref(client)
            client.note = "mine"  # type: ignore[attr-defined]
            assert ref() is client
            assert client.note == "mine"  # type: ignore[attr-defined]
            assert await client.request.add(2, 3) == 5
        finally:
            await peer.shutdown()

    asyncio.run(main())
