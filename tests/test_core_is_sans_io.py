"""rpcbd/core and rpcbd/codecs do no I/O: they import no socket, thread, event loop, clock or
transport library (STYLE.md, practice 1; API.md section 1)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import rpcbd

FORBIDDEN = frozenset(
    {"socket", "ssl", "threading", "asyncio", "select", "selectors", "time", "websockets", "serial"}
)
PACKAGE = Path(rpcbd.__file__).parent
SANS_IO_DIRS = [PACKAGE / "core", PACKAGE / "codecs"]


def forbidden_imports(source: str, filename: str = "<string>") -> list[str]:
    """Every forbidden module ``source`` imports, as ``"line N: module"``.

    Catches ``import x``, ``import x.y as z``, ``from x import y``, ``from x.y import z``,
    imports nested in functions or ``if TYPE_CHECKING`` blocks, and ``__import__("x")`` /
    ``importlib.import_module("x")`` with a literal name.
    """
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                names = [node.module]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if called in ("__import__", "import_module") and isinstance(node.args[0].value, str):
                names = [node.args[0].value]
        for name in names:
            if name.split(".")[0] in FORBIDDEN:
                found.append(f"line {getattr(node, 'lineno', 0)}: {name}")
    return found


def sans_io_files() -> list[Path]:
    files = sorted(path for directory in SANS_IO_DIRS for path in directory.rglob("*.py"))
    assert files, "no source files found: is the package layout different?"
    return files


@pytest.mark.parametrize("path", sans_io_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_does_no_io(path: Path) -> None:
    problems = forbidden_imports(path.read_text(encoding="utf-8"), str(path))
    assert not problems, f"{path.relative_to(PACKAGE)} imports I/O modules: {problems}"


def test_both_packages_are_checked() -> None:
    names = {path.relative_to(PACKAGE).as_posix() for path in sans_io_files()}
    assert {
        "core/endpoint.py",
        "core/state.py",
        "codecs/jsonrpc2.py",
        "codecs/serializer.py",
    } <= names


@pytest.mark.parametrize(
    "source",
    [
        "import socket",
        "import os, threading",
        "import asyncio.events as ev",
        "from time import monotonic",
        "from select import select",
        "from selectors import DefaultSelector",
        "import ssl as _ssl",
        "from websockets.sync import client",
        "import serial.tools",
        "def later():\n    import time\n    return time.time()",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import socket",
        "try:\n    import serial\nexcept ImportError:\n    serial = None",
        "mod = __import__('socket')",
        "import importlib\nmod = importlib.import_module('threading')",
    ],
)
def test_checker_catches_violations(source: str) -> None:
    assert forbidden_imports(source)


@pytest.mark.parametrize(
    "source",
    [
        "import json, re, enum",
        "from rpcbd.exceptions import RpcError",
        "from . import socket_helpers",  # relative: a module of ours, not the stdlib
        "import timeit",  # a name that merely starts like one
        "import sockets_are_not_socket",
        "x = 'import socket'",
    ],
)
def test_checker_allows_harmless_imports(source: str) -> None:
    assert forbidden_imports(source) == []
