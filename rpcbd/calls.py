"""What both runtimes' connections share: no I/O, no threads, no event loop.

Timeouts in rpcbd 0.6 style, implicit callbacks (callables sent as ``rpc.callback.<uuid4>``
names), the callback jobs handed to a waiting caller, and the batch builder. The threaded
and asyncio connections inherit from :class:`ConnectionBase`, so the rules live in one
place.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from rpcbd.core.endpoint import Endpoint
from rpcbd.core.events import NotificationReceived, RequestReceived
from rpcbd.core.state import State
from rpcbd.dispatch import CALLBACK_PREFIX
from rpcbd.exceptions import TransportError
from rpcbd.proxy import MethodProxy, make_params
from rpcbd.typing import Params

__all__ = [
    "CLOSE_FLUSH_TIMEOUT",
    "EVENT_BATCH",
    "HIGH_WATER",
    "USE_DEFAULT",
    "BatchBuilder",
    "CallbackJob",
    "ConnectionBase",
    "RemoteCallbackBase",
    "feed_read",
    "fresh_error",
    "holds_callable",
    "is_callback",
]

wire_log = logging.getLogger("rpcbd.wire")

#: A caller queuing output waits while more than this many bytes are unsent.
HIGH_WATER = 4 * 1024 * 1024

#: Seconds close() lets its own final write of queued output take.
CLOSE_FLUSH_TIMEOUT = 2.0

#: Events taken from the endpoint and dispatched at a time (see
#: :meth:`~rpcbd.core.Endpoint.events_received`): one read can hold thousands of small
#: messages, and parsed all at once their objects would outnumber the frees by enough to
#: wake CPython's cyclic garbage collector many times per read (8 % of a notification
#: flood's CPU on an asyncio server).
EVENT_BATCH = 64

#: The 0.6 timeout value meaning "the connection's (or else the peer's) default".
USE_DEFAULT = -1


def is_callback(value: Any) -> bool:
    """Whether an argument is a Python callable to send as an implicit callback."""
    return callable(value) and not isinstance(value, (str, type))


def fresh_error(error: TransportError) -> TransportError:
    """A copy of ``error`` for one waiter: one exception instance must not be raised in
    several threads or tasks at once (tracebacks are per raise)."""
    fresh = type(error)(*error.args)
    fresh.__cause__ = error.__cause__
    return fresh


class CallbackJob:
    """A callback invocation handed to the thread or task that waits for the call."""

    __slots__ = ("event", "function")

    def __init__(
        self, event: RequestReceived | NotificationReceived, function: Callable[..., Any]
    ) -> None:
        self.event = event
        self.function = function


_Callback = TypeVar("_Callback", bound="RemoteCallbackBase")


class RemoteCallbackBase(str):
    """An implicit callback the peer passed as an argument (``rpc.callback.<uuid>``), bound
    to the connection it came on; each runtime names its own subclass.

    It is the method name (a ``str``), so code that treats it as one keeps working, and it
    is callable: ``callback(*args)`` sends a notification; ``callback.request(*args)``
    calls it (what that returns depends on the runtime).
    """

    __slots__ = ("_connection",)
    _connection: Any  # the runtime's connection

    def __new__(cls: type[_Callback], name: str, connection: Any) -> _Callback:
        self = super().__new__(cls, name)
        self._connection = connection
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self._connection.notification(str(self))(*args, **kwargs)

    def request(self, *args: Any, **kwargs: Any) -> Any:
        """Call the callback: a blocking call in the threaded runtime, a coroutine to await
        on the event loop in the asyncio one."""
        return self._connection.request(str(self))(*args, **kwargs)


def feed_read(endpoint: Endpoint, data: bytes | str | None, message_based: bool) -> None:
    """Give ``endpoint`` what one read of the transport returned: None is the end of the
    stream; a message transport's data is one whole message, a stream's is bytes."""
    if data is None:
        endpoint.receive_eof()
    elif message_based:
        endpoint.receive_message(data)
    else:
        assert isinstance(data, bytes)
        endpoint.receive_data(data)


def holds_callable(params: Params) -> bool:
    """Whether ``params`` (a list, or a dict's values) has a callable: only then can it
    hold an implicit callback to export. Anything else is sent as it is."""
    # `any(map(callable, ...))` runs in C: most calls have no callable argument at all.
    if type(params) is list:
        return any(map(callable, params))
    if type(params) is dict:
        return any(map(callable, params.values()))
    return False


class _HasCallbacks(Protocol):
    # A call starts with the empty tuple (shared: no object made per call); the first
    # callback exported makes it a list.
    callbacks: list[str] | tuple[()]


class _Peer(Protocol):
    default_timeout: float | None


class ConnectionBase:
    """The I/O-free half of a connection, shared by both runtimes."""

    default_timeout: float | None
    _peer: _Peer
    _endpoint: Endpoint
    _callbacks: dict[str, tuple[Any, Callable[..., Any]]]

    @property
    def closed(self) -> bool:
        """True as soon as either side has closed the connection."""
        return self._endpoint.state is not State.OPEN

    def _trace(self, direction: str, payload: bytes) -> None:
        wire_log.debug("%s %s", direction, payload.decode("utf-8", "replace"))

    def _resolve_timeout(self, timeout: Any) -> float | None:
        """0.6 timeouts: -1 is the connection's (else the peer's) default, None waits
        forever, a number is seconds."""
        if timeout == USE_DEFAULT and not isinstance(timeout, bool):
            timeout = self.default_timeout
            if timeout == USE_DEFAULT:
                timeout = self._peer.default_timeout
        if timeout is not None and timeout < 0:
            raise ValueError("timeout must be None, -1 (the default) or >= 0 seconds")
        return timeout  # type: ignore[no-any-return]

    def _export_callbacks(self, params: Params, waiter: _HasCallbacks) -> Params:
        """Replace callables in ``params`` by ``rpc.callback.<uuid4>`` names."""
        if not holds_callable(params):
            return params
        if type(params) is list:
            return [self._export_one(value, waiter) for value in params]
        assert type(params) is dict
        return {key: self._export_one(value, waiter) for key, value in params.items()}

    def _export_one(self, value: Any, waiter: _HasCallbacks) -> Any:
        if not is_callback(value):
            return value
        name = f"{CALLBACK_PREFIX}{uuid.uuid4()}"
        if isinstance(waiter.callbacks, list):
            waiter.callbacks.append(name)
        else:
            waiter.callbacks = [name]
        self._callbacks[name] = (waiter, value)
        return name

    def _drop_callbacks(self, waiter: _HasCallbacks) -> None:
        for name in waiter.callbacks:
            self._callbacks.pop(name, None)


class BatchBuilder:
    """Queues requests and notifications for one JSON-RPC batch.

    ``b.request.m(...)`` returns the index of its result in the tuple ``send()`` gives;
    ``b.notification.m(...)`` queues a notification; ``b.reset()`` empties the batch.
    """

    def __init__(self) -> None:
        self._entries: list[tuple[str, Params, bool]] = []
        self._requests = 0
        self.request = MethodProxy(self._add_request)
        self.notification = MethodProxy(self._add_notification)
        self.notify = self.notification

    def _add_request(
        self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]
    ) -> int:
        self._entries.append((method, make_params(args, kwargs), True))
        self._requests += 1
        return self._requests - 1

    def _add_notification(
        self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any]
    ) -> None:
        self._entries.append((method, make_params(args, kwargs), False))

    def __len__(self) -> int:
        return len(self._entries)

    def reset(self) -> None:
        """Forget the queued calls, to build another batch."""
        self._entries = []
        self._requests = 0
