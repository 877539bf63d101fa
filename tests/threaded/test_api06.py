"""The rest of rpcbd 0.6's API (API.md section 2b): groups, dispatchers, proxies."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from rpcbd import (
    JSONRPC_V1,
    JSONRPC_V2,
    Handler,
    RpcError,
    RpcMethodNotFoundError,
    ThreadedPeer,
    ThreadedTCPJsonRpcPeer,
)

from .helpers import Service


class Foo(Handler):
    assume_methods_block = False

    def echo(self, x: Any) -> Any:
        return ["foo", x]


class Bar(Handler):
    assume_methods_block = False

    def echo(self, x: Any) -> Any:
        return ["bar", x]

    def only_bar(self) -> str:
        return "bar"


def test_prefixes_groups_and_dispatcher_order() -> None:
    server = ThreadedTCPJsonRpcPeer(JSONRPC_V2)
    client = ThreadedTCPJsonRpcPeer(JSONRPC_V2)
    try:
        first = server.create_standard_dispatcher(numthreads=2, maxqueue=10)
        first.add_handler_class(Foo, prefix="foo")
        first.add_handler_class(Bar)
        with pytest.raises(ValueError, match="already registered"):
            first.add_handler_class(Bar)
        second = server.create_standard_dispatcher()
        second.add_handler_class(Foo)
        group = server.create_connection_group("main")
        group.add_dispatcher(first)
        group.add_dispatcher(second)
        listener = server.listen_tcp(0, connection_group=group)
        connection = client.connect_tcp("127.0.0.1", listener.port)
        assert connection.request.foo.echo(1) == ["foo", 1]
        assert connection.request.echo(2) == ["bar", 2]  # the first dispatcher wins
        assert connection.request.only_bar() == "bar"
        assert connection.connection_group is client.default_outgoing_connection_group
        assert server.connections[0].connection_group is group
    finally:
        client.shutdown()
        server.shutdown()


def test_default_groups_are_settable_only_to_own_groups() -> None:
    peer = ThreadedPeer()
    other = ThreadedPeer()
    try:
        mine = peer.create_connection_group("mine")
        peer.default_incoming_connection_group = mine
        assert peer.default_incoming_connection_group is mine
        with pytest.raises(ValueError):
            peer.default_outgoing_connection_group = other.create_connection_group("theirs")
        with pytest.raises(ValueError):
            mine.add_dispatcher(other.create_standard_dispatcher())
    finally:
        peer.shutdown()
        other.shutdown()


def test_default_handler_serves_calls_back_over_client_connections() -> None:
    class Back(Handler):
        assume_methods_block = False

        def whoami(self) -> str:
            return "client"

    class Front(Handler):
        def ask(self) -> Any:
            return self.connection.request.whoami()

    server = ThreadedTCPJsonRpcPeer(JSONRPC_V2, default_handler=Front)
    client = ThreadedTCPJsonRpcPeer(JSONRPC_V2, default_handler=Back)
    try:
        connection = client.connect_tcp("127.0.0.1", server.listen_tcp(0).port)
        assert connection.request.ask() == "client"
    finally:
        client.shutdown()
        server.shutdown()


def test_async_proxy_reports_results_and_errors() -> None:
    server = ThreadedPeer(default_handler=Service)
    client = ThreadedPeer()
    try:
        connection = client.connect(server.listen("tcp://127.0.0.1:0").url)
        results: dict[Any, Any] = {}
        done = threading.Event()

        def handler(key: Any, value: Any) -> None:
            results[key] = value
            if len(results) == 3:
                done.set()

        proxy = connection.create_async_proxy(handler)
        k1 = proxy.add(1, 2)
        k2 = proxy("divide")(1, 0)
        k3 = proxy.echo("x")
        assert len({k1, k2, k3}) == 3
        assert done.wait(10)
        assert results[k1] == 3 and results[k3] == "x"
        assert isinstance(results[k2], RpcError) and results[k2].code == -32603
    finally:
        client.shutdown()
        server.shutdown()


def test_batched_calls_proxy_blocking_and_with_handler() -> None:
    server = ThreadedPeer(default_handler=Service)
    client = ThreadedPeer()
    try:
        connection = client.connect(server.listen("tcp://127.0.0.1:0").url)
        batch = connection.create_batchedcalls_proxy()
        assert batch.request.add(1, 2) == 0
        batch.notification.echo("ignored")
        assert batch.request.nothing() == 1
        assert batch.request.echo("z") == 2
        results = batch.send()
        assert results is not None
        assert results[0] == 3 and results[2] == "z"
        assert isinstance(results[1], RpcMethodNotFoundError)
        batch.reset()
        batch.request.add(5, 5)
        got: list[Any] = []
        done = threading.Event()
        assert batch.send(lambda r: (got.append(r), done.set())) is None
        assert done.wait(10)
        assert got == [(10,)]
    finally:
        client.shutdown()
        server.shutdown()


def test_jsonrpc_v1_peers() -> None:
    server = ThreadedTCPJsonRpcPeer(JSONRPC_V1, default_handler=Service)
    client = ThreadedTCPJsonRpcPeer(JSONRPC_V1)
    try:
        connection = client.connect_tcp("127.0.0.1", server.listen_tcp(0).port)
        assert connection.request.add(2, 3) == 5
        with pytest.raises(RpcError) as info:
            connection.request.fail(7, "seven", [1])
        assert (info.value.code, info.value.data) == (7, [1])
        with pytest.raises(RuntimeError):  # LocalProtocolError: no named params in 1.0
            connection.request.add(a=1, b=2)
        assert connection.request.echo("still open") == "still open"
    finally:
        client.shutdown()
        server.shutdown()


def test_connection_attributes() -> None:
    server = ThreadedPeer(default_handler=Service)
    client = ThreadedPeer(default_timeout=12)
    try:
        listener = server.listen("tcp://127.0.0.1:0")
        assert listener.address == ("127.0.0.1", listener.port)
        connection = client.connect(listener.url, timeout=3)
        assert connection.description == listener.url
        assert connection.default_timeout == 3
        with connection:
            assert not connection.closed
        assert connection.closed
    finally:
        client.shutdown()
        server.shutdown()
