"""Shared fixtures: every test checks it leaves no rpcbd thread behind."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator

import pytest

# RPCBD_TEST_COMPILED=DIR runs the suite against the compiled build installed in DIR
# (``pip install --no-deps --target DIR`` of a wheel built with mypyc; see
# docs/performance.md). Before anything imports rpcbd; child processes inherit it.
_COMPILED_DIR = os.environ.get("RPCBD_TEST_COMPILED")
if _COMPILED_DIR:
    sys.path.insert(0, _COMPILED_DIR)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        part for part in (_COMPILED_DIR, os.environ.get("PYTHONPATH")) if part
    )
    # Import it now: collecting the tests puts the checkout first on sys.path.
    from rpcbd._compiled import COMPILED_MODULES, compiled_modules

    _missing = sorted(set(COMPILED_MODULES) - set(compiled_modules()))
    if _missing:
        raise pytest.UsageError(f"RPCBD_TEST_COMPILED is set but not compiled: {_missing}")


def pytest_report_header() -> str:
    from rpcbd._compiled import build_description

    return f"rpcbd: {build_description()}"


def _rpcbd_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("rpcbd-") and t.is_alive()}


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    before = _rpcbd_threads()
    yield
    # Threads finish shortly after shutdown() returns only when a test did not shut
    # down; give them a bounded moment, then fail with their names.
    deadline = time.monotonic() + 5.0
    leaked = _rpcbd_threads() - before
    while leaked and time.monotonic() < deadline:
        for thread in leaked:
            thread.join(max(0.0, deadline - time.monotonic()))
        leaked = _rpcbd_threads() - before
    assert not leaked, f"threads left running: {sorted(t.name for t in leaked)}"
