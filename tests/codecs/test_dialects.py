"""The JSON-RPC dialects (rpcbd.codecs.jsonrpc2, rpcbd.codecs.jsonrpc1): JSON values in and
out, no bytes (the endpoint's serializer does those)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from rpcbd import JSONRPC_V1, JSONRPC_V2
from rpcbd.codecs.jsonrpc1 import JsonRpc1
from rpcbd.codecs.jsonrpc2 import JsonRpc2, is_valid_id, parse_error_object
from rpcbd.core.messages import ErrorResponse, Invalid, Notification, Request, Response
from rpcbd.exceptions import (
    RpcCancelledError,
    RpcError,
    RpcInternalError,
    RpcInvalidError,
    RpcInvalidParamsError,
    RpcMethodNotFoundError,
    RpcParseError,
    RpcServerError,
)


class TestIsValidId:
    @pytest.mark.parametrize("value", [None, 0, 1, -5, 2**70, 1.5, "", "1", "é"])
    def test_valid(self, value: Any) -> None:
        assert is_valid_id(value) is True

    @pytest.mark.parametrize(
        "value",
        [True, False, [], [1], {}, {"id": 1}, object(), b"1", math.inf, -math.inf, math.nan],
    )
    def test_invalid(self, value: Any) -> None:
        assert is_valid_id(value) is False


class TestParseErrorObject:
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
        ],
    )
    def test_known_codes_give_their_class(self, code: int, cls: type[RpcError]) -> None:
        error = parse_error_object({"code": code, "message": "m", "data": {"k": [1]}})
        assert type(error) is cls
        assert (error.code, error.message, error.data) == (code, "m", {"k": [1]})

    def test_other_codes_keep_their_value(self) -> None:
        error = parse_error_object({"code": 42, "message": "answer"})
        assert type(error) is RpcError
        assert (error.code, error.message, error.data) == (42, "answer", None)
        assert parse_error_object({"code": -32100, "message": "x"}).code == -32100

    def test_message_that_is_not_a_string_is_kept_as_text(self) -> None:
        assert parse_error_object({"code": 1, "message": 7}).message == "7"
        assert parse_error_object({"code": 1}).message == "None"

    @pytest.mark.parametrize(
        "error",
        [
            None,
            "text",
            5,
            [1, 2],
            {},
            {"message": "no code"},
            {"code": "1", "message": "string code"},
            {"code": 1.0, "message": "float code"},
            {"code": True, "message": "bool code"},
            {"code": None, "message": "null code"},
        ],
    )
    def test_malformed_becomes_internal_error_with_the_value_as_data(self, error: Any) -> None:
        parsed = parse_error_object(error)
        assert type(parsed) is RpcInternalError
        assert parsed.code == -32603 and parsed.data == error


class TestJsonRpc2Encode:
    dialect = JSONRPC_V2

    def test_attributes(self) -> None:
        assert isinstance(self.dialect, JsonRpc2)
        assert self.dialect.version == "2.0"
        assert self.dialect.supports_batches and self.dialect.supports_named_params
        assert self.dialect.cancel_method == "$/cancelRequest"
        assert repr(self.dialect) == "<JSON-RPC 2.0>"

    def test_request(self) -> None:
        assert self.dialect.request("m", [1], 7) == {
            "jsonrpc": "2.0",
            "method": "m",
            "params": [1],
            "id": 7,
        }
        assert self.dialect.request("m", {"a": 1}, "x") == {
            "jsonrpc": "2.0",
            "method": "m",
            "params": {"a": 1},
            "id": "x",
        }
        assert self.dialect.request("m", None, 1) == {"jsonrpc": "2.0", "method": "m", "id": 1}

    def test_notification(self) -> None:
        assert self.dialect.notification("n", None) == {"jsonrpc": "2.0", "method": "n"}
        assert self.dialect.notification("n", []) == {"jsonrpc": "2.0", "method": "n", "params": []}

    def test_response(self) -> None:
        assert self.dialect.response(3, None) == {"jsonrpc": "2.0", "result": None, "id": 3}

    def test_error_response(self) -> None:
        assert self.dialect.error_response(None, RpcParseError()) == {
            "jsonrpc": "2.0",
            "error": {"code": -32700, "message": "Parse error"},
            "id": None,
        }
        assert self.dialect.error_response("q", RpcError(5, "five", data=[1]))["error"] == {
            "code": 5,
            "message": "five",
            "data": [1],
        }


class TestJsonRpc2Decode:
    dialect = JSONRPC_V2

    def test_round_trip_of_each_kind(self) -> None:
        d = self.dialect
        assert d.decode(d.request("m", [1], 2)) == Request("m", [1], 2)
        assert d.decode(d.request("m", None, "s")) == Request("m", None, "s")
        assert d.decode(d.request("m", {"a": 1}, None)) == Request("m", {"a": 1}, None)
        assert d.decode(d.notification("n", {"k": 1})) == Notification("n", {"k": 1})
        assert d.decode(d.response(1.5, [1])) == Response(1.5, [1])
        assert d.decode(d.error_response(4, RpcMethodNotFoundError("no"))) == ErrorResponse(
            4, RpcMethodNotFoundError("no")
        )

    def test_params_null_is_absent(self) -> None:
        assert self.dialect.decode(
            {"jsonrpc": "2.0", "method": "m", "params": None, "id": 1}
        ) == Request("m", None, 1)

    @pytest.mark.parametrize(
        ("value", "id"),
        [
            (None, None),
            ([], None),
            ("x", None),
            (1, None),
            ({"method": "m", "id": 1}, 1),
            ({"jsonrpc": "1.0", "method": "m", "id": 1}, 1),
            ({"jsonrpc": "2.0", "method": 5, "id": "a"}, "a"),
            ({"jsonrpc": "2.0", "method": None}, None),
            ({"jsonrpc": "2.0", "method": "m", "params": "s", "id": 1}, 1),
            ({"jsonrpc": "2.0", "method": "m", "params": 3}, None),
            ({"jsonrpc": "2.0", "method": "m", "params": True, "id": 2}, 2),
            ({"jsonrpc": "2.0", "method": "m", "id": True}, None),
            ({"jsonrpc": "2.0", "method": "m", "id": [1]}, None),
            ({"jsonrpc": "2.0", "id": 9}, 9),
            ({"jsonrpc": "2.0", "id": [9]}, None),
            ({"foo": "boo"}, None),
        ],
    )
    def test_invalid_requests(self, value: Any, id: Any) -> None:
        decoded = self.dialect.decode(value)
        assert isinstance(decoded, Invalid)
        assert decoded.id == id and decoded.is_response is False
        assert isinstance(decoded.error, RpcInvalidError)

    @pytest.mark.parametrize(
        "value",
        [
            {"jsonrpc": "2.0", "result": 1},
            {"jsonrpc": "2.0", "result": 1, "id": [1]},
            {"jsonrpc": "2.0", "error": {"code": 1, "message": "m"}, "id": {"a": 1}},
            {"jsonrpc": "2.0", "error": {"code": 1, "message": "m"}, "id": False},
        ],
    )
    def test_responses_without_a_usable_id(self, value: Any) -> None:
        decoded = self.dialect.decode(value)
        assert isinstance(decoded, Invalid)
        assert decoded.is_response is True and decoded.id is None

    def test_lenient_responses(self) -> None:
        d = self.dialect
        assert d.decode({"result": 1, "id": 1}) == Response(1, 1)  # no "jsonrpc"
        assert d.decode({"jsonrpc": "2.0", "result": 1, "error": None, "id": 1}) == Response(1, 1)
        both = d.decode(
            {"jsonrpc": "2.0", "result": None, "error": {"code": 3, "message": "m"}, "id": 1}
        )
        assert both == ErrorResponse(1, RpcError(3, "m"))
        malformed = d.decode({"jsonrpc": "2.0", "error": "boom", "id": 2})
        assert isinstance(malformed, ErrorResponse) and isinstance(
            malformed.error, RpcInternalError
        )
        assert malformed.error.data == "boom"


class TestJsonRpc1Encode:
    dialect = JSONRPC_V1

    def test_attributes(self) -> None:
        assert isinstance(self.dialect, JsonRpc1)
        assert self.dialect.version == "1.0"
        assert not self.dialect.supports_batches and not self.dialect.supports_named_params
        assert self.dialect.cancel_method is None
        assert repr(self.dialect) == "<JSON-RPC 1.0>"

    def test_request_always_has_params(self) -> None:
        assert self.dialect.request("m", None, 1) == {"method": "m", "params": [], "id": 1}
        assert self.dialect.request("m", [1, 2], "x") == {
            "method": "m",
            "params": [1, 2],
            "id": "x",
        }

    def test_notification_has_id_null(self) -> None:
        assert self.dialect.notification("n", None) == {"method": "n", "params": [], "id": None}
        assert self.dialect.notification("n", [1]) == {"method": "n", "params": [1], "id": None}

    def test_replies_carry_result_and_error(self) -> None:
        assert self.dialect.response(1, "r") == {"result": "r", "error": None, "id": 1}
        assert self.dialect.error_response(2, RpcError(9, "bad")) == {
            "result": None,
            "error": {"code": 9, "message": "bad"},
            "id": 2,
        }


class TestJsonRpc1Decode:
    dialect = JSONRPC_V1

    def test_round_trip_of_each_kind(self) -> None:
        d = self.dialect
        assert d.decode(d.request("m", [1], 2)) == Request("m", [1], 2)
        assert d.decode(d.notification("n", [1])) == Notification("n", [1])
        assert d.decode(d.response(1, {"a": None})) == Response(1, {"a": None})
        assert d.decode(d.error_response("e", RpcInvalidParamsError("p"))) == ErrorResponse(
            "e", RpcInvalidParamsError("p")
        )

    def test_lenient_requests(self) -> None:
        # Some 1.0 peers send named params or leave params out; rpcbd reads both.
        assert self.dialect.decode({"method": "m", "params": {"a": 1}, "id": 1}) == Request(
            "m", {"a": 1}, 1
        )
        assert self.dialect.decode({"method": "m", "id": 1}) == Request("m", None, 1)
        assert self.dialect.decode({"method": "m"}) == Notification("m", None)

    def test_replies(self) -> None:
        d = self.dialect
        assert d.decode({"result": None, "error": None, "id": 3}) == Response(3, None)
        assert d.decode({"result": 5, "id": 3}) == Response(3, 5)
        assert d.decode({"error": {"code": 1, "message": "m"}, "id": 3}) == ErrorResponse(
            3, RpcError(1, "m")
        )
        free_form = d.decode({"result": None, "error": "went wrong", "id": 3})
        assert isinstance(free_form, ErrorResponse) and isinstance(
            free_form.error, RpcInternalError
        )
        assert free_form.error.data == "went wrong"
        # A reply whose id is unusable is kept with id None (it then matches no call).
        assert d.decode({"result": 1, "id": [1]}) == Response(None, 1)

    @pytest.mark.parametrize(
        ("value", "id"),
        [
            ([], None),
            ("x", None),
            ({"method": "m", "params": [], "id": [1]}, None),
            ({"method": "m", "params": [], "id": True}, None),
            ({"method": 5, "params": [], "id": 1}, 1),
            ({"method": "m", "params": "p", "id": 2}, 2),
            ({"id": 4}, 4),
            ({"foo": 1}, None),
        ],
    )
    def test_invalid(self, value: Any, id: Any) -> None:
        decoded = self.dialect.decode(value)
        assert isinstance(decoded, Invalid) and decoded.id == id
        assert isinstance(decoded.error, RpcInvalidError)
