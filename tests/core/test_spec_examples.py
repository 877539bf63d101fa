"""The examples of the JSON-RPC 2.0 specification (section 7) and JSON-RPC 1.0, as raw bytes.

Every vector of PROTOCOL.md's "The specification's examples" table is fed, newline framed,
into an :class:`Endpoint` served by the minimal dispatcher of ``tests/helpers.py``; the reply
must be exactly what the specification shows (``data`` members are rpcbd's own additions and
are not compared). Class names follow the sections of https://www.jsonrpc.org/specification.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from rpcbd import JSONRPC_V1
from rpcbd.core import Endpoint, InvalidMessageReceived, NotificationReceived, RequestReceived
from rpcbd.core.events import ErrorReceived, ResponseReceived
from tests.helpers import feed, replies


def subtract(minuend: int, subtrahend: int) -> int:
    return minuend - subtrahend


METHODS: dict[str, Any] = {
    "subtract": subtract,
    "update": lambda *args: None,
    "notify_hello": lambda *args: None,
    "notify_sum": lambda *args: None,
    "sum": lambda *args: sum(args),
    "get_data": lambda: ["hello", 5],
}


def exchange(text: str, endpoint: Endpoint | None = None) -> list[Any]:
    """Send one line to a fresh 2.0 endpoint; return the decoded replies."""
    endpoint = endpoint or Endpoint()
    feed(endpoint, text.encode() + b"\n", METHODS)
    return replies(endpoint)


def result(value: Any, id: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "result": value, "id": id}


def error_of(reply: dict[str, Any]) -> tuple[int, Any]:
    """(code, id) of an error reply, after checking it has the shape the spec demands."""
    assert set(reply) == {"jsonrpc", "error", "id"}, reply
    assert reply["jsonrpc"] == "2.0"
    assert isinstance(reply["error"]["code"], int)
    assert isinstance(reply["error"]["message"], str) and reply["error"]["message"]
    assert set(reply["error"]) <= {"code", "message", "data"}
    return reply["error"]["code"], reply["id"]


class TestRpcCallWithPositionalParameters:
    """Spec section 7, "rpc call with positional parameters" (vectors 1 and 2)."""

    def test_vector_1(self) -> None:
        text = '{"jsonrpc":"2.0","method":"subtract","params":[42,23],"id":1}'
        assert exchange(text) == [result(19, 1)]

    def test_vector_2(self) -> None:
        text = '{"jsonrpc":"2.0","method":"subtract","params":[23,42],"id":2}'
        assert exchange(text) == [result(-19, 2)]


class TestRpcCallWithNamedParameters:
    """Spec section 7, "rpc call with named parameters" (vectors 3 and 4)."""

    def test_vector_3(self) -> None:
        text = (
            '{"jsonrpc":"2.0","method":"subtract","params":{"subtrahend":23,"minuend":42},"id":3}'
        )
        assert exchange(text) == [result(19, 3)]

    def test_vector_4(self) -> None:
        text = (
            '{"jsonrpc":"2.0","method":"subtract","params":{"minuend":42,"subtrahend":23},"id":4}'
        )
        assert exchange(text) == [result(19, 4)]


class TestNotification:
    """Spec section 4.1 and the "a Notification" examples (vectors 5 and 6)."""

    def test_vector_5_is_not_answered(self) -> None:
        endpoint = Endpoint()
        events = feed(endpoint, b'{"jsonrpc":"2.0","method":"update","params":[1,2,3,4,5]}\n')
        assert events == [NotificationReceived("update", [1, 2, 3, 4, 5])]
        assert endpoint.data_to_send() == []

    def test_vector_6_unknown_method_is_not_answered(self) -> None:
        endpoint = Endpoint()
        events = feed(endpoint, b'{"jsonrpc":"2.0","method":"foobar"}\n', METHODS)
        assert events == [NotificationReceived("foobar", None)]
        assert endpoint.data_to_send() == []


class TestRpcCallOfNonExistentMethod:
    """Spec section 7, "rpc call of non-existent method" (vector 7)."""

    def test_vector_7(self) -> None:
        [reply] = exchange('{"jsonrpc":"2.0","method":"foobar","id":"1"}')
        assert error_of(reply) == (-32601, "1")
        assert reply["error"]["message"] == "Method not found"


class TestRpcCallWithInvalidJson:
    """Spec section 7, "rpc call with invalid JSON" (vector 8)."""

    def test_vector_8(self) -> None:
        endpoint = Endpoint()
        [reply] = exchange('{"jsonrpc":"2.0","method":"foobar,"params":"bar","baz]', endpoint)
        assert error_of(reply) == (-32700, None)
        assert reply["error"]["message"] == "Parse error"

    def test_stream_continues_after_a_parse_error(self) -> None:
        endpoint = Endpoint()
        data = b'{"jsonrpc":"2.0","method":"foobar,"params":"bar","baz]\n'
        data += b'{"jsonrpc":"2.0","method":"subtract","params":[42,23],"id":1}\n'
        events = feed(endpoint, data, METHODS)
        assert isinstance(events[0], InvalidMessageReceived) and not events[0].fatal
        first, second = replies(endpoint)
        assert error_of(first) == (-32700, None)
        assert second == result(19, 1)


class TestRpcCallWithInvalidRequestObject:
    """Spec section 7, "rpc call with invalid Request object" (vector 9)."""

    def test_vector_9(self) -> None:
        [reply] = exchange('{"jsonrpc":"2.0","method":1,"params":"bar"}')
        assert error_of(reply) == (-32600, None)
        assert reply["error"]["message"] == "Invalid Request"

    @pytest.mark.parametrize(
        ("text", "id"),
        [
            ('{"method":"sum","params":[1],"id":7}', 7),  # no "jsonrpc"
            ('{"jsonrpc":"1.0","method":"sum","params":[1],"id":7}', 7),
            ('{"jsonrpc":2.0,"method":"sum","params":[1],"id":7}', 7),
            ('{"jsonrpc":"2.0","method":"sum","params":"x","id":"q"}', "q"),
            ('{"jsonrpc":"2.0","method":"sum","params":5,"id":7}', 7),
            ('{"jsonrpc":"2.0","method":"sum","id":true}', None),  # bool is not an id
            ('{"jsonrpc":"2.0","method":"sum","id":[1]}', None),
            ('{"jsonrpc":"2.0","method":"sum","id":{"a":1}}', None),
            ('{"jsonrpc":"2.0","id":7}', 7),  # neither request nor response
            ('"just a string"', None),
            ("42", None),
            ("null", None),
        ],
    )
    def test_other_invalid_requests(self, text: str, id: Any) -> None:
        [reply] = exchange(text)
        assert error_of(reply) == (-32600, id)


class TestRpcCallBatchInvalidJson:
    """Spec section 7, "rpc call Batch, invalid JSON" (vector 10)."""

    def test_vector_10(self) -> None:
        text = (
            '[{"jsonrpc":"2.0","method":"sum","params":[1,2,4],"id":"1"},{"jsonrpc":"2.0","method"'
        )
        [reply] = exchange(text)
        assert error_of(reply) == (-32700, None)


class TestRpcCallWithEmptyArray:
    """Spec section 7, "rpc call with an empty Array" (vector 11)."""

    def test_vector_11_single_error_not_an_array(self) -> None:
        [reply] = exchange("[]")
        assert isinstance(reply, dict)
        assert error_of(reply) == (-32600, None)


class TestRpcCallWithInvalidBatch:
    """Spec section 7, "rpc call with an invalid Batch (but not empty)" (vectors 12, 13)."""

    def test_vector_12(self) -> None:
        [reply] = exchange("[1]")
        assert isinstance(reply, list) and len(reply) == 1
        assert error_of(reply[0]) == (-32600, None)

    def test_vector_13(self) -> None:
        [reply] = exchange("[1,2,3]")
        assert isinstance(reply, list) and len(reply) == 3
        assert [error_of(item) for item in reply] == [(-32600, None)] * 3


class TestRpcCallBatch:
    """Spec section 7, "rpc call Batch" (vector 14)."""

    def test_vector_14(self) -> None:
        text = json.dumps(
            [
                {"jsonrpc": "2.0", "method": "sum", "params": [1, 2, 4], "id": "1"},
                {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
                {"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": "2"},
                {"foo": "boo"},
                {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
                {"jsonrpc": "2.0", "method": "get_data", "id": "9"},
            ]
        )
        [reply] = exchange(text)
        assert isinstance(reply, list) and len(reply) == 5
        successes = sorted((r for r in reply if "result" in r), key=lambda r: r["id"])
        assert successes == [result(7, "1"), result(19, "2"), result(["hello", 5], "9")]
        errors = sorted((error_of(r) for r in reply if "error" in r), key=repr)
        assert errors == sorted([(-32600, None), (-32601, "5")], key=repr)


class TestRpcCallBatchAllNotifications:
    """Spec section 7, "rpc call Batch (all notifications)" (vector 15)."""

    def test_vector_15_nothing_is_sent(self) -> None:
        endpoint = Endpoint()
        text = (
            b'[{"jsonrpc":"2.0","method":"notify_sum","params":[1,2,4]},'
            b'{"jsonrpc":"2.0","method":"notify_hello","params":[7]}]\n'
        )
        events = feed(endpoint, text, METHODS)
        assert events == [
            NotificationReceived("notify_sum", [1, 2, 4]),
            NotificationReceived("notify_hello", [7]),
        ]
        assert endpoint.data_to_send() == []


class TestJsonRpc10:
    """JSON-RPC 1.0 (json-rpc.org, 2005): params array, null-id notifications, both members."""

    def v1(self) -> Endpoint:
        return Endpoint(JSONRPC_V1)

    def test_request_with_params_array(self) -> None:
        endpoint = self.v1()
        feed(endpoint, b'{"method":"subtract","params":[42,23],"id":1}\n', METHODS)
        assert replies(endpoint) == [{"result": 19, "error": None, "id": 1}]

    def test_notification_has_id_null_and_is_not_answered(self) -> None:
        endpoint = self.v1()
        events = feed(endpoint, b'{"method":"update","params":[1,2],"id":null}\n', METHODS)
        assert events == [NotificationReceived("update", [1, 2])]
        assert endpoint.data_to_send() == []

    def test_error_reply_carries_result_null(self) -> None:
        endpoint = self.v1()
        feed(endpoint, b'{"method":"foobar","params":[],"id":"x"}\n', METHODS)
        [reply] = replies(endpoint)
        assert set(reply) == {"result", "error", "id"}
        assert reply["result"] is None and reply["id"] == "x"
        assert reply["error"]["code"] == -32601

    def test_no_jsonrpc_member_and_no_batches_sent(self) -> None:
        endpoint = self.v1()
        endpoint.send_request("subtract", [1, 2])
        endpoint.send_notification("hello", ["x"])
        assert replies(endpoint) == [
            {"method": "subtract", "params": [1, 2], "id": 1},
            {"method": "hello", "params": ["x"], "id": None},
        ]

    def test_params_always_an_array_when_sending(self) -> None:
        endpoint = self.v1()
        endpoint.send_request("ping")
        assert replies(endpoint) == [{"method": "ping", "params": [], "id": 1}]

    def test_errors_both_ways(self) -> None:
        # A calls B, B fails; B calls A, A fails; the stream keeps working for a success.
        a, b = self.v1(), self.v1()
        id_ab = a.send_request("boom", [])
        b.receive_data(b"".join(a.data_to_send()))
        [req] = b.events_received()
        assert isinstance(req, RequestReceived)
        id_ba = b.send_request("nope", [1])
        from rpcbd import RpcError

        b.send_error(req, RpcError(42, "boom failed", data={"why": 1}))
        a.receive_data(b"".join(b.data_to_send()))
        events = a.events_received()
        assert events[0] == RequestReceived(id_ba, "nope", [1], events[0].key)  # type: ignore[attr-defined]
        assert events[1] == ErrorReceived(id_ab, RpcError(42, "boom failed", data={"why": 1}))
        assert isinstance(events[0], RequestReceived)
        a.send_error(events[0], RpcError(7, "nope failed"))
        wire = b"".join(a.data_to_send())
        assert json.loads(wire) == {
            "result": None,
            "error": {"code": 7, "message": "nope failed"},
            "id": id_ba,
        }
        b.receive_data(wire)
        assert b.events_received() == [ErrorReceived(id_ba, RpcError(7, "nope failed"))]
        id2 = a.send_request("subtract", [5, 3])
        feed(b, b"".join(a.data_to_send()), METHODS)
        a.receive_data(b"".join(b.data_to_send()))
        assert a.events_received() == [ResponseReceived(id2, 2)]

    def test_error_that_is_not_an_object_still_fails_the_call(self) -> None:
        endpoint = self.v1()
        id = endpoint.send_request("x", [])
        endpoint.receive_data(b'{"result":null,"error":"it broke","id":1}\n')
        [event] = endpoint.events_received()
        assert isinstance(event, ErrorReceived) and event.id == id
        assert event.error.code == -32603 and event.error.data == "it broke"

    def test_batch_is_invalid_in_1_0(self) -> None:
        endpoint = self.v1()
        feed(endpoint, b'[{"method":"subtract","params":[1,2],"id":1}]\n', METHODS)
        [reply] = replies(endpoint)
        assert reply["result"] is None and reply["error"]["code"] == -32600


VECTORS = [
    '{"jsonrpc":"2.0","method":"subtract","params":[42,23],"id":1}',
    '{"jsonrpc":"2.0","method":"subtract","params":[23,42],"id":2}',
    '{"jsonrpc":"2.0","method":"subtract","params":{"subtrahend":23,"minuend":42},"id":3}',
    '{"jsonrpc":"2.0","method":"subtract","params":{"minuend":42,"subtrahend":23},"id":4}',
    '{"jsonrpc":"2.0","method":"update","params":[1,2,3,4,5]}',
    '{"jsonrpc":"2.0","method":"foobar"}',
    '{"jsonrpc":"2.0","method":"foobar","id":"1"}',
    '{"jsonrpc":"2.0","method":"foobar,"params":"bar","baz]',
    '{"jsonrpc":"2.0","method":1,"params":"bar"}',
    '[{"jsonrpc":"2.0","method":"sum","params":[1,2,4],"id":"1"},{"jsonrpc":"2.0","method"',
    "[]",
    "[1]",
    "[1,2,3]",
    '[{"jsonrpc":"2.0","method":"sum","params":[1,2,4],"id":"1"},'
    '{"jsonrpc":"2.0","method":"notify_hello","params":[7]},'
    '{"jsonrpc":"2.0","method":"subtract","params":[42,23],"id":"2"},{"foo":"boo"},'
    '{"jsonrpc":"2.0","method":"foo.get","params":{"name":"myself"},"id":"5"},'
    '{"jsonrpc":"2.0","method":"get_data","id":"9"}]',
    '[{"jsonrpc":"2.0","method":"notify_sum","params":[1,2,4]},'
    '{"jsonrpc":"2.0","method":"notify_hello","params":[7]}]',
]


class TestExamplesOverMessageTransports:
    """The same 15 vectors as whole messages (WebSocket): the same replies, one per message."""

    @pytest.mark.parametrize("number", range(1, 16))
    def test_vector(self, number: int) -> None:
        text = VECTORS[number - 1]
        stream = exchange(text)
        endpoint = Endpoint(framing=None)
        feed(endpoint, text.encode(), METHODS)
        messages = endpoint.data_to_send()
        assert [json.loads(m) for m in messages] == stream
        assert len(messages) == (0 if number in (5, 6, 15) else 1)
