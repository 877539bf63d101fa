"""The threaded runtime's implicit callbacks as its handlers receive them.

Its own module: a ``str`` subclass cannot be compiled with mypyc, and
``rpcbd.threaded.connection`` is compiled in the optional compiled build.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rpcbd.threaded.connection import Connection

__all__ = ["RemoteCallback"]


class RemoteCallback(str):
    """An implicit callback the peer passed as an argument (``rpc.callback.<uuid>``).

    It is the method name (a ``str``), so code that treats it as one keeps working, and it
    is callable: ``callback(*args)`` sends a notification; ``callback.request(*args)``
    makes a blocking call and returns its result.
    """

    __slots__ = ("_connection",)
    _connection: Connection

    def __new__(cls, name: str, connection: Connection) -> RemoteCallback:
        self = super().__new__(cls, name)
        self._connection = connection
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self._connection.notification(str(self))(*args, **kwargs)

    def request(self, *args: Any, **kwargs: Any) -> Any:
        """Call the callback and wait for what it returns."""
        return self._connection.request(str(self))(*args, **kwargs)
