"""``current_call()``: what a running handler knows about the call it serves."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

from rpcbd.exceptions import RpcCancelledError
from rpcbd.typing import RequestId

__all__ = ["CallContext", "current_call"]


class CallContext:
    """The call a handler is serving.

    Attributes:
        id: the request id (None for a notification).
        method: the method name as sent.
        connection: the connection the call came in on.
    """

    __slots__ = ("_cancelled", "_event", "_event_factory", "connection", "id", "method")

    def __init__(
        self,
        id: RequestId,
        method: str,
        connection: Any,
        event_factory: Callable[[], Any],
    ) -> None:
        self.id = id
        self.method = method
        self.connection = connection
        self._cancelled = False
        self._event: Any = None
        self._event_factory = event_factory

    @property
    def cancelled(self) -> bool:
        """True once the peer sent ``$/cancelRequest`` for this call (or the connection
        closed, so nobody waits for the result any more)."""
        return self._cancelled

    @property
    def cancel_event(self) -> Any:
        """An event set on cancellation: a ``threading.Event`` in threads, an
        ``asyncio.Event`` in asyncio. Wait on it instead of polling ``cancelled``."""
        if self._event is None:
            self._event = self._event_factory()
            if self._cancelled:
                self._event.set()
        return self._event

    def raise_if_cancelled(self) -> None:
        """Raise :class:`~rpcbd.RpcCancelledError` (replied as -32800) if cancelled."""
        if self._cancelled:
            raise RpcCancelledError()

    def cancel(self) -> None:
        """Mark the call cancelled (the runtime calls this on ``$/cancelRequest``)."""
        self._cancelled = True
        if self._event is not None:
            self._event.set()

    def __repr__(self) -> str:
        state = " cancelled" if self._cancelled else ""
        return f"<CallContext {self.method} id={self.id!r}{state}>"


#: The arguments of a :class:`CallContext` not made yet (see :func:`_set_current`).
LazyCallContext = tuple[RequestId, str, Any, Callable[[], Any]]

_current: contextvars.ContextVar[CallContext | LazyCallContext | None] = contextvars.ContextVar(
    "rpcbd_current_call", default=None
)


def current_call() -> CallContext | None:
    """The call being served by the running handler, or None outside a handler.

    The same object every time within one handler. (An asyncio task that an inline or
    notification handler started copies the handler's context: if the handler had not
    asked yet, the task makes an equal ``CallContext`` of its own. Such calls are never
    cancelled, so the two cannot differ.)
    """
    current = _current.get()
    if isinstance(current, tuple):
        # A call that can never be cancelled, set up without its context object (most
        # handlers never ask for it): made now, and kept for the rest of the handler, so
        # every call here gives the same object. The runtime's reset() after the handler
        # restores the value from before the handler all the same.
        current = CallContext(*current)
        _current.set(current)
    return current


# The ContextVar's own bound methods (no Python frame per call: runtimes set and reset
# the current call around every handler). A runtime may set a LazyCallContext instead of a
# CallContext for a call that can never be cancelled (a notification; an inline asyncio
# handler, which no $/cancelRequest can reach while it runs): a tuple costs a fifth of
# the object, on every call, and current_call() makes the object when it is asked.
_set_current = _current.set
_reset_current = _current.reset
