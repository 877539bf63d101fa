"""The asyncio runtime's implicit callbacks as its handlers receive them.

Its own module: a ``str`` subclass cannot be compiled with mypyc, and
``rpcbd.aio.connection`` is compiled in the optional compiled build.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rpcbd.aio.connection import AsyncConnection

__all__ = ["AsyncRemoteCallback"]


class AsyncRemoteCallback(str):
    """An implicit callback the peer passed as an argument (``rpc.callback.<uuid>``).

    It is the method name (a ``str``) and is callable: ``callback(*args)`` sends a
    notification at once (a plain call, usable from async handlers and from worker
    threads alike); ``await callback.request(*args)`` calls it and returns its result
    (from a worker thread, ``callback.request(*args)`` blocks instead).
    """

    __slots__ = ("_connection",)
    _connection: AsyncConnection

    def __new__(cls, name: str, connection: AsyncConnection) -> AsyncRemoteCallback:
        self = super().__new__(cls, name)
        self._connection = connection
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self._connection.notification(str(self))(*args, **kwargs)

    def request(self, *args: Any, **kwargs: Any) -> Any:
        """Call the callback: on the loop, a coroutine to await for what it returns; from
        another thread (a plain ``@mayblock`` handler), block for it."""
        return self._connection.request(str(self))(*args, **kwargs)
