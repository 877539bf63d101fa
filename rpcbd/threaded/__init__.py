"""The threaded runtime: a reader thread per connection, worker pools for handlers."""

from __future__ import annotations

from rpcbd.threaded.connection import AsyncProxy, BatchedCallsProxy, Connection, RemoteCallback
from rpcbd.threaded.peer import (
    ConnectionGroup,
    Dispatcher,
    Listener,
    ThreadedPeer,
    ThreadedTCPJsonRpcPeer,
    pipe_pair,
)

__all__ = [
    "AsyncProxy",
    "BatchedCallsProxy",
    "Connection",
    "ConnectionGroup",
    "Dispatcher",
    "Listener",
    "RemoteCallback",
    "ThreadedPeer",
    "ThreadedTCPJsonRpcPeer",
    "pipe_pair",
]
