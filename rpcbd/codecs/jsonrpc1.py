"""JSON-RPC 1.0 (the 2005 json-rpc.org specification).

Requests carry ``method``, ``params`` (always an array) and ``id``; a notification is a
request whose ``id`` is null. Replies carry all three of ``result``, ``error`` and ``id``,
the unused one null. There are no batches. The protocol is peer to peer by design.
"""

from __future__ import annotations

from typing import Any

from rpcbd._compiled import mypyc_attr
from rpcbd.codecs.base import Dialect
from rpcbd.codecs.jsonrpc2 import is_valid_id, parse_error_object
from rpcbd.core.messages import ErrorResponse, Invalid, Message, Notification, Request, Response
from rpcbd.exceptions import RpcError, RpcInvalidError
from rpcbd.typing import Params, RequestId

__all__ = ["JSONRPC_V1", "JsonRpc1"]


@mypyc_attr(allow_interpreted_subclasses=True)
class JsonRpc1(Dialect):
    """JSON-RPC 1.0.

    Errors in 1.0 may be any JSON value; rpcbd sends ``{"code", "message", "data"}``
    objects, and reads an error that is not such an object as a -32603 error whose
    ``data`` is the value received. Receiving, ``params`` may also be an object or absent
    (some 1.0 peers send them); sending named params is refused.
    """

    version = "1.0"
    supports_batches = False
    supports_named_params = False

    def request(self, method: str, params: Params, id: RequestId) -> dict[str, Any]:
        return {"method": method, "params": [] if params is None else params, "id": id}

    def notification(self, method: str, params: Params) -> dict[str, Any]:
        return {"method": method, "params": [] if params is None else params, "id": None}

    def response(self, id: RequestId, result: Any) -> dict[str, Any]:
        return {"result": result, "error": None, "id": id}

    def error_response(self, id: RequestId, error: RpcError) -> dict[str, Any]:
        return {"result": None, "error": error.to_dict(), "id": id}

    def decode(self, value: Any) -> Message | Invalid:
        if type(value) is not dict:
            return Invalid(None, RpcInvalidError(data="a message must be a JSON object"))
        id = value.get("id")
        if not is_valid_id(id):
            id = None
            if "method" in value:
                return Invalid(None, RpcInvalidError(data="id must be a string, number or null"))
        if "method" in value:
            method = value["method"]
            params = value.get("params")
            if type(method) is not str:
                return Invalid(id, RpcInvalidError(data="method must be a string"))
            if params is not None and type(params) not in (list, dict):
                return Invalid(id, RpcInvalidError(data="params must be an array"))
            if id is None:
                return Notification(method, params)
            return Request(method, params, id)
        if "result" in value or "error" in value:
            error = value.get("error")
            if error is not None:
                return ErrorResponse(id, parse_error_object(error))
            return Response(id, value.get("result"))
        return Invalid(id, RpcInvalidError(data="neither a request nor a response"))


#: The JSON-RPC 1.0 dialect.
JSONRPC_V1 = JsonRpc1()
