"""JSON-RPC messages as plain frozen dataclasses, independent of the dialect on the wire."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rpcbd.exceptions import RpcError
from rpcbd.typing import Params, RequestId

__all__ = [
    "ErrorResponse",
    "Invalid",
    "Message",
    "Notification",
    "Request",
    "Response",
]


@dataclass(frozen=True, slots=True)
class Request:
    """A call that expects a reply.

    Attributes:
        method: the method name.
        params: a list (by position), a dict (by name) or None (absent).
        id: the request id, echoed in the reply with the same type.
    """

    method: str
    params: Params
    id: RequestId


@dataclass(frozen=True, slots=True)
class Notification:
    """A call that is never answered.

    Attributes:
        method: the method name.
        params: a list (by position), a dict (by name) or None (absent).
    """

    method: str
    params: Params


@dataclass(frozen=True, slots=True)
class Response:
    """A successful reply.

    Attributes:
        id: the id of the request this answers.
        result: the JSON result.
    """

    id: RequestId
    result: Any


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    """An error reply.

    Attributes:
        id: the id of the request this answers, or None when it could not be read.
        error: the error, as the most specific :class:`~rpcbd.RpcError` subclass.
    """

    id: RequestId
    error: RpcError


@dataclass(frozen=True, slots=True)
class Invalid:
    """Something that decoded as JSON (or failed to) but is not a valid message.

    Attributes:
        id: the id, if one could be read, else None.
        error: the error to answer with (``-32700`` or ``-32600``).
        is_response: True when the thing looked like a response; responses are never answered.
    """

    id: RequestId
    error: RpcError
    is_response: bool = False


#: One decoded element.
Message = Request | Notification | Response | ErrorResponse
