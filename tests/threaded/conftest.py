"""Fixtures: a served peer and a client peer over real TCP, shut down after each test."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from rpcbd import Connection, ThreadedPeer

from .helpers import ClientSide, Service


@pytest.fixture
def server() -> Iterator[ThreadedPeer]:
    Service.release = threading.Event()
    peer = ThreadedPeer(default_handler=Service)
    try:
        yield peer
    finally:
        Service.release.set()
        peer.shutdown()


@pytest.fixture
def client_peer() -> Iterator[ThreadedPeer]:
    peer = ThreadedPeer(default_handler=ClientSide)
    try:
        yield peer
    finally:
        peer.shutdown()


@pytest.fixture
def connection(server: ThreadedPeer, client_peer: ThreadedPeer) -> Connection:
    listener = server.listen("tcp://127.0.0.1:0")
    return client_peer.connect(listener.url)
