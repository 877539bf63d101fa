"""Shared fixtures: every test checks it leaves no rpcbd thread behind."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest


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
