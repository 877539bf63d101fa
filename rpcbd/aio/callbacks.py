"""The asyncio runtime's implicit callbacks as its handlers receive them.

Its own module: a ``str`` subclass cannot be compiled with mypyc, and
``rpcbd.aio.connection`` is compiled in the optional compiled build.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rpcbd.calls import RemoteCallbackBase

if TYPE_CHECKING:
    from rpcbd.aio.connection import AsyncConnection

__all__ = ["AsyncRemoteCallback"]


class AsyncRemoteCallback(RemoteCallbackBase):
    """An implicit callback the peer passed as an argument (``rpc.callback.<uuid>``).

    It is the method name (a ``str``) and is callable: ``callback(*args)`` sends a
    notification at once (a plain call, usable from async handlers and from worker
    threads alike); ``await callback.request(*args)`` calls it and returns its result
    (from a worker thread, ``callback.request(*args)`` blocks instead).
    """

    __slots__ = ()
    _connection: AsyncConnection
