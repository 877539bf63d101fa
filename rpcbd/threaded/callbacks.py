"""The threaded runtime's implicit callbacks as its handlers receive them.

Its own module: a ``str`` subclass cannot be compiled with mypyc, and
``rpcbd.threaded.connection`` is compiled in the optional compiled build.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rpcbd.calls import RemoteCallbackBase

if TYPE_CHECKING:
    from rpcbd.threaded.connection import Connection

__all__ = ["RemoteCallback"]


class RemoteCallback(RemoteCallbackBase):
    """An implicit callback the peer passed as an argument (``rpc.callback.<uuid>``).

    It is the method name (a ``str``), so code that treats it as one keeps working, and it
    is callable: ``callback(*args)`` sends a notification; ``callback.request(*args)``
    makes a blocking call and returns its result.
    """

    __slots__ = ()
    _connection: Connection
