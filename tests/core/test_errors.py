"""rpcbd.exceptions: the hierarchy says whose fault an error is; RpcError carries code,
message and data both ways over the wire."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from rpcbd.exceptions import (
    ConnectionClosedError,
    FramingError,
    LocalProtocolError,
    MessageTooLargeError,
    ProtocolError,
    RemoteProtocolError,
    RPCBDError,
    RpcCancelledError,
    RpcError,
    RpcInternalError,
    RpcInvalidError,
    RpcInvalidParamsError,
    RpcMethodNotFoundError,
    RpcParseError,
    RpcServerBusyError,
    RpcServerError,
    RpcTimeoutError,
    TransportError,
    error_from_code,
)


class TestHierarchy:
    @pytest.mark.parametrize(
        ("cls", "bases"),
        [
            (ProtocolError, (RPCBDError,)),
            (LocalProtocolError, (ProtocolError, RuntimeError)),
            (RemoteProtocolError, (ProtocolError,)),
            (FramingError, (RemoteProtocolError,)),
            (MessageTooLargeError, (FramingError,)),
            (RpcError, (RPCBDError,)),
            (RpcServerBusyError, (RpcServerError, RpcError)),
            (RpcCancelledError, (RpcError,)),
            (TransportError, (RPCBDError, ConnectionError)),
            (ConnectionClosedError, (TransportError,)),
            (RpcTimeoutError, (TransportError, TimeoutError)),
        ],
    )
    def test_bases(self, cls: type, bases: tuple[type, ...]) -> None:
        assert all(issubclass(cls, base) for base in bases)

    def test_framing_errors_carry_details(self) -> None:
        error = FramingError("bad header", recoverable=False)
        assert (error.reason, error.recoverable, str(error)) == ("bad header", False, "bad header")
        big = MessageTooLargeError(64, recoverable=True)
        assert big.limit == 64 and big.recoverable and "64" in big.reason


class TestRpcError:
    def test_fields_and_wire_form(self) -> None:
        error = RpcError(42, "answer", data={"k": [1]})
        assert (error.code, error.message, error.data) == (42, "answer", {"k": [1]})
        assert error.to_dict() == {"code": 42, "message": "answer", "data": {"k": [1]}}
        assert RpcError(1, "m").to_dict() == {"code": 1, "message": "m"}
        assert RpcError(1, "m", [2]).data == [2]  # positional data
        assert RpcError(7).message == "Error"
        assert str(error) == "answer (code 42): {'k': [1]}"
        assert str(RpcError(1, "m")) == "m (code 1)"
        assert repr(error) == "RpcError(code=42, message='answer', data={'k': [1]})"

    def test_equality_and_hash(self) -> None:
        assert RpcError(1, "m", data=[1]) == RpcError(1, "m", data=[1])
        assert RpcError(1, "m", data=[1]) != RpcError(1, "m", data=[2])
        assert RpcError(1, "m") != "m"
        assert hash(RpcError(1, "m", data=[1])) == hash(RpcError(1, "m", data=[2]))

    @pytest.mark.parametrize(
        "args", [(), ("text",), (True, "bool"), (1.5, "float"), (1, "m", None, "x")]
    )
    def test_base_class_needs_an_integer_code(self, args: tuple[Any, ...]) -> None:
        with pytest.raises(TypeError):
            RpcError(*args)

    @pytest.mark.parametrize(
        ("cls", "code", "message"),
        [
            (RpcParseError, -32700, "Parse error"),
            (RpcInvalidError, -32600, "Invalid Request"),
            (RpcMethodNotFoundError, -32601, "Method not found"),
            (RpcInvalidParamsError, -32602, "Invalid params"),
            (RpcInternalError, -32603, "Internal error"),
            (RpcServerError, -32000, "Server error"),
            (RpcServerBusyError, -32000, "Server busy"),
            (RpcCancelledError, -32800, "Request cancelled"),
        ],
    )
    def test_subclasses_fix_the_code(self, cls: type[RpcError], code: int, message: str) -> None:
        assert cls.code == code
        assert (cls().code, cls().message, cls().data) == (code, message, None)
        assert cls(None, data=1).message == message
        error = cls("custom", [1])
        assert (error.code, error.message, error.data) == (code, "custom", [1])
        with pytest.raises(TypeError):
            cls("a", "b", "c")

    def test_server_error_codes(self) -> None:
        error = RpcServerError("busy", code=-32050)
        assert error.code == -32050 and error.args == (-32050, "busy")
        with pytest.raises(ValueError):
            RpcServerError(code=-31999)
        with pytest.raises(ValueError):
            RpcServerError(code=-32100)

    @pytest.mark.parametrize(
        "error",
        [
            RpcError(5, "m", data=[1]),
            RpcServerError("busy", data={"a": 1}, code=-32050),
            RpcMethodNotFoundError("x", data=2),
            RpcServerBusyError(data=1),
        ],
        ids=repr,
    )
    def test_pickle_keeps_everything(self, error: RpcError) -> None:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and copy == error


class TestErrorFromCode:
    @pytest.mark.parametrize(
        ("code", "cls"),
        [
            (-32700, RpcParseError),
            (-32600, RpcInvalidError),
            (-32601, RpcMethodNotFoundError),
            (-32602, RpcInvalidParamsError),
            (-32603, RpcInternalError),
            (-32800, RpcCancelledError),
            (-32000, RpcServerError),
            (-32099, RpcServerError),
            (-32100, RpcError),
            (0, RpcError),
            (404, RpcError),
        ],
    )
    def test_most_specific_class(self, code: int, cls: type[RpcError]) -> None:
        error = error_from_code(code, "msg", data={"d": 1})
        assert type(error) is cls
        assert (error.code, error.message, error.data) == (code, "msg", {"d": 1})
