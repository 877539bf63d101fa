"""JSON-RPC 2.0 (https://www.jsonrpc.org/specification)."""

from __future__ import annotations

import math
from typing import Any

from rpcbd._compiled import mypyc_attr
from rpcbd.codecs.base import Dialect
from rpcbd.core.messages import ErrorResponse, Invalid, Message, Notification, Request, Response
from rpcbd.exceptions import (
    RpcError,
    RpcInternalError,
    RpcInvalidError,
    error_from_code,
)
from rpcbd.typing import Params, RequestId

__all__ = ["JSONRPC_V2", "JsonRpc2", "is_valid_id", "parse_error_object"]


# Stands for a member that is absent (None would be "null").
_ABSENT: Any = object()


def _common_shape(value: Any) -> tuple[str | None, Any, int | str | None] | None:
    """The members of a message of the shape well-behaved peers send, or None.

    The fast path of :meth:`JsonRpc2.decode` (and of the endpoint, which builds its events
    from these members without a message object in between):

    - a request with ``"jsonrpc": "2.0"``, a string method, list/object/no params and an
      integer or string id: ``(method, params, id)``;
    - the same without an id, a notification: ``(method, params, None)``;
    - a response with a result and an integer or string id: ``(None, result, id)``.

    Every check here is one that ``JsonRpc2._decode_general`` makes too, so both give the
    same message (a test pins this). Anything else (null or float ids, errors, bad
    members, not an object) is None: the general path decides.
    """
    if type(value) is not dict:
        return None
    method = value.get("method")
    if type(method) is str:
        params = value.get("params")
        if value.get("jsonrpc") == "2.0" and (
            params is None or type(params) is list or type(params) is dict
        ):
            id = value.get("id", _ABSENT)
            if id is _ABSENT:
                return method, params, None
            if type(id) is int or type(id) is str:
                return method, params, id
    elif "result" in value and "method" not in value and "error" not in value:
        id = value.get("id")
        if type(id) is int or type(id) is str:
            return None, value["result"], id
    return None


def is_valid_id(value: Any) -> bool:
    """Whether ``value`` may be a request id.

    "An identifier established by the Client that MUST contain a String, Number, or NULL
    value if included." (spec section 4). ``True``/``False`` are not numbers, and neither is
    the infinity a text like ``1e400`` reads as (it could not be sent back).
    """
    kind = type(value)
    return value is None or kind is int or kind is str or (kind is float and math.isfinite(value))


def parse_error_object(error: Any) -> RpcError:
    """Turn a received error member into an :class:`RpcError`.

    A well-formed error object (integer ``code``, string ``message``) gives the most specific
    subclass; anything else is kept whole as the ``data`` of a -32603 error, so a call in
    flight still ends with an error instead of hanging.
    """
    if isinstance(error, dict):
        code = error.get("code")
        message = error.get("message")
        if type(code) is int:
            return error_from_code(
                code, message if isinstance(message, str) else str(message), error.get("data")
            )
    return RpcInternalError("malformed error object from peer", data=error)


@mypyc_attr(allow_interpreted_subclasses=True)
class JsonRpc2(Dialect):
    """JSON-RPC 2.0: ``"jsonrpc": "2.0"``, named or positional params, batches.

    Receiving is strict for requests (the spec's examples are the test vectors) and lenient
    for responses: a response is matched by its ``id`` even if its ``jsonrpc`` member is
    missing or it carries both ``result`` and ``error`` (1.0 style, the unused one null),
    because refusing it would only leave the caller waiting. ``"params": null`` is read as
    absent params.
    """

    version = "2.0"
    supports_batches = True
    supports_named_params = True
    cancel_method = "$/cancelRequest"

    def request(self, method: str, params: Params, id: RequestId) -> dict[str, Any]:
        if params is None:
            return {"jsonrpc": "2.0", "method": method, "id": id}
        return {"jsonrpc": "2.0", "method": method, "params": params, "id": id}

    def notification(self, method: str, params: Params) -> dict[str, Any]:
        if params is None:
            return {"jsonrpc": "2.0", "method": method}
        return {"jsonrpc": "2.0", "method": method, "params": params}

    def response(self, id: RequestId, result: Any) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "result": result, "id": id}

    def error_response(self, id: RequestId, error: RpcError) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "error": error.to_dict(), "id": id}

    def decode(self, value: Any) -> Message | Invalid:
        shape = _common_shape(value)
        if shape is None:
            return self._decode_general(value)
        method, params_or_result, id = shape
        if method is None:
            return Response(id, params_or_result)
        if id is None:
            return Notification(method, params_or_result)
        return Request(method, params_or_result, id)

    def _decode_general(self, value: Any) -> Message | Invalid:
        """Classify any value, valid or not (what :meth:`decode` does without its fast
        path)."""
        if type(value) is not dict:
            return Invalid(None, RpcInvalidError(data="a message must be a JSON object"))
        if "method" in value:
            return self._decode_call(value)
        if "result" in value or "error" in value:
            return self._decode_response(value)
        id = value.get("id")
        return Invalid(
            id if is_valid_id(id) else None,
            RpcInvalidError(data="neither a request nor a response"),
        )

    def _decode_call(self, value: dict[str, Any]) -> Message | Invalid:
        has_id = "id" in value
        id = value.get("id")
        if not is_valid_id(id):
            return Invalid(None, RpcInvalidError(data="id must be a string, number or null"))
        if value.get("jsonrpc") != "2.0":
            return Invalid(id, RpcInvalidError(data='"jsonrpc" must be exactly "2.0"'))
        method = value["method"]
        if type(method) is not str:
            return Invalid(id, RpcInvalidError(data="method must be a string"))
        params = value.get("params")
        if params is not None and type(params) not in (list, dict):
            return Invalid(id, RpcInvalidError(data="params must be an array or an object"))
        if has_id:
            return Request(method, params, id)
        return Notification(method, params)

    def _decode_response(self, value: dict[str, Any]) -> Message | Invalid:
        id = value.get("id")
        if "id" not in value or not is_valid_id(id):
            return Invalid(None, RpcInvalidError(data="response without a valid id"), True)
        if "error" in value:
            # "Either the result member or error member MUST be included, but both members
            # MUST NOT be included." Some peers send both with one null (the 1.0 shape);
            # refusing that would leave the call waiting, so the null one is ignored.
            if "result" in value and value["error"] is None:
                return Response(id, value["result"])
            return ErrorResponse(id, parse_error_object(value["error"]))
        return Response(id, value["result"])


#: The JSON-RPC 2.0 dialect (the 0.6 name for it was an "rpc processor").
JSONRPC_V2 = JsonRpc2()
