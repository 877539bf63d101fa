"""The sans-IO :class:`~rpcbd.core.Endpoint`, driven with bytes only.

Class names follow the JSON-RPC 2.0 specification's sections where one applies
(https://www.jsonrpc.org/specification); the rest are rpcbd's own rules from API.md.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from rpcbd import JSONRPC_V1, JSONRPC_V2
from rpcbd.codecs.framing import FRAMINGS, get_framing
from rpcbd.core import (
    CancelRequested,
    ConnectionClosed,
    Endpoint,
    ErrorReceived,
    Event,
    InvalidMessageReceived,
    NotificationReceived,
    RequestReceived,
    ResponseReceived,
    State,
)
from rpcbd.core.endpoint import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_PENDING_REQUESTS
from rpcbd.core.state import TRANSITIONS, ConnectionState, Input
from rpcbd.exceptions import (
    ConnectionClosedError,
    FramingError,
    LocalProtocolError,
    MessageTooLargeError,
    RemoteProtocolError,
    RpcError,
    RpcInternalError,
    RpcInvalidError,
    RpcMethodNotFoundError,
    RpcParseError,
    RpcServerBusyError,
)
from tests.helpers import EndpointPair, answer, feed, replies, serve

ECHO = {"echo": lambda x: x}


def line(obj: Any) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def request(method: str, params: Any = None, id: Any = 1) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": id}
    if params is not None:
        message["params"] = params
    return message


def notification(method: str, params: Any = None) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    return message


def only_requests(events: list[Any]) -> list[RequestReceived]:
    return [event for event in events if isinstance(event, RequestReceived)]


class TestRequestObjectIds:
    """Spec section 4: "id ... MUST contain a String, Number, or NULL value"; section 5: the
    reply's id "MUST be the same as the value of the id member in the Request Object"."""

    @pytest.mark.parametrize("id", ["1", 1, 1.5, -7, 0, "", "é", 2**70])
    def test_reply_id_keeps_value_and_type(self, id: Any) -> None:
        endpoint = Endpoint()
        [event] = feed(endpoint, line(request("echo", [1], id)), ECHO)
        assert isinstance(event, RequestReceived)
        assert event.id == id and type(event.id) is type(id)
        [reply] = replies(endpoint)
        assert reply == {"jsonrpc": "2.0", "result": 1, "id": id}
        assert type(reply["id"]) is type(id)

    def test_string_one_and_number_one_are_different_requests(self) -> None:
        endpoint = Endpoint()
        events = feed(endpoint, line(request("echo", ["s"], "1")) + line(request("echo", ["n"], 1)))
        first, second = only_requests(events)
        endpoint.send_response(second, "n")
        endpoint.send_response(first, "s")
        assert replies(endpoint) == [
            {"jsonrpc": "2.0", "result": "n", "id": 1},
            {"jsonrpc": "2.0", "result": "s", "id": "1"},
        ]

    def test_id_null_request_is_answered_with_id_null(self) -> None:
        endpoint = Endpoint()
        [event] = feed(endpoint, line(request("echo", [3], None)), ECHO)
        assert isinstance(event, RequestReceived) and event.id is None
        assert replies(endpoint) == [{"jsonrpc": "2.0", "result": 3, "id": None}]

    def test_reused_incoming_id_is_two_requests(self) -> None:
        endpoint = Endpoint()
        first, second = feed(
            endpoint, line(request("echo", [1], 5)) + line(request("echo", [2], 5))
        )
        assert isinstance(first, RequestReceived) and isinstance(second, RequestReceived)
        assert first.key != second.key
        endpoint.send_response(first, 1)
        endpoint.send_response(second, 2)
        assert [r["result"] for r in replies(endpoint)] == [1, 2]
        assert endpoint.requests_in_flight == 0

    def test_outgoing_ids_count_from_one(self) -> None:
        endpoint = Endpoint()
        assert [endpoint.send_request("m") for _ in range(3)] == [1, 2, 3]
        assert [r["id"] for r in replies(endpoint)] == [1, 2, 3]

    def test_caller_chosen_ids_keep_their_type(self) -> None:
        endpoint = Endpoint()
        assert endpoint.send_request("m", id="1") == "1"
        assert endpoint.send_request("m", id=2.5) == 2.5
        assert [r["id"] for r in replies(endpoint)] == ["1", 2.5]
        # A reply with the number 1 does not answer the call with the string "1".
        endpoint.receive_data(b'{"jsonrpc":"2.0","result":0,"id":1}\n')
        [event] = endpoint.events_received()
        assert isinstance(event, InvalidMessageReceived) and event.id == 1
        assert "1" in endpoint._outgoing
        endpoint.receive_data(b'{"jsonrpc":"2.0","result":"ok","id":"1"}\n')
        assert endpoint.events_received() == [ResponseReceived("1", "ok")]

    def test_automatic_ids_skip_caller_chosen_integers(self) -> None:
        endpoint = Endpoint()
        assert endpoint.send_request("m", id=1) == 1
        assert endpoint.send_request("m", id=3) == 3
        assert endpoint.send_request("m") == 4
        endpoint.send_request("m", id=5.0)
        assert endpoint.send_request("m") == 6  # 5.0 == 5 is in flight

    def test_id_in_flight_cannot_be_reused(self) -> None:
        endpoint = Endpoint()
        endpoint.send_request("m", id="x")
        with pytest.raises(LocalProtocolError, match="in flight"):
            endpoint.send_request("m", id="x")
        assert endpoint.calls_in_flight == 1

    def test_id_that_reads_as_infinity_is_invalid(self) -> None:
        # 1e400 is a JSON number, but Python reads it as inf, which cannot be sent back.
        endpoint = Endpoint()
        endpoint.receive_data(b'{"jsonrpc":"2.0","method":"echo","params":[1],"id":1e400}\n')
        [event] = endpoint.events_received()
        assert isinstance(event, InvalidMessageReceived) and event.id is None
        [reply] = replies(endpoint)
        assert (reply["error"]["code"], reply["id"]) == (-32600, None)

    @pytest.mark.parametrize("id", [True, False, [1], {"a": 1}, object(), float("inf")])
    def test_invalid_ids_are_refused(self, id: Any) -> None:
        endpoint = Endpoint()
        with pytest.raises(LocalProtocolError, match="id"):
            endpoint.send_request("m", id=id)
        assert endpoint.data_to_send() == [] and endpoint.calls_in_flight == 0


class TestResponseObject:
    """Spec section 5: replies to this side's calls."""

    def test_result_and_error_events(self) -> None:
        endpoint = Endpoint()
        ok, bad = endpoint.send_request("a"), endpoint.send_request("b")
        assert endpoint.calls_in_flight == 2
        endpoint.receive_data(
            b'{"jsonrpc":"2.0","error":{"code":-32601,"message":"nope","data":[1]},"id":2}\n'
            b'{"jsonrpc":"2.0","result":{"x":null},"id":1}\n'
        )
        events = endpoint.events_received()
        assert events == [
            ErrorReceived(bad, RpcMethodNotFoundError("nope", data=[1])),
            ResponseReceived(ok, {"x": None}),
        ]
        assert isinstance(events[0], ErrorReceived)
        assert type(events[0].error) is RpcMethodNotFoundError
        assert endpoint.calls_in_flight == 0

    def test_reply_to_unknown_id_is_reported_not_answered(self) -> None:
        endpoint = Endpoint()
        endpoint.send_request("m")
        endpoint.data_to_send()
        for id in (99, "zz", None, 1.5):
            endpoint.receive_data(line({"jsonrpc": "2.0", "result": 1, "id": id}))
            [event] = endpoint.events_received()
            assert isinstance(event, InvalidMessageReceived)
            assert isinstance(event.error, RemoteProtocolError)
            assert event.id == id and not event.fatal
        assert endpoint.data_to_send() == []
        assert endpoint.calls_in_flight == 1 and endpoint.state is State.OPEN

    def test_late_reply_after_cancel_is_dropped_quietly(self) -> None:
        endpoint = Endpoint()
        id = endpoint.send_request("slow")
        assert endpoint.cancel_call(id) is True
        endpoint.data_to_send()
        endpoint.receive_data(line({"jsonrpc": "2.0", "result": 1, "id": id}))
        endpoint.receive_data(
            line({"jsonrpc": "2.0", "error": {"code": 1, "message": "x"}, "id": id})
        )
        assert endpoint.events_received() == []
        assert endpoint.data_to_send() == []

    def test_duplicate_reply_is_dropped_quietly(self) -> None:
        endpoint = Endpoint()
        id = endpoint.send_request("m")
        endpoint.receive_data(line({"jsonrpc": "2.0", "result": 1, "id": id}) * 2)
        assert endpoint.events_received() == [ResponseReceived(id, 1)]

    @pytest.mark.parametrize(
        "text",
        [
            b'{"jsonrpc":"2.0","result":1}',  # no id
            b'{"jsonrpc":"2.0","result":1,"id":[1]}',
            b'{"jsonrpc":"2.0","error":{"code":1,"message":"m"},"id":{"a":1}}',
        ],
    )
    def test_response_without_usable_id_is_reported_not_answered(self, text: bytes) -> None:
        endpoint = Endpoint()
        endpoint.receive_data(text + b"\n")
        [event] = endpoint.events_received()
        assert isinstance(event, InvalidMessageReceived) and event.id is None
        assert endpoint.data_to_send() == []

    def test_result_and_null_error_is_read_as_a_result(self) -> None:
        endpoint = Endpoint()
        id = endpoint.send_request("m")
        endpoint.receive_data(line({"jsonrpc": "2.0", "result": 7, "error": None, "id": id}))
        assert endpoint.events_received() == [ResponseReceived(id, 7)]

    def test_result_and_error_is_read_as_an_error(self) -> None:
        endpoint = Endpoint()
        id = endpoint.send_request("m")
        endpoint.receive_data(
            line({"jsonrpc": "2.0", "result": None, "error": {"code": 5, "message": "x"}, "id": id})
        )
        assert endpoint.events_received() == [ErrorReceived(id, RpcError(5, "x"))]

    def test_response_without_jsonrpc_member_is_accepted(self) -> None:
        endpoint = Endpoint()
        id = endpoint.send_request("m")
        endpoint.receive_data(line({"result": 7, "id": id}))
        assert endpoint.events_received() == [ResponseReceived(id, 7)]

    @pytest.mark.parametrize(
        "error", [None, "text", 5, [], {"code": "1", "message": "m"}, {"message": "m"}]
    )
    def test_malformed_error_object_still_ends_the_call(self, error: Any) -> None:
        endpoint = Endpoint()
        id = endpoint.send_request("m")
        endpoint.receive_data(line({"jsonrpc": "2.0", "error": error, "id": id}))
        [event] = endpoint.events_received()
        assert isinstance(event, ErrorReceived) and event.id == id
        assert isinstance(event.error, RpcInternalError) and event.error.data == error


class TestNotification:
    """Spec section 4.1: "The Server MUST NOT reply to a Notification"."""

    def test_notification_event_and_no_reply(self) -> None:
        endpoint = Endpoint()
        events = feed(endpoint, line(notification("log", {"a": 1})) + line(notification("ping")))
        assert events == [NotificationReceived("log", {"a": 1}), NotificationReceived("ping", None)]
        assert endpoint.data_to_send() == []

    def test_params_null_is_absent_params(self) -> None:
        endpoint = Endpoint()
        endpoint.receive_data(b'{"jsonrpc":"2.0","method":"m","params":null}\n')
        assert endpoint.events_received() == [NotificationReceived("m", None)]

    def test_sending(self) -> None:
        endpoint = Endpoint()
        endpoint.send_notification("a")
        endpoint.send_notification("b", [1])
        endpoint.send_notification("c", {"k": 2})
        assert replies(endpoint) == [
            notification("a"),
            notification("b", [1]),
            notification("c", {"k": 2}),
        ]
        assert endpoint.calls_in_flight == 0


class TestParameterStructures:
    """Spec section 4.2: params are an Array (by position) or an Object (by name)."""

    def test_tuple_params_are_sent_as_an_array(self) -> None:
        endpoint = Endpoint()
        endpoint.send_request("m", (1, 2))  # type: ignore[arg-type]
        assert replies(endpoint)[0]["params"] == [1, 2]

    def test_list_subclass_is_accepted(self) -> None:
        class Args(list[Any]):
            pass

        endpoint = Endpoint()
        endpoint.send_notification("m", Args([1]))
        assert replies(endpoint)[0]["params"] == [1]

    @pytest.mark.parametrize("params", ["abc", 5, {1, 2}])
    def test_other_params_are_refused(self, params: Any) -> None:
        endpoint = Endpoint()
        with pytest.raises(LocalProtocolError, match="params"):
            endpoint.send_request("m", params)
        assert endpoint.calls_in_flight == 0 and endpoint.data_to_send() == []

    def test_named_params_are_refused_in_1_0(self) -> None:
        endpoint = Endpoint(JSONRPC_V1)
        with pytest.raises(LocalProtocolError, match="named"):
            endpoint.send_request("m", {"a": 1})
        with pytest.raises(LocalProtocolError, match="named"):
            endpoint.send_notification("m", {"a": 1})
        assert endpoint.calls_in_flight == 0 and endpoint.data_to_send() == []

    def test_non_json_params_do_not_leave_a_call_in_flight(self) -> None:
        endpoint = Endpoint()
        with pytest.raises(LocalProtocolError, match="JSON"):
            endpoint.send_request("m", [object()])
        with pytest.raises(LocalProtocolError, match="JSON"):
            endpoint.send_notification("m", [object()])
        assert endpoint.calls_in_flight == 0 and endpoint.data_to_send() == []
        assert endpoint.send_request("m") == 2  # id 1 was burnt, never reused while in flight


class TestCancellation:
    """The LSP convention (PROTOCOL.md): ``$/cancelRequest`` with params ``{"id": ...}``."""

    def test_cancel_call_sends_cancel_request_in_2_0(self) -> None:
        endpoint = Endpoint()
        id = endpoint.send_request("slow")
        endpoint.data_to_send()
        assert endpoint.cancel_call(id) is True
        assert replies(endpoint) == [notification("$/cancelRequest", {"id": id})]
        assert endpoint.calls_in_flight == 0
        assert endpoint.cancel_call(id) is False
        assert endpoint.data_to_send() == []

    def test_cancel_call_keeps_a_string_id(self) -> None:
        endpoint = Endpoint()
        endpoint.send_request("slow", id="abc")
        endpoint.data_to_send()
        endpoint.cancel_call("abc")
        assert replies(endpoint)[0]["params"] == {"id": "abc"}

    def test_cancel_call_without_notify(self) -> None:
        endpoint = Endpoint()
        id = endpoint.send_request("slow")
        endpoint.data_to_send()
        assert endpoint.cancel_call(id, notify=False) is True
        assert endpoint.data_to_send() == []

    def test_cancel_call_sends_nothing_in_1_0(self) -> None:
        endpoint = Endpoint(JSONRPC_V1)
        id = endpoint.send_request("slow", [])
        endpoint.data_to_send()
        assert endpoint.cancel_call(id) is True
        assert endpoint.data_to_send() == []

    def test_cancel_after_the_reply_returns_false(self) -> None:
        endpoint = Endpoint()
        id = endpoint.send_request("m")
        endpoint.receive_data(line({"jsonrpc": "2.0", "result": 1, "id": id}))
        assert endpoint.events_received() == [ResponseReceived(id, 1)]
        endpoint.data_to_send()
        assert endpoint.cancel_call(id) is False
        assert endpoint.data_to_send() == []

    def test_receiving_cancel_for_request_in_flight(self) -> None:
        endpoint = Endpoint()
        [req] = feed(endpoint, line(request("slow", [], "r1")))
        assert isinstance(req, RequestReceived)
        assert endpoint.is_cancelled(req) is False
        endpoint.receive_data(line(notification("$/cancelRequest", {"id": "r1"})))
        assert endpoint.events_received() == [CancelRequested(req)]
        assert endpoint.is_cancelled(req) is True
        # A second cancel for the same request says nothing new.
        endpoint.receive_data(line(notification("$/cancelRequest", {"id": "r1"})))
        assert endpoint.events_received() == []
        # The request must still be answered (-32800 when the work stops).
        from rpcbd import RpcCancelledError

        endpoint.send_error(req, RpcCancelledError())
        [reply] = replies(endpoint)
        assert reply["id"] == "r1" and reply["error"]["code"] == -32800
        assert endpoint.is_cancelled(req) is False

    @pytest.mark.parametrize("id", [7, "r1x", None, 1.5])
    def test_receiving_cancel_for_unknown_id_gives_nothing(self, id: Any) -> None:
        endpoint = Endpoint()
        feed(endpoint, line(request("slow", [], "r1")))
        endpoint.receive_data(line(notification("$/cancelRequest", {"id": id})))
        assert endpoint.events_received() == []
        assert endpoint.data_to_send() == []

    def test_receiving_cancel_after_the_answer_gives_nothing(self) -> None:
        endpoint = Endpoint()
        feed(endpoint, line(request("echo", [1], 4)), ECHO)
        endpoint.data_to_send()
        endpoint.receive_data(line(notification("$/cancelRequest", {"id": 4})))
        assert endpoint.events_received() == []
        assert endpoint.data_to_send() == []

    @pytest.mark.parametrize(
        "params", [None, [], [3], {"ID": 3}, {"id": [3]}, {"id": {"a": 1}}, {"id": True}]
    )
    def test_malformed_cancel_is_reported_never_answered(self, params: Any) -> None:
        endpoint = Endpoint()
        feed(endpoint, line(request("slow", [], 3)))
        endpoint.receive_data(line(notification("$/cancelRequest", params)))
        [event] = endpoint.events_received()
        assert isinstance(event, InvalidMessageReceived)
        assert isinstance(event.error, RemoteProtocolError) and not event.fatal
        assert endpoint.data_to_send() == []
        assert endpoint.requests_in_flight == 1

    def test_cancel_in_a_batch(self) -> None:
        endpoint = Endpoint()
        [req] = feed(endpoint, line(request("slow", [], 3)))
        endpoint.receive_data(line([notification("$/cancelRequest", {"id": 3})]))
        assert endpoint.events_received() == [CancelRequested(req)]  # type: ignore[arg-type]
        assert endpoint.data_to_send() == []


class TestBatch:
    """Spec section 6."""

    def test_reply_sent_only_after_every_member_is_answered(self) -> None:
        endpoint = Endpoint()
        batch = [request("echo", [i], i) for i in range(1, 4)] + [notification("n")]
        events = feed(endpoint, line(batch))
        reqs = only_requests(events)
        assert [r.id for r in reqs] == [1, 2, 3]
        assert NotificationReceived("n", None) in events
        endpoint.send_response(reqs[2], "c")
        assert endpoint.data_to_send() == []
        endpoint.send_error(reqs[0], RpcError(9, "a failed"))
        assert endpoint.data_to_send() == []
        endpoint.send_response(reqs[1], "b")
        [reply] = replies(endpoint)
        assert isinstance(reply, list)
        assert sorted(reply, key=lambda r: r["id"]) == [
            {"jsonrpc": "2.0", "error": {"code": 9, "message": "a failed"}, "id": 1},
            {"jsonrpc": "2.0", "result": "b", "id": 2},
            {"jsonrpc": "2.0", "result": "c", "id": 3},
        ]

    def test_only_notifications_get_no_reply(self) -> None:
        endpoint = Endpoint()
        events = feed(endpoint, line([notification("a"), notification("b", [1])]))
        assert len(events) == 2
        assert endpoint.data_to_send() == []

    def test_invalid_members_get_an_error_in_the_batch(self) -> None:
        endpoint = Endpoint()
        events = feed(
            endpoint,
            line([1, request("echo", ["x"], "q"), {"foo": "boo"}, notification("n")]),
            ECHO,
        )
        assert sum(isinstance(e, InvalidMessageReceived) for e in events) == 2
        [reply] = replies(endpoint)
        assert len(reply) == 3
        assert {"jsonrpc": "2.0", "result": "x", "id": "q"} in reply
        assert sorted(r["error"]["code"] for r in reply if "error" in r) == [-32600, -32600]

    def test_invalid_only_batch_is_sent_at_once(self) -> None:
        endpoint = Endpoint()
        endpoint.receive_data(b'[1,{"jsonrpc":"2.0","method":5,"id":3}]\n')
        assert len(endpoint.events_received()) == 2
        [reply] = replies(endpoint)
        assert [(r["error"]["code"], r["id"]) for r in reply] == [(-32600, None), (-32600, 3)]

    def test_empty_batch_is_one_error_not_an_array(self) -> None:
        endpoint = Endpoint()
        endpoint.receive_data(b"[]\n")
        [event] = endpoint.events_received()
        assert isinstance(event, InvalidMessageReceived)
        [reply] = replies(endpoint)
        assert reply["error"]["code"] == -32600 and reply["id"] is None

    def test_max_batch_size(self) -> None:
        endpoint = Endpoint(max_batch_size=3)
        feed(endpoint, line([request("echo", [i], i) for i in range(3)]), ECHO)
        [reply] = replies(endpoint)
        assert len(reply) == 3
        events = feed(endpoint, line([request("echo", [i], i) for i in range(4)]), ECHO)
        assert len(events) == 1 and isinstance(events[0], InvalidMessageReceived)
        [reply] = replies(endpoint)
        assert reply["error"]["code"] == -32600 and reply["id"] is None
        assert reply["error"]["data"] == {"reason": "batch too large", "limit": 3}

    def test_default_limits(self) -> None:
        assert DEFAULT_MAX_BATCH_SIZE == 1000
        assert DEFAULT_MAX_PENDING_REQUESTS == 128
        with pytest.raises(ValueError):
            Endpoint(max_batch_size=0)
        with pytest.raises(ValueError):
            Endpoint(max_pending_requests=0)

    def test_send_batch_and_receive_its_reply(self) -> None:
        pair = EndpointPair()
        ids = pair.a.send_batch(
            [("echo", [1], True), ("log", ["x"], False), ("echo", {"x": 2}, True)]
        )
        assert ids == [1, None, 2]
        _, events_b = pair.pump()
        assert [type(e) for e in events_b] == [
            RequestReceived,
            NotificationReceived,
            RequestReceived,
        ]
        assert pair.wire[0][1].startswith(b"[")
        reqs = only_requests(events_b)
        pair.b.send_response(reqs[1], "two")
        pair.b.send_response(reqs[0], "one")
        events_a, _ = pair.pump()
        assert events_a == [ResponseReceived(2, "two"), ResponseReceived(1, "one")]
        assert pair.a.data_to_send() == []  # a reply array is never answered

    def test_send_batch_errors(self) -> None:
        endpoint = Endpoint()
        with pytest.raises(LocalProtocolError, match="at least one"):
            endpoint.send_batch([])
        with pytest.raises(LocalProtocolError, match="JSON"):
            endpoint.send_batch([("a", [1], True), ("b", [object()], True)])
        with pytest.raises(LocalProtocolError, match="params"):
            endpoint.send_batch([("a", [1], True), ("b", "x", False)])  # type: ignore[list-item]
        assert endpoint.calls_in_flight == 0 and endpoint.data_to_send() == []
        with pytest.raises(LocalProtocolError, match="batches"):
            Endpoint(JSONRPC_V1).send_batch([("a", [], True)])

    def test_batch_of_responses_from_a_1_0_peer_is_invalid(self) -> None:
        endpoint = Endpoint(JSONRPC_V1)
        endpoint.send_request("m", [])
        endpoint.data_to_send()
        endpoint.receive_data(b'[{"result":1,"error":null,"id":1}]\n')
        [event] = endpoint.events_received()
        assert isinstance(event, InvalidMessageReceived)
        assert endpoint.calls_in_flight == 1


class TestErrorObject:
    """Spec section 5.1: the codes the endpoint sends by itself."""

    def test_parse_error(self) -> None:
        endpoint = Endpoint()
        endpoint.receive_data(b"{nope\n")
        [event] = endpoint.events_received()
        assert isinstance(event, InvalidMessageReceived) and isinstance(event.error, RpcParseError)
        [reply] = replies(endpoint)
        assert reply["error"]["code"] == -32700 and reply["id"] is None

    def test_invalid_request_keeps_a_readable_id(self) -> None:
        endpoint = Endpoint()
        endpoint.receive_data(b'{"jsonrpc":"2.0","method":"m","params":"x","id":"k"}\n')
        [event] = endpoint.events_received()
        assert isinstance(event, InvalidMessageReceived) and event.id == "k"
        assert isinstance(event.error, RpcInvalidError)
        [reply] = replies(endpoint)
        assert (reply["error"]["code"], reply["id"]) == (-32600, "k")

    def test_non_utf8_is_a_parse_error(self) -> None:
        endpoint = Endpoint()
        endpoint.receive_data(b'{"jsonrpc":"2.0","method":"\xff","id":1}\n')
        endpoint.events_received()
        [reply] = replies(endpoint)
        assert reply["error"]["code"] == -32700


class TestLifecycle:
    """Closing, end of stream, and sending on a closed endpoint."""

    def test_receive_eof_fails_every_call_in_flight(self) -> None:
        endpoint = Endpoint()
        ids = [endpoint.send_request("m"), endpoint.send_request("m", id="s")]
        ids += endpoint.send_batch([("m", [], True), ("n", [], False)])
        assert ids == [1, "s", 2, None]
        endpoint.receive_eof()
        [event] = endpoint.events_received()
        assert isinstance(event, ConnectionClosed)
        assert event.failed_calls == (1, "s", 2)
        assert event.by_peer is True
        assert isinstance(event.error, ConnectionClosedError)
        assert endpoint.state is State.CLOSED and endpoint.close_expected()
        assert endpoint.calls_in_flight == 0 and not endpoint.wants_data()

    def test_close_fails_every_call_in_flight(self) -> None:
        endpoint = Endpoint()
        id = endpoint.send_request("m")
        endpoint.close()
        [event] = endpoint.events_received()
        assert isinstance(event, ConnectionClosed)
        assert event.failed_calls == (id,) and event.by_peer is False
        assert isinstance(event.error, ConnectionClosedError)
        assert endpoint.cancel_call(id) is False  # it ended with the close
        assert endpoint.close_expected() and not endpoint.wants_data()

    def test_close_is_idempotent(self) -> None:
        endpoint = Endpoint()
        endpoint.close()
        endpoint.close()
        endpoint.receive_eof()
        events = endpoint.events_received()
        assert len(events) == 1 and isinstance(events[0], ConnectionClosed)

    def test_receive_eof_is_idempotent(self) -> None:
        endpoint = Endpoint()
        endpoint.receive_eof()
        endpoint.receive_eof()
        endpoint.close()
        assert len(endpoint.events_received()) == 1

    @pytest.mark.parametrize("how", ["close", "eof"])
    def test_send_after_close(self, how: str) -> None:
        endpoint = Endpoint()
        [req] = feed(endpoint, line(request("m", [], 1)))
        assert isinstance(req, RequestReceived)
        endpoint.close() if how == "close" else endpoint.receive_eof()
        with pytest.raises(LocalProtocolError):
            endpoint.send_request("m")
        with pytest.raises(LocalProtocolError):
            endpoint.send_notification("m")
        with pytest.raises(LocalProtocolError):
            endpoint.send_batch([("m", [], True)])
        with pytest.raises(LocalProtocolError):
            endpoint.send_response(req, 1)
        with pytest.raises(LocalProtocolError):
            endpoint.send_error(req, RpcError(1, "x"))
        assert endpoint.data_to_send() == []

    def test_data_after_close_is_dropped(self) -> None:
        endpoint = Endpoint()
        endpoint.close()
        endpoint.events_received()
        endpoint.receive_data(line(request("m", [], 1)))
        assert endpoint.events_received() == []
        assert endpoint.data_to_send() == []

    def test_eof_delivers_complete_frames_first(self) -> None:
        # The frames held back by max_pending_requests are read at end of stream: a last
        # notification (LSP's "exit") must not be lost. Requests beyond the bound get the
        # busy reply as usual.
        endpoint = Endpoint(max_pending_requests=1)
        endpoint.receive_data(
            line(request("a", [], 1)) + line(request("b", [], 2)) + line(notification("bye"))
        )
        endpoint.receive_eof()
        events = endpoint.events_received()
        assert [type(e) for e in events] == [
            RequestReceived,
            NotificationReceived,
            ConnectionClosed,
        ]
        [busy] = replies(endpoint)
        assert busy["id"] == 2 and busy["error"]["code"] == -32000

    def test_eof_inside_a_frame_is_reported(self) -> None:
        endpoint = Endpoint()
        endpoint.receive_data(b'{"jsonrpc":"2.0","method":"half')
        endpoint.receive_eof()
        first, last = endpoint.events_received()
        assert isinstance(first, InvalidMessageReceived) and first.fatal
        assert isinstance(first.error, FramingError)
        assert isinstance(last, ConnectionClosed) and last.by_peer

    def test_answer_twice_is_refused(self) -> None:
        endpoint = Endpoint()
        [req] = feed(endpoint, line(request("m", [], 1)))
        assert isinstance(req, RequestReceived)
        endpoint.send_response(req, 1)
        with pytest.raises(LocalProtocolError, match="answered already"):
            endpoint.send_response(req, 2)
        with pytest.raises(LocalProtocolError, match="answered already"):
            endpoint.send_error(req, RpcError(1, "x"))
        assert len(replies(endpoint)) == 1


def in_state(state: State) -> Endpoint:
    """A content-length endpoint in ``state`` (ERROR: the peer sent a header we cannot read)."""
    endpoint = Endpoint(framing="content-length")
    if state is State.ERROR:
        endpoint.receive_data(b"Content-Length: nope\r\n\r\n")
        endpoint.events_received()
    elif state is State.CLOSED:
        endpoint.close()
    endpoint.events_received()
    endpoint.data_to_send()
    assert endpoint.state is state
    return endpoint


GOOD_FRAME = get_framing("content-length").frame(b'{"jsonrpc":"2.0","method":"n"}')
BAD_FRAME = b"Content-Length: -1\r\n\r\n"


def apply(endpoint: Endpoint, input: Input) -> list[Event]:
    """Make ``input`` happen through the endpoint's public API; return the events."""
    if input is Input.SEND:
        endpoint.send_notification("n")
    elif input is Input.RECEIVE:
        endpoint.receive_data(GOOD_FRAME)
    elif input is Input.RECEIVE_EOF:
        endpoint.receive_eof()
    elif input is Input.CLOSE:
        endpoint.close()
    else:
        endpoint.receive_data(BAD_FRAME)
    return endpoint.events_received()


ALL_PAIRS = [(state, input) for state in State for input in Input]


class TestStateMachine:
    """core/state.py: every (State, Input) pair does what TRANSITIONS says, or raises."""

    @pytest.mark.parametrize(("state", "input"), ALL_PAIRS)
    def test_connection_state_table(self, state: State, input: Input) -> None:
        machine = ConnectionState()
        machine.state = state
        if (state, input) in TRANSITIONS:
            assert machine.process(input) is TRANSITIONS[state, input]
            assert machine.state is TRANSITIONS[state, input]
        else:
            expected = (
                RemoteProtocolError
                if (state, input) == (State.ERROR, Input.RECEIVE)
                else LocalProtocolError
            )
            with pytest.raises(expected):
                machine.process(input)
            assert machine.state is state  # an error state stays put

    def test_table_covers_each_state(self) -> None:
        assert {state for state, _ in TRANSITIONS} == set(State)
        assert set(TRANSITIONS.values()) <= set(State)

    @pytest.mark.parametrize(("state", "input"), ALL_PAIRS)
    def test_endpoint_follows_the_table(self, state: State, input: Input) -> None:
        endpoint = in_state(state)
        target = TRANSITIONS.get((state, input))
        if target is not None:
            apply(endpoint, input)
            assert endpoint.state is target
            return
        if input is Input.PROTOCOL_ERROR:
            # Unreachable through the API: after ERROR nothing is read (receiving raises),
            # after CLOSED bytes are dropped unread, so the framing cannot fail again.
            if state is State.ERROR:
                with pytest.raises(RemoteProtocolError):
                    apply(endpoint, input)
            else:
                apply(endpoint, input)
                assert endpoint.events_received() == []
            assert endpoint.state is state
            return
        expected = RemoteProtocolError if input is Input.RECEIVE else LocalProtocolError
        with pytest.raises(expected):
            apply(endpoint, input)
        assert endpoint.state is state

    def test_error_state_events_and_output(self) -> None:
        endpoint = Endpoint(framing="content-length")
        id = endpoint.send_request("m")
        endpoint.data_to_send()
        [req] = feed(
            endpoint, get_framing("content-length").frame(json.dumps(request("m", [], 9)).encode())
        )
        assert isinstance(req, RequestReceived)
        endpoint.receive_data(b"Content-Length: 1x\r\n\r\n" + GOOD_FRAME)
        [event] = endpoint.events_received()
        assert isinstance(event, InvalidMessageReceived) and event.fatal
        assert isinstance(event.error, FramingError) and not event.error.recoverable
        assert (
            endpoint.state is State.ERROR
            and endpoint.close_expected()
            and not endpoint.wants_data()
        )
        [reply] = replies(endpoint)
        assert reply["error"]["code"] == -32700 and reply["id"] is None
        with pytest.raises(LocalProtocolError):
            endpoint.send_response(req, 1)
        assert endpoint.cancel_call(id, notify=True) is True  # allowed, but nothing is sent
        assert endpoint.data_to_send() == []
        id2 = endpoint._outgoing.allocate("x")  # a call the runtime registered before
        endpoint.receive_eof()
        [closed] = endpoint.events_received()
        assert isinstance(closed, ConnectionClosed) and closed.failed_calls == (id2,)

    def test_error_state_then_close(self) -> None:
        endpoint = in_state(State.ERROR)
        endpoint.close()
        [event] = endpoint.events_received()
        assert isinstance(event, ConnectionClosed) and not event.by_peer
        assert endpoint.state is State.CLOSED


class TestLimits:
    """API.md section 8: max_message_size and max_pending_requests."""

    @pytest.mark.parametrize(
        "framing", ["newline", "content-length", "netstring", "length-prefix", None]
    )
    def test_oversized_message_gets_invalid_request_with_limit(self, framing: str | None) -> None:
        endpoint = Endpoint(framing=framing, max_message_size=64)
        big = json.dumps(request("echo", ["x" * 100], 1)).encode()
        small = json.dumps(request("echo", ["y"], 2)).encode()
        frame = (lambda p: p) if framing is None else get_framing(framing).frame
        events = feed(endpoint, frame(big), ECHO)
        if framing is not None:
            events += feed(endpoint, frame(small), ECHO)
        else:
            events += feed(endpoint, small, ECHO)
        bad = events[0]
        assert isinstance(bad, InvalidMessageReceived) and not bad.fatal
        assert isinstance(bad.error, MessageTooLargeError) and bad.error.limit == 64
        first, second = replies(endpoint)
        assert first["error"]["code"] == -32600 and first["id"] is None
        assert first["error"]["data"] == {"reason": "message too large", "limit": 64}
        assert second == {"jsonrpc": "2.0", "result": "y", "id": 2}
        assert endpoint.max_message_size == 64

    def test_unrecoverable_oversized_message_closes(self) -> None:
        endpoint = Endpoint(framing="json-stream", max_message_size=16)
        endpoint.receive_data(b'{"jsonrpc":"2.0","method":"' + b"x" * 40)
        [event] = endpoint.events_received()
        assert isinstance(event, InvalidMessageReceived) and event.fatal
        assert endpoint.close_expected()
        [reply] = replies(endpoint)
        assert reply["error"]["data"] == {"reason": "message too large", "limit": 16}

    def test_pending_bound_pauses_reading_without_own_calls(self) -> None:
        endpoint = Endpoint(max_pending_requests=2)
        endpoint.receive_data(b"".join(line(request("m", [i], i)) for i in range(1, 6)))
        first = endpoint.events_received()
        assert [e.id for e in only_requests(first)] == [1, 2]
        assert endpoint.requests_in_flight == 2 and endpoint.wants_data() is False
        assert endpoint.events_received() == []  # still paused: the frames stay buffered
        endpoint.send_response(only_requests(first)[0], "r1")
        assert endpoint.wants_data() is True
        second = only_requests(endpoint.events_received())
        assert [e.id for e in second] == [3]
        assert endpoint.wants_data() is False
        assert serve(endpoint, {"m": lambda i: f"r{i}"}) == []  # nothing new while paused
        endpoint.send_response(only_requests(first)[1], "r2")
        endpoint.send_response(second[0], "r3")
        seen = serve(endpoint, {"m": lambda i: f"r{i}"})
        assert [e.id for e in only_requests(seen)] == [4, 5]
        assert sorted(r["id"] for r in replies(endpoint)) == [1, 2, 3, 4, 5]
        assert endpoint.wants_data() is True

    def test_pending_bound_with_own_call_answers_busy(self) -> None:
        endpoint = Endpoint(max_pending_requests=1)
        my_call = endpoint.send_request("callback")
        endpoint.data_to_send()
        endpoint.receive_data(
            line(request("m", [], "a"))
            + line(request("m", [], "b"))
            + line(notification("still-read"))
            + line({"jsonrpc": "2.0", "result": "done", "id": my_call})
            + line(request("m", [], "c"))
        )
        events = endpoint.events_received()
        assert [type(e) for e in events] == [
            RequestReceived,
            NotificationReceived,
            ResponseReceived,
        ]
        assert endpoint.wants_data() is False  # the call ended: reading pauses at the bound
        busy = replies(endpoint)
        assert [r["id"] for r in busy] == ["b"]
        assert busy[0]["error"]["code"] == -32000
        assert busy[0]["error"]["data"] == {"reason": "too many requests in flight", "limit": 1}
        # "c" arrived after the call ended: held back, then served once "a" is answered.
        [req_a] = only_requests(events)
        endpoint.send_response(req_a, 1)
        [req_c] = endpoint.events_received()
        assert isinstance(req_c, RequestReceived) and req_c.id == "c"

    def test_pending_bound_with_own_call_keeps_wanting_data(self) -> None:
        endpoint = Endpoint(max_pending_requests=1)
        endpoint.send_request("callback")
        endpoint.receive_data(line(request("m", [], "a")))
        endpoint.events_received()
        assert endpoint.requests_in_flight == 1 and endpoint.wants_data() is True
        assert isinstance(RpcServerBusyError(), RpcError) and RpcServerBusyError.code == -32000


class TestMessageMode:
    """framing=None: whole messages in and out (WebSocket)."""

    def test_receive_message_bytes_and_str(self) -> None:
        endpoint = Endpoint(framing=None)
        assert endpoint.framing is None
        endpoint.receive_message(json.dumps(request("echo", ["é"], 1)).encode())
        endpoint.receive_message(json.dumps(request("echo", ["ü"], 2), ensure_ascii=False))
        serve(endpoint, ECHO)
        out = endpoint.data_to_send()
        assert len(out) == 2
        assert [json.loads(m) for m in out] == [
            {"jsonrpc": "2.0", "result": "é", "id": 1},
            {"jsonrpc": "2.0", "result": "ü", "id": 2},
        ]
        assert all(not m.endswith(b"\n") for m in out)

    def test_one_message_per_item(self) -> None:
        endpoint = Endpoint(framing=None)
        endpoint.send_request("a")
        endpoint.send_notification("b")
        out = endpoint.data_to_send()
        assert [json.loads(m)["method"] for m in out] == ["a", "b"]
        assert endpoint.bytes_to_send == 0

    def test_str_that_is_not_unicode_is_a_parse_error(self) -> None:
        endpoint = Endpoint(framing=None)
        endpoint.receive_message('{"jsonrpc":"2.0","method":"\ud800","id":1}')
        [event] = endpoint.events_received()
        assert isinstance(event, InvalidMessageReceived) and isinstance(event.error, RpcParseError)
        [reply] = replies(endpoint)
        assert reply["error"]["code"] == -32700

    def test_wrong_receive_method_is_refused(self) -> None:
        with pytest.raises(LocalProtocolError, match="receive_message"):
            Endpoint(framing=None).receive_data(b"{}")
        with pytest.raises(LocalProtocolError, match="receive_data"):
            Endpoint().receive_message(b"{}")

    def test_message_after_close_is_dropped_and_eof_works(self) -> None:
        endpoint = Endpoint(framing=None)
        endpoint.receive_message(json.dumps(notification("n")))
        endpoint.receive_eof()
        events = endpoint.events_received()
        assert [type(e) for e in events] == [NotificationReceived, ConnectionClosed]
        endpoint.receive_message("{}")
        assert endpoint.events_received() == []

    def test_pair(self) -> None:
        pair = EndpointPair(framing=None)
        id = pair.a.send_request("echo", ["hi"])
        _, events_b = pair.pump()
        [req] = only_requests(events_b)
        answer(pair.b, req, ECHO)
        events_a, _ = pair.pump()
        assert events_a == [ResponseReceived(id, "hi")]
        assert [sender for sender, _ in pair.wire] == ["a", "b"]


class TestSendResponse:
    def test_non_json_result_leaves_the_request_answerable(self) -> None:
        endpoint = Endpoint()
        [req] = feed(endpoint, line(request("m", [], 1)))
        assert isinstance(req, RequestReceived)
        with pytest.raises(LocalProtocolError, match="JSON"):
            endpoint.send_response(req, object())
        assert endpoint.requests_in_flight == 1 and endpoint.data_to_send() == []
        with pytest.raises(LocalProtocolError, match="JSON"):
            endpoint.send_error(req, RpcError(1, "bad data", data={1, 2}))
        endpoint.send_error(req, RpcInternalError())
        [reply] = replies(endpoint)
        assert reply["error"]["code"] == -32603 and reply["id"] == 1
        assert endpoint.requests_in_flight == 0

    def test_non_json_result_in_a_batch(self) -> None:
        endpoint = Endpoint()
        reqs = only_requests(feed(endpoint, line([request("m", [], 1), request("m", [], 2)])))
        with pytest.raises(LocalProtocolError):
            endpoint.send_response(reqs[0], {1j: 2})
        endpoint.send_response(reqs[1], 2)
        assert endpoint.data_to_send() == []
        endpoint.send_error(reqs[0], RpcInternalError())
        [reply] = replies(endpoint)
        assert sorted(("error" in r, r["id"]) for r in reply) == [(False, 2), (True, 1)]

    def test_nan_result_is_sent_as_null(self) -> None:
        endpoint = Endpoint()
        [req] = feed(endpoint, line(request("m", [], 1)))
        assert isinstance(req, RequestReceived)
        endpoint.send_response(req, float("nan"))
        assert replies(endpoint) == [{"jsonrpc": "2.0", "result": None, "id": 1}]


class TestTrace:
    def test_trace_sees_both_directions(self) -> None:
        seen: list[tuple[str, bytes]] = []
        endpoint = Endpoint(trace=lambda direction, payload: seen.append((direction, payload)))
        id = endpoint.send_request("ping")
        endpoint.receive_data(line({"jsonrpc": "2.0", "result": "pong", "id": id}) + b"oops\n")
        endpoint.events_received()
        assert [d for d, _ in seen] == ["-->", "<--", "<--", "-->"]
        assert json.loads(seen[0][1]) == request("ping", None, id)
        assert not seen[0][1].endswith(b"\n")  # the payload, not the frame
        assert seen[2][1] == b"oops"
        assert json.loads(seen[3][1])["error"]["code"] == -32700


class TestProperties:
    def test_read_only_properties(self) -> None:
        endpoint = Endpoint(JSONRPC_V1, "lsp")
        assert endpoint.dialect is JSONRPC_V1
        assert endpoint.framing is FRAMINGS["content-length"]
        assert endpoint.state is State.OPEN
        assert Endpoint().dialect is JSONRPC_V2
        assert endpoint.bytes_to_send == 0
        endpoint.send_notification("x")
        assert endpoint.bytes_to_send == len(b"".join(endpoint.data_to_send())) > 0
        assert endpoint.data_to_send() == []

    def test_unknown_framing(self) -> None:
        with pytest.raises(ValueError, match="unknown framing"):
            Endpoint(framing="smoke-signals")


@pytest.mark.parametrize("framing", sorted(FRAMINGS))
class TestEndpointPair:
    """Both directions at once over every framing: the connection is symmetric."""

    def test_calls_both_ways_with_replies_split_anywhere(self, framing: str) -> None:
        pair = EndpointPair(framing)
        id_a = pair.a.send_request("echo", ["from a"])
        id_b = pair.b.send_request("echo", {"x": "from b"})
        pair.a.send_notification("note", ["n"])
        events_a, events_b = pair.pump()
        [req_at_a] = only_requests(events_a)
        assert req_at_a.params == {"x": "from b"}
        assert NotificationReceived("note", ["n"]) in events_b
        pair.a.send_response(req_at_a, "to b")
        [req_at_b] = only_requests(events_b)
        pair.b.send_response(req_at_b, "to a")
        # Deliver b's reply one byte at a time: every deframer handles any split.
        data = b"".join(pair.b.data_to_send())
        for i in range(len(data)):
            pair.a.receive_data(data[i : i + 1])
        events_a, events_b = pair.pump()
        assert events_a == [ResponseReceived(id_a, "to a")]
        assert events_b == [ResponseReceived(id_b, "to b")]
        pair.a.close()
        pair.b.receive_eof()
        assert [type(e) for e in pair.a.events_received()] == [ConnectionClosed]
        assert [type(e) for e in pair.b.events_received()] == [ConnectionClosed]


class TestMoreLimits:
    """max_calls_in_flight, max_nesting_depth and partial frames."""

    def test_max_calls_in_flight(self) -> None:
        endpoint = Endpoint(max_calls_in_flight=2)
        first = endpoint.send_request("a")
        assert endpoint.can_send_request is True
        endpoint.send_request("b")
        assert endpoint.can_send_request is False
        with pytest.raises(LocalProtocolError, match="max_calls_in_flight"):
            endpoint.send_request("c")
        with pytest.raises(LocalProtocolError, match="max_calls_in_flight"):
            endpoint.send_batch([("c", [], True), ("d", [], False)])
        assert endpoint.send_batch([("only", [], False)]) == [None]  # notifications need no room
        endpoint.send_notification("still fine")
        assert endpoint.calls_in_flight == 2
        endpoint.receive_data(line({"jsonrpc": "2.0", "result": 1, "id": first}))
        endpoint.events_received()
        assert endpoint.can_send_request is True
        assert endpoint.send_request("c") == 3
        with pytest.raises(ValueError):
            Endpoint(max_calls_in_flight=0)

    def test_max_nesting_depth(self) -> None:
        endpoint = Endpoint(max_nesting_depth=3)
        ok = b'{"jsonrpc":"2.0","method":"echo","params":[[1]],"id":1}\n'
        too_deep = b'{"jsonrpc":"2.0","method":"echo","params":[[[1]]],"id":2}\n'
        events = feed(endpoint, ok + too_deep, ECHO)
        assert isinstance(events[1], InvalidMessageReceived)
        bad, good = replies(endpoint)  # the error is queued while reading, before the answer
        assert good == {"jsonrpc": "2.0", "result": [1], "id": 1}
        assert (bad["error"]["code"], bad["id"]) == (-32600, None)
        assert bad["error"]["data"] == {"reason": "nesting too deep", "limit": 3}
        with pytest.raises(ValueError):
            Endpoint(max_nesting_depth=0)

    @pytest.mark.parametrize("depth", [600, 1000, 100000])
    def test_very_deep_nesting_is_refused_never_a_recursion_error(self, depth: int) -> None:
        endpoint = Endpoint(max_message_size=1 << 20)
        events = feed(endpoint, b"[" * depth + b"]" * depth + b"\n", ECHO)
        assert [type(e) for e in events] == [InvalidMessageReceived]
        [reply] = replies(endpoint)
        assert reply["error"]["code"] in (-32600, -32700) and reply["id"] is None

    def test_partial_message_pending(self) -> None:
        endpoint = Endpoint()
        assert endpoint.partial_message_pending is False
        endpoint.receive_data(b'{"jsonrpc":"2.0",')
        endpoint.events_received()
        assert endpoint.partial_message_pending is True
        endpoint.receive_data(b'"method":"n"}\n')
        assert endpoint.events_received() == [NotificationReceived("n", None)]
        assert endpoint.partial_message_pending is False
        message_endpoint = Endpoint(framing=None)
        message_endpoint.receive_message(b"{}")
        assert message_endpoint.partial_message_pending is False

    def test_message_queue_counts_what_it_holds(self) -> None:
        endpoint = Endpoint(framing=None, max_message_size=10)
        queue = endpoint._deframer
        endpoint.receive_message(b'{"a":1}')
        endpoint.receive_message(b"x" * 11)  # too large: not held
        assert queue.buffered == 7
        assert queue.feed_eof() is None
        endpoint.events_received()
        assert queue.buffered == 0

    def test_failed_batch_with_a_notification_first_leaves_nothing_in_flight(self) -> None:
        endpoint = Endpoint()
        with pytest.raises(LocalProtocolError):
            endpoint.send_batch([("n", [1], False), ("a", [1], True), ("b", [object()], True)])
        assert endpoint.calls_in_flight == 0 and endpoint.data_to_send() == []

    def test_eof_after_an_unread_fatal_frame(self) -> None:
        endpoint = Endpoint(framing="content-length")
        id = endpoint.send_request("m")
        endpoint.data_to_send()
        endpoint.receive_data(b"Content-Length: nope\r\n\r\n")
        endpoint.receive_eof()  # the frames are read first: the framing error comes out
        bad, closed = endpoint.events_received()
        assert isinstance(bad, InvalidMessageReceived) and bad.fatal
        assert isinstance(closed, ConnectionClosed) and closed.failed_calls == (id,)
        assert endpoint.state is State.CLOSED


class TestEventsInBatches:
    def test_a_limit_cuts_the_events_of_one_read_into_batches(self) -> None:
        endpoint = Endpoint()
        endpoint.receive_data(
            b"".join(b'{"jsonrpc":"2.0","method":"tick","params":[%d]}\n' % i for i in range(10))
        )
        batches = []
        while batch := endpoint.events_received(4):
            batches.append([event.params for event in batch])  # type: ignore[attr-defined]
        assert batches == [[[0], [1], [2], [3]], [[4], [5], [6], [7]], [[8], [9]]]
        assert endpoint.wants_data()

    def test_a_batch_message_is_never_split(self) -> None:
        # The limit stops parsing between messages; one JSON-RPC batch gives all its events.
        endpoint = Endpoint()
        batch = b",".join(b'{"jsonrpc":"2.0","method":"n%d"}' % i for i in range(5))
        endpoint.receive_data(b"[" + batch + b']\n{"jsonrpc":"2.0","method":"after"}\n')
        first = endpoint.events_received(2)
        assert [event.method for event in first] == ["n0", "n1", "n2", "n3", "n4"]  # type: ignore[attr-defined]
        assert [event.method for event in endpoint.events_received(2)] == ["after"]  # type: ignore[attr-defined]
        assert endpoint.events_received(2) == []
