"""Security: what the wire can reach, what error replies reveal, and safe defaults.

- Method exposure: dunder names, private names, names inherited from Handler, non-callable
  attributes and attribute paths are unreachable from the wire (-32601), with or without a
  prefix, and probing them has no side effect.
- Error replies carry no tracebacks, local paths or reprs of internals.
- Implicit callbacks are callable only from their own connection, only while the call is
  in flight.
- Defaults: listening binds loopback; TLS clients verify certificates; WebSocket servers
  check origins and can authenticate the handshake.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import stat
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from rpcbd import (
    Handler,
    RpcError,
    ThreadedPeer,
    ThreadedTCPJsonRpcPeer,
    hidden,
    mayblock,
)

from .helpers import RawClient, require_scheme, wait_until


class Exposed(Handler):
    """A handler with one of everything that must not be reachable."""

    assume_methods_block = False
    secret_value = 42
    settings: dict[str, Any] = {"password": "hunter2"}

    def echo(self, value: Any) -> Any:
        return value

    def add(self, a: int, b: int) -> int:
        return a + b

    def _private(self) -> str:
        return "private reached"

    def __secret(self) -> str:
        return "mangled reached"

    @hidden
    def hidden_method(self) -> str:
        return "hidden reached"

    def on_connect(self) -> None:
        Exposed.connects += 1

    connects = 0

    def boom(self) -> None:
        # The message names a local path and a repr: neither may reach the wire.
        raise ValueError(f"failed in /work/secret/file.py with {object()!r}")

    def type_error_inside(self) -> None:
        len(5)  # type: ignore[arg-type]

    def not_json(self) -> Any:
        return object()

    def rpc_error(self) -> None:
        raise RpcError(-32001, "a message the handler chose", {"ok": True})


#: Names that must all be -32601 (after the prefix, if any).
UNREACHABLE = [
    "__init__",
    "__class__",
    "__dict__",
    "__getattribute__",
    "__reduce__",
    "__init_subclass__",
    "__subclasshook__",
    "__del__",
    "_private",
    "_Exposed__secret",
    "__secret",
    "hidden_method",
    "on_connect",
    "on_disconnect",
    "connection",
    "assume_methods_block",
    "secret_value",
    "settings",
    "connects",
    "echo.__globals__",
    "echo.__code__",
    "echo.__self__",
    "connection.close",
    "connection.request",
    "__class__.__init__",
    "__class__.__base__.__subclasses__",
    "add.__defaults__",
    "ECHO",
    " echo",
    "echo ",
    "echo\u0000",
    "echo/",
    "",
    ".",
    "rpc.callback.00000000-0000-0000-0000-000000000000",
]


@pytest.fixture
def server() -> Iterator[ThreadedPeer]:
    Exposed.connects = 0
    peer = ThreadedPeer(default_handler=Exposed)
    try:
        yield peer
    finally:
        peer.shutdown(timeout=5)


@pytest.fixture
def raw(server: ThreadedPeer) -> Iterator[RawClient]:
    listener = server.listen("tcp://127.0.0.1:0")
    with RawClient(("127.0.0.1", listener.port)) as client:
        yield client


class TestMethodExposure:
    @pytest.mark.parametrize("name", UNREACHABLE)
    def test_unreachable(self, raw: RawClient, name: str) -> None:
        reply = raw.call({"jsonrpc": "2.0", "method": name, "params": [], "id": 1})
        assert reply["error"]["code"] == -32601, reply
        # No side effect: the connection is still open and serving.
        assert raw.call({"jsonrpc": "2.0", "method": "echo", "params": [1], "id": 2})["result"] == 1

    def test_unreachable_as_notifications_too(self, server: ThreadedPeer, raw: RawClient) -> None:
        for name in UNREACHABLE:
            raw.send_json({"jsonrpc": "2.0", "method": name, "params": []})
        # Nothing was answered (notifications), nothing ran, the connection is fine.
        reply = raw.call({"jsonrpc": "2.0", "method": "echo", "params": ["still"], "id": 3})
        assert reply == {"jsonrpc": "2.0", "result": "still", "id": 3}
        assert Exposed.connects == 1  # on_connect ran once, for the connection, not the wire

    def test_unreachable_with_a_prefix(self) -> None:
        peer = ThreadedPeer()
        try:
            dispatcher = peer.create_standard_dispatcher(numthreads=1)
            dispatcher.add_handler_class(Exposed, prefix="svc")
            group = peer.create_connection_group("prefixed")
            group.add_dispatcher(dispatcher)
            listener = peer.listen("tcp://127.0.0.1:0", connection_group=group)
            with RawClient(("127.0.0.1", listener.port)) as client:
                ok = client.call({"jsonrpc": "2.0", "method": "svc.echo", "params": [5], "id": 0})
                assert ok["result"] == 5
                for name in [*UNREACHABLE, "echo", "svc", "svc."]:
                    wire = name if name in ("svc", "svc.") else f"svc.{name}"
                    if name == "echo":
                        wire = "echo"  # the unprefixed name is not served either
                    reply = client.call({"jsonrpc": "2.0", "method": wire, "id": 1})
                    assert reply["error"]["code"] == -32601, (wire, reply)
        finally:
            peer.shutdown(timeout=5)

    def test_exposed_methods_still_work(self, raw: RawClient) -> None:
        assert (
            raw.call({"jsonrpc": "2.0", "method": "add", "params": [2, 3], "id": 1})["result"] == 5
        )
        reply = raw.call({"jsonrpc": "2.0", "method": "add", "params": {"a": 1, "b": 2}, "id": 2})
        assert reply["result"] == 3


#: What an error reply must never contain.
FORBIDDEN = (b"Traceback", b'File "', b"/work", b"<", b"object at 0x", b"site-packages")


class TestErrorRepliesRevealNothing:
    def test_scan_every_error_reply(self, server: ThreadedPeer, raw: RawClient) -> None:
        requests: list[bytes] = [
            # handler exceptions
            b'{"jsonrpc":"2.0","method":"boom","id":1}',
            b'{"jsonrpc":"2.0","method":"type_error_inside","id":2}',
            b'{"jsonrpc":"2.0","method":"not_json","id":3}',
            # bad params
            b'{"jsonrpc":"2.0","method":"add","params":[1],"id":4}',
            b'{"jsonrpc":"2.0","method":"add","params":[1,2,3],"id":5}',
            b'{"jsonrpc":"2.0","method":"add","params":{"a":1,"zzz":2},"id":6}',
            b'{"jsonrpc":"2.0","method":"echo","params":"str","id":8}',
            # bad input
            b"not json at all",
            b'{"jsonrpc":"2.0","method":"echo","params":["\xff\xfe"],"id":9}',
            b"[" * 100_000,
            b"{" * 2000 + b"}" * 2000,
            b'{"jsonrpc":"2.0","method":"echo","params":[NaN],"id":11}',
            b'{"jsonrpc":"2.0","method":"echo","params":["\\ud800"],"id":12}',
            b"[]",
            b'[1,2,{"jsonrpc":"2.0"}]',
            b'{"jsonrpc":"2.0","method":"nope","id":13}',
            b'{"jsonrpc":"2.0","method":"__class__.__init__","id":14}',
            b'{"jsonrpc":"2.0","result":1,"id":99}',
        ]
        replies: list[bytes] = []
        for request in requests:
            raw.send(request + b"\n")
            if request.startswith(b'{"jsonrpc":"2.0","result"'):
                continue  # a stray reply is logged, never answered
            line = raw.read_line()
            replies.append(line)
        for request, line in zip(
            [r for r in requests if b'"result"' not in r], replies, strict=True
        ):
            for word in FORBIDDEN:
                assert word not in line, (request[:80], line)
            reply = json.loads(line)
            errors = reply if isinstance(reply, list) else [reply]
            for error in errors:
                assert "error" in error and isinstance(error["error"]["code"], int), line
        codes = [json.loads(line) for line in replies]
        assert codes[0]["error"] == {"code": -32603, "message": "Internal error"}
        assert codes[1]["error"]["code"] == -32603  # a TypeError inside is not -32602
        assert codes[3]["error"]["code"] == -32602

    def test_handler_rpc_error_is_sent_as_chosen(self, raw: RawClient) -> None:
        reply = raw.call({"jsonrpc": "2.0", "method": "rpc_error", "id": 1})
        assert reply["error"] == {
            "code": -32001,
            "message": "a message the handler chose",
            "data": {"ok": True},
        }


# -- implicit callbacks ---------------------------------------------------------------------


class Holder(Handler):
    """Server side: holds a client's callback while the client's call is in flight."""

    registered = threading.Event()
    release = threading.Event()
    name = ""
    in_flight: Any = None

    @mayblock
    def hold(self, callback: Any) -> str:
        Holder.name = str(callback)
        Holder.in_flight = callback.request("from the owner")
        Holder.registered.set()
        Holder.release.wait(10)
        return "done"

    @mayblock
    def call_name(self, name: str) -> Any:
        try:
            return self.connection.request(name)("late")
        except RpcError as exc:
            return exc.code


class TestImplicitCallbacks:
    def test_callback_scope(self) -> None:
        Holder.registered = threading.Event()
        Holder.release = threading.Event()
        server = ThreadedPeer(default_handler=Holder)
        client = ThreadedPeer()
        try:
            listener = server.listen("tcp://127.0.0.1:0")
            client_listener = client.listen("tcp://127.0.0.1:0")  # for the intruder
            connection = client.connect(listener.url)
            seen: list[Any] = []
            outcome: list[Any] = []

            def callback(message: str) -> list[str]:
                seen.append(message)
                return ["got", message]

            caller = threading.Thread(
                target=lambda: outcome.append(connection.request.hold(callback))
            )
            caller.start()
            assert Holder.registered.wait(5)
            name = Holder.name
            assert name.startswith("rpc.callback.")
            assert Holder.in_flight == ["got", "from the owner"]  # its own connection: works

            # Another connection to the same peer, while the call is in flight: -32601.
            with RawClient(("127.0.0.1", client_listener.port)) as intruder:
                reply = intruder.call(
                    {"jsonrpc": "2.0", "method": name, "params": ["intruder"], "id": 1}
                )
                assert reply["error"]["code"] == -32601, reply
                intruder.send_json({"jsonrpc": "2.0", "method": name, "params": ["note"]})
                reply = intruder.call({"jsonrpc": "2.0", "method": "x", "id": 2})
                assert reply["error"]["code"] == -32601
            # A second connection made by the server's peer is no better.
            second = server.connect(client_listener.url)
            with pytest.raises(RpcError) as excinfo:
                second.request(name)("second connection")
            assert excinfo.value.code == -32601
            assert seen == ["from the owner"]

            Holder.release.set()
            caller.join(5)
            assert outcome == ["done"]
            # After the final reply, the owner connection cannot call it either.
            assert connection.request.call_name(name) == -32601
            assert seen == ["from the owner"]
        finally:
            Holder.release.set()
            client.shutdown(timeout=5)
            server.shutdown(timeout=5)


# -- defaults -----------------------------------------------------------------------------


class TestLoopbackByDefault:
    def test_listen_tcp_binds_loopback(self) -> None:
        peer = ThreadedTCPJsonRpcPeer(shutdown_on_parent_exit=False)
        try:
            assert peer.listen_tcp(0).address[0] == "127.0.0.1"
            assert peer.listen_tcp(port=0).address[0] == "127.0.0.1"
            assert peer.listen("tcp://:0").address[0] == "127.0.0.1"
        finally:
            peer.shutdown(timeout=5)

    def test_ws_listen_without_host_binds_loopback(self) -> None:
        require_scheme("ws")
        peer = ThreadedPeer()
        try:
            listener = peer.listen("ws://:0/")
            assert listener.address[0] in ("127.0.0.1", "::1"), listener.address
        finally:
            peer.shutdown(timeout=5)


class TestUnixSocketPermissions:
    def test_socket_file_modes(self, server: ThreadedPeer) -> None:
        require_scheme("unix")
        directory = tempfile.mkdtemp(prefix="rpcbd-sec-", dir="/tmp")
        try:
            umask = os.umask(0o022)
            os.umask(umask)
            default = server.listen(f"unix://{directory}/default.sock")
            mode = stat.S_IMODE(os.stat(f"{directory}/default.sock").st_mode)
            assert mode & umask == 0, oct(mode)  # the umask applies: never wider
            assert mode & 0o002 == 0 or not umask & 0o002, oct(mode)
            private = server.listen(f"unix://{directory}/private.sock", mode=0o600)
            assert stat.S_IMODE(os.stat(f"{directory}/private.sock").st_mode) == 0o600
            default.close()
            private.close()
            assert not os.path.exists(f"{directory}/default.sock")  # cleaned up
        finally:
            for name in os.listdir(directory):
                os.unlink(os.path.join(directory, name))
            os.rmdir(directory)


@pytest.fixture(scope="module")
def ca() -> Any:
    trustme = pytest.importorskip("trustme", reason="trustme makes the test certificates")
    return trustme.CA()


def _server_context(ca: Any) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


class TestTlsVerification:
    def test_client_verifies_by_default(self, ca: Any, server: ThreadedPeer) -> None:
        require_scheme("tls")
        listener = server.listen("tls://127.0.0.1:0", ssl_context=_server_context(ca))
        client = ThreadedPeer()
        try:
            with pytest.raises((ssl.SSLError, OSError)):
                client.connect(listener.url)  # self-signed / unknown CA: refused
            trusted = ssl.create_default_context()
            ca.configure_trust(trusted)
            connection = client.connect(listener.url, ssl_context=trusted)
            assert connection.request.echo("over tls") == "over tls"
            with pytest.raises((ssl.SSLError, OSError)):
                client.connect(listener.url, ssl_context=trusted, server_hostname="evil.invalid")
        finally:
            client.shutdown(timeout=5)

    def test_wss_client_verifies_by_default(self, ca: Any, server: ThreadedPeer) -> None:
        require_scheme("wss")
        listener = server.listen("wss://127.0.0.1:0/", ssl_context=_server_context(ca))
        client = ThreadedPeer()
        try:
            with pytest.raises((ssl.SSLError, OSError)):
                client.connect(listener.url)
            trusted = ssl.create_default_context()
            ca.configure_trust(trusted)
            connection = client.connect(listener.url, ssl_context=trusted)
            assert connection.request.echo("over wss") == "over wss"
        finally:
            client.shutdown(timeout=5)

    def test_plain_client_cannot_talk_to_tls_server(self, ca: Any, server: ThreadedPeer) -> None:
        require_scheme("tls")
        listener = server.listen("tls://127.0.0.1:0", ssl_context=_server_context(ca))
        with socket.create_connection(("127.0.0.1", listener.port), timeout=5) as sock:
            sock.sendall(b'{"jsonrpc":"2.0","method":"echo","params":[1],"id":1}\n')
            data = b""
            try:
                while chunk := sock.recv(4096):
                    data += chunk
            except OSError:
                pass
            assert b'"result"' not in data
        # The listener survives the bad handshake.
        client = ThreadedPeer()
        try:
            trusted = ssl.create_default_context()
            ca.configure_trust(trusted)
            assert client.connect(listener.url, ssl_context=trusted).request.echo(2) == 2
        finally:
            client.shutdown(timeout=5)


class TestWebSocketHandshake:
    @staticmethod
    def _handshake(url: str, **kwargs: Any) -> Any:
        from websockets.sync.client import connect

        return connect(url, proxy=None, open_timeout=5, **kwargs)

    def _status(self, url: str, **kwargs: Any) -> int:
        from websockets.exceptions import InvalidStatus

        try:
            with self._handshake(url, **kwargs):
                return 101
        except InvalidStatus as exc:
            return int(exc.response.status_code)

    def test_origin_policy(self, server: ThreadedPeer) -> None:
        require_scheme("ws")
        listener = server.listen("ws://127.0.0.1:0/rpc")
        url = listener.url
        assert self._status(url) == 101  # no Origin: a non-browser client
        assert self._status(url, origin="http://localhost:3000") == 101
        assert self._status(url, origin="http://127.0.0.1:8080") == 101
        assert self._status(url, origin="http://evil.invalid") == 403
        assert self._status(url, origin="http://localhost.evil.invalid") == 403
        assert self._status(url, origin="null") == 403

    def test_explicit_allowlist(self, server: ThreadedPeer) -> None:
        require_scheme("ws")
        listener = server.listen("ws://127.0.0.1:0/", origins=["https://app.example.com"])
        assert self._status(listener.url, origin="https://app.example.com") == 101
        assert self._status(listener.url, origin="http://localhost:3000") == 403

    def test_authenticate_hook(self, server: ThreadedPeer) -> None:
        require_scheme("ws")

        def authenticate(request: Any) -> bool:
            return bool(request.headers.get("Authorization") == "Bearer s3cret")

        listener = server.listen("ws://127.0.0.1:0/", authenticate=authenticate)
        assert self._status(listener.url) == 401
        assert self._status(listener.url, additional_headers={"Authorization": "Bearer no"}) == 401
        with self._handshake(
            listener.url, additional_headers={"Authorization": "Bearer s3cret"}
        ) as websocket:
            websocket.send('{"jsonrpc":"2.0","method":"echo","params":["in"],"id":1}')
            reply = json.loads(websocket.recv(timeout=5))
        assert reply == {"jsonrpc": "2.0", "result": "in", "id": 1}
        assert wait_until(lambda: not listener.connections, 5)
