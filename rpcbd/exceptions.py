"""Every exception rpcbd raises, in one hierarchy.

The hierarchy says whose fault an error is::

    RPCBDError                      root of everything rpcbd raises
    ├── ProtocolError               somebody broke the JSON-RPC or framing rules
    │   ├── LocalProtocolError      this program misused the API (also a RuntimeError)
    │   └── RemoteProtocolError     the peer sent something invalid
    │       └── FramingError        a frame could not be read (``recoverable`` says if the
    │           │                   stream can resynchronise after it)
    │           └── MessageTooLargeError   a frame is over ``max_message_size``
    ├── RpcError                    a JSON-RPC error object (``code``, ``message``, ``data``)
    │   ├── RpcParseError           -32700
    │   ├── RpcInvalidError         -32600
    │   ├── RpcMethodNotFoundError  -32601
    │   ├── RpcInvalidParamsError   -32602
    │   ├── RpcInternalError        -32603
    │   ├── RpcServerError          -32000 .. -32099 (implementation defined)
    │   │   └── RpcServerBusyError  -32000, the peer's incoming queue is full
    │   └── RpcCancelledError       -32800 (LSP RequestCancelled)
    └── TransportError              the connection failed or was closed (also a ConnectionError)
        ├── ConnectionClosedError   the connection is closed; calls in flight fail with this
        └── RpcTimeoutError         a call waited longer than its timeout (also a TimeoutError)

``RpcError`` subclasses carry their code as a class attribute, so ``except
RpcMethodNotFoundError`` works on errors that came over the wire: :func:`error_from_code`
maps a received code back to its class.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "ConnectionClosedError",
    "FramingError",
    "LocalProtocolError",
    "MessageTooLargeError",
    "ProtocolError",
    "RPCBDError",
    "RemoteProtocolError",
    "RpcCancelledError",
    "RpcError",
    "RpcInternalError",
    "RpcInvalidError",
    "RpcInvalidParamsError",
    "RpcMethodNotFoundError",
    "RpcParseError",
    "RpcServerBusyError",
    "RpcServerError",
    "RpcTimeoutError",
    "TransportError",
    "error_from_code",
]


class RPCBDError(Exception):
    """Root of every exception raised by rpcbd."""


class ProtocolError(RPCBDError):
    """The JSON-RPC or framing rules were broken, by this side or by the peer."""


class LocalProtocolError(ProtocolError, RuntimeError):
    """This program used the API in a way the protocol does not allow.

    Raised by ``send_*`` methods and by the runtimes, for example when sending on a closed
    connection or sending a batch with JSON-RPC 1.0.
    """


class RemoteProtocolError(ProtocolError):
    """The peer sent something that breaks the protocol."""


class FramingError(RemoteProtocolError):
    """A frame of the byte stream could not be read.

    Attributes:
        reason: a short human-readable explanation.
        recoverable: True when the framing found the end of the bad frame and the stream
            continues with the next one (for example a newline-framed line that is too long);
            False when the stream cannot be resynchronised and the connection must close
            (for example a Content-Length header that is not a number).
    """

    def __init__(self, reason: str, *, recoverable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.recoverable = recoverable


class MessageTooLargeError(FramingError):
    """A frame is larger than ``max_message_size``.

    The framing never buffers past the limit: it either skips the body (``recoverable``) or
    gives up on the stream.

    Attributes:
        limit: the configured ``max_message_size`` in bytes.
    """

    def __init__(self, limit: int, *, recoverable: bool) -> None:
        super().__init__(f"message too large (limit {limit} bytes)", recoverable=recoverable)
        self.limit = limit


class RpcError(RPCBDError):
    """A JSON-RPC error: raised by handlers to reply with an error, raised to callers when
    the peer replied with one.

    ``RpcError(code, message, data=None)`` makes an error with any code. The subclasses fix
    the code as a class attribute and take ``(message=None, data=None)``.

    Attributes:
        code: the integer error code.
        message: a short description (the spec asks for one sentence).
        data: optional extra JSON value; ``None`` means "no data member".
    """

    code: int = -32603
    default_message: ClassVar[str] = "Error"

    def __init__(self, *args: Any, data: Any = None) -> None:
        code, message, data = self._parse_args(args, data)
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.data = data

    def _parse_args(self, args: tuple[Any, ...], data: Any) -> tuple[int, str, Any]:
        # Base class: RpcError(code, message, data=None). Positional data is accepted too.
        if type(self) is RpcError or (args and isinstance(args[0], int)):
            if not args or not isinstance(args[0], int) or isinstance(args[0], bool):
                raise TypeError("RpcError(code, message, data=None) needs an integer code")
            if len(args) > 3:
                raise TypeError("RpcError takes at most (code, message, data)")
            message = str(args[1]) if len(args) > 1 else type(self).default_message
            if len(args) > 2:
                data = args[2]
            return args[0], message, data
        if len(args) > 2:
            raise TypeError(f"{type(self).__name__} takes at most (message, data)")
        message = str(args[0]) if args and args[0] is not None else type(self).default_message
        if len(args) > 1:
            data = args[1]
        return type(self).code, message, data

    def __str__(self) -> str:
        text = f"{self.message} (code {self.code})"
        if self.data is not None:
            text += f": {self.data!r}"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code}, message={self.message!r}, data={self.data!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RpcError):
            return NotImplemented
        return (self.code, self.message, self.data) == (other.code, other.message, other.data)

    def __hash__(self) -> int:
        return hash((self.code, self.message))

    def to_dict(self) -> dict[str, Any]:
        """The JSON-RPC error object: ``{"code", "message"}`` plus ``"data"`` when set."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


class RpcParseError(RpcError):
    """-32700: the peer sent text that is not JSON."""

    code = -32700
    default_message = "Parse error"


class RpcInvalidError(RpcError):
    """-32600: the JSON sent is not a valid request object."""

    code = -32600
    default_message = "Invalid Request"


class RpcMethodNotFoundError(RpcError):
    """-32601: the method does not exist or is not exposed."""

    code = -32601
    default_message = "Method not found"


class RpcInvalidParamsError(RpcError):
    """-32602: the arguments do not bind to the method's signature."""

    code = -32602
    default_message = "Invalid params"


class RpcInternalError(RpcError):
    """-32603: the handler failed; details are logged locally, never sent."""

    code = -32603
    default_message = "Internal error"


class RpcServerError(RpcError):
    """-32000 .. -32099: implementation-defined server errors.

    ``RpcServerError(message=None, data=None, code=-32000)`` accepts any code in the range.
    """

    code = -32000
    default_message = "Server error"

    def __init__(self, *args: Any, data: Any = None, code: int | None = None) -> None:
        super().__init__(*args, data=data)
        if code is not None:
            if not -32099 <= code <= -32000:
                raise ValueError("server error codes are -32099 .. -32000")
            self.code = code
            self.args = (code, self.message)


class RpcServerBusyError(RpcServerError):
    """-32000: the peer has too much incoming work queued on this connection."""

    default_message = "Server busy"


class RpcCancelledError(RpcError):
    """-32800: the request was cancelled (the LSP ``RequestCancelled`` code)."""

    code = -32800
    default_message = "Request cancelled"


class TransportError(RPCBDError, ConnectionError):
    """The connection failed, was closed, or a call on it timed out."""


class ConnectionClosedError(TransportError):
    """The connection is closed; every call in flight on it fails with this."""


class RpcTimeoutError(TransportError, TimeoutError):
    """A call waited longer than its timeout without hearing from the peer."""


_BY_CODE: dict[int, type[RpcError]] = {
    cls.code: cls
    for cls in (
        RpcParseError,
        RpcInvalidError,
        RpcMethodNotFoundError,
        RpcInvalidParamsError,
        RpcInternalError,
        RpcCancelledError,
    )
}


def error_from_code(code: int, message: str, data: Any = None) -> RpcError:
    """Build the most specific :class:`RpcError` for an error object received from the peer."""
    cls = _BY_CODE.get(code)
    if cls is not None:
        return cls(message, data=data)
    if -32099 <= code <= -32000:
        return RpcServerError(message, data=data, code=code)
    return RpcError(code, message, data=data)
