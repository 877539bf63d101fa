"""The endpoint's fast paths change nothing a caller can see (hypothesis).

An endpoint builds the events of common JSON-RPC 2.0 messages straight from their members
(``_common_shape``) and frames its newline output inline. A second endpoint with both
switched off (``_common_shape = None``, ``_newline = False``: every message goes through
``JsonRpc2.decode`` and ``NewlineFraming.frame``) gets the same input; both must report
the same events and send the same bytes.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rpcbd.core import Endpoint, RequestReceived
from rpcbd.exceptions import LocalProtocolError
from tests.codecs.test_fast_paths import MEMBER_VALUES, MESSAGES

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

IDS = st.one_of(st.integers(0, 6), st.sampled_from(["s", "t", 1.0, None, True]))
COMMON = st.one_of(
    st.builds(
        lambda id, method, params: {"jsonrpc": "2.0", "id": id, "method": method, "params": params},
        IDS,
        st.sampled_from(["echo", "$/cancelRequest", "é"]),
        st.one_of(st.lists(MEMBER_VALUES, max_size=2), st.fixed_dictionaries({"id": IDS})),
    ),
    st.builds(
        lambda method, params: {"jsonrpc": "2.0", "method": method, "params": params},
        st.sampled_from(["log", "$/cancelRequest"]),
        st.one_of(st.lists(MEMBER_VALUES, max_size=2), st.fixed_dictionaries({"id": IDS})),
    ),
    st.builds(
        lambda id, result: {"jsonrpc": "2.0", "result": result, "id": id}, IDS, MEMBER_VALUES
    ),
)
PAYLOADS = st.one_of(
    COMMON.map(json.dumps),
    MESSAGES.map(json.dumps),
    st.lists(st.one_of(COMMON, MESSAGES), max_size=3).map(json.dumps),
    st.sampled_from(["", "{", "[]", '{"a":"\\n"}', "[[[[1]]]]"]),
)


def comparable(value: Any) -> Any:
    """Events and the errors inside them as plain values (exceptions compare by identity)."""
    if isinstance(value, BaseException):
        return (type(value), str(value), getattr(value, "code", None), getattr(value, "data", 0))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.fields(value)
        return (type(value), *(comparable(getattr(value, field.name)) for field in fields))
    if isinstance(value, tuple):
        return tuple(comparable(item) for item in value)
    return value


def exchange(endpoint: Endpoint, payloads: list[str], chunked: bool) -> list[Any]:
    """Calls out, the payloads in, every request answered: what came out, in order."""
    seen: list[Any] = []
    for method in ("a", "b", "c"):
        endpoint.send_request(method, [1])
    endpoint.send_request("d", None, id="s")
    stream = b"".join(payload.encode() + b"\n" for payload in payloads)
    chunks = [stream[i : i + 7] for i in range(0, len(stream), 7)] if chunked else [stream]
    for chunk in chunks:
        endpoint.receive_data(chunk)
        events = endpoint.events_received()
        seen.append([comparable(event) for event in events])
        for event in events:
            if isinstance(event, RequestReceived):
                try:
                    endpoint.send_response(event, event.params)
                except LocalProtocolError as exc:  # answered already: a reused id
                    seen.append(comparable(exc))
        seen.append(endpoint.data_to_send())
    endpoint.receive_eof()
    seen.append([comparable(event) for event in endpoint.events_received()])
    return seen


def general_endpoint(bound: int) -> Endpoint:
    endpoint = Endpoint(max_pending_requests=bound, max_nesting_depth=3)
    endpoint._common_shape = None
    endpoint._newline = False
    return endpoint


class TestEndpointFastPaths:
    @SETTINGS
    @given(
        payloads=st.lists(PAYLOADS, min_size=1, max_size=6),
        chunked=st.booleans(),
        bound=st.integers(1, 3),
    )
    def test_same_events_and_bytes_as_the_general_path(
        self, payloads: list[str], chunked: bool, bound: int
    ) -> None:
        fast = exchange(
            Endpoint(max_pending_requests=bound, max_nesting_depth=3), payloads, chunked
        )
        general = exchange(general_endpoint(bound), payloads, chunked)
        assert fast == general

    def test_fast_path_is_on_for_the_2_0_dialect_and_newline_framing(self) -> None:
        endpoint = Endpoint()
        assert endpoint._common_shape is not None
        assert endpoint._newline

    def test_newline_in_a_payload_is_still_refused(self) -> None:
        # orjson copies an orjson.Fragment as it is; the inline framing keeps frame()'s check.
        orjson = pytest.importorskip("orjson")
        endpoint = Endpoint()
        with pytest.raises(ValueError, match="newline"):
            endpoint.send_notification("m", [orjson.Fragment(b"{\n}")])


def test_endpoint_bench_runs() -> None:
    # benchmarks/endpoint_bench.py measures these rounds; a few of each keep it runnable.
    from benchmarks.endpoint_bench import measure
    from rpcbd.codecs.serializer import StdlibSerializer

    for framing in ("newline", "content-length"):
        result = measure(StdlibSerializer(), framing, number=5, repeat=1)
        assert set(result) == {"client", "server", "notification", "floor"}
        assert all(value > 0 for value in result.values())
