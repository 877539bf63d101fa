"""Fixtures shared by the per-transport tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rpcbd import ThreadedPeer

from .conformance import Echo


@pytest.fixture
def peer() -> Iterator[ThreadedPeer]:
    """A threaded peer serving :class:`Echo`, shut down after the test."""
    peer = ThreadedPeer(default_handler=Echo)
    try:
        yield peer
    finally:
        peer.shutdown()
