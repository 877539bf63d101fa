"""The asyncio runtime: ``rpcbd.aio.AsyncPeer`` drives the same sans-IO
:class:`~rpcbd.core.Endpoint` as the threaded runtime, with tasks instead of threads.

::

    async with AsyncPeer(default_handler=Example) as peer:
        listener = await peer.listen("tcp://127.0.0.1:0")
        async with await peer.connect(listener.url) as conn:
            print(await conn.request.echo("hi"))
"""

from __future__ import annotations

from rpcbd.aio.connection import (
    AsyncBatchedCallsProxy,
    AsyncConnection,
    AsyncProxy,
    AsyncRemoteCallback,
)
from rpcbd.aio.peer import AsyncListener, AsyncPeer, pipe_pair
from rpcbd.aio.transports import AsyncListenerBackend, AsyncTransport

__all__ = [
    "AsyncBatchedCallsProxy",
    "AsyncConnection",
    "AsyncListener",
    "AsyncListenerBackend",
    "AsyncPeer",
    "AsyncProxy",
    "AsyncRemoteCallback",
    "AsyncTransport",
    "pipe_pair",
]
