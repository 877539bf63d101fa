"""WebSocket specifics: origins, authentication, path routing, static files, frames."""

from __future__ import annotations

import http.client
import json
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from rpcbd import ThreadedPeer
from rpcbd.transports.websocket import origin_allowed
from tests.transports.conformance import Echo


def _status(url: str, **kwargs: Any) -> int:
    try:
        with connect(url, open_timeout=10, **kwargs) as ws:
            ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "echo", "params": ["x"]}))
            assert json.loads(ws.recv(timeout=10))["result"] == "x"
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


def _get(port: int, path: str) -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read()
    finally:
        conn.close()


def test_origin_policy(peer: ThreadedPeer) -> None:
    url = peer.listen("ws://127.0.0.1:0/rpc").url
    assert _status(url) == 101  # no Origin: not a browser
    assert _status(url, origin="http://evil.example") == 403
    assert _status(url, origin="http://localhost:3000") == 101
    assert _status(url, origin="http://[::1]:8080") == 101
    # The server's own page: the Origin equals the host it was reached at.
    port = url.split(":")[2].split("/")[0]
    assert _status(url, origin=f"http://127.0.0.1:{port}") == 101
    assert _status(url, origin="null") == 403


def test_origin_allowlist(peer: ThreadedPeer) -> None:
    url = peer.listen("ws://127.0.0.1:0/rpc", origins=["https://app.example.com"]).url
    assert _status(url, origin="https://app.example.com") == 101
    assert _status(url, origin="http://localhost:3000") == 403
    assert _status(url) == 101


def test_origin_allowed_function() -> None:
    assert origin_allowed("https://example.com", "example.com", None, secure=True)
    assert not origin_allowed("https://example.com", "example.com:8443", None, secure=True)
    assert origin_allowed("http://example.com:8080", "example.com:8080", None, secure=False)
    assert not origin_allowed("http://example.com.evil.io", "example.com", None, secure=False)
    assert not origin_allowed("http://x", None, None, secure=False)


def test_authenticate_hook(peer: ThreadedPeer) -> None:
    seen: list[str] = []

    def authenticate(request: Any) -> bool:
        seen.append(request.path)
        return request.headers.get("Authorization") == "Bearer s3cret" or request.path.endswith(
            "?token=s3cret"
        )

    url = peer.listen("ws://127.0.0.1:0/rpc", authenticate=authenticate).url
    assert _status(url) == 401
    assert _status(url, additional_headers={"Authorization": "Bearer s3cret"}) == 101
    assert _status(url + "?token=s3cret") == 101
    assert _status(url + "?token=wrong") == 401
    assert seen == ["/rpc", "/rpc", "/rpc?token=s3cret", "/rpc?token=wrong"]


def test_path_routing(peer: ThreadedPeer) -> None:
    url = peer.listen("ws://127.0.0.1:0/rpc").url
    assert _status(url.replace("/rpc", "/other")) == 404
    assert _status(url.replace("/rpc", "/")) == 404
    assert _status(url) == 101


def test_static_files_on_the_same_port(peer: ThreadedPeer, tmp_path: Any) -> None:
    listener = peer.listen("ws://127.0.0.1:0/rpc")
    status, ctype, body = _get(listener.port, "/")
    assert status == 200 and ctype.startswith("text/html")
    assert b'<meta name="rpcbd-endpoint" content="/rpc">' in body  # the demo page
    status, ctype, body = _get(listener.port, "/rpcbd.js")
    assert status == 200 and ctype.startswith("text/javascript")
    assert b"class Client" in body
    assert _get(listener.port, "/nothing")[0] == 404

    (tmp_path / "index.html").write_text("<p>mine</p>")
    (tmp_path / "app.js").write_text("1;")
    (tmp_path.parent / "secret.txt").write_text("no")
    custom = peer.listen("ws://127.0.0.1:0/", static_dir=str(tmp_path))
    assert _get(custom.port, "/")[2] == b"<p>mine</p>"
    assert _get(custom.port, "/app.js")[:2] == (200, "text/javascript; charset=utf-8")
    assert _get(custom.port, "/../secret.txt")[0] == 404
    assert _get(custom.port, "/%2e%2e/secret.txt")[0] == 404
    assert _status(custom.url) == 101  # the WebSocket shares "/" with the page

    bare = peer.listen("ws://127.0.0.1:0/rpc", serve_client=False)
    assert _get(bare.port, "/rpcbd.js")[0] == 404


def test_binary_frames_accepted_text_frames_sent(peer: ThreadedPeer) -> None:
    url = peer.listen("ws://127.0.0.1:0/rpc").url
    with connect(url, open_timeout=10) as ws:
        ws.send(json.dumps({"jsonrpc": "2.0", "id": 7, "method": "echo", "params": [1]}).encode())
        reply = ws.recv(timeout=10)
        assert isinstance(reply, str)  # a text frame
        assert json.loads(reply) == {"jsonrpc": "2.0", "id": 7, "result": 1}
        # A batch is one message, and so is its reply.
        ws.send(
            json.dumps(
                [{"jsonrpc": "2.0", "id": i, "method": "echo", "params": [i]} for i in (1, 2)]
            )
        )
        assert sorted(r["id"] for r in json.loads(ws.recv(timeout=10))) == [1, 2]


def test_client_connection_and_listener_close(peer: ThreadedPeer) -> None:
    listener = peer.listen("ws://127.0.0.1:0/rpc")
    connection = peer.connect(listener.url, ping_interval=1, ping_timeout=5)
    assert connection.request.echo("hi") == "hi"
    listener.close()
    # Connections already accepted stay open.
    assert connection.request.echo("still") == "still"
    connection.close()
    assert connection.closed


def test_wss_needs_a_context(peer: ThreadedPeer) -> None:
    with pytest.raises(ValueError, match="ssl_context"):
        peer.listen("wss://127.0.0.1:0/rpc")


def test_shutdown_cuts_handshakes_in_progress() -> None:
    import socket
    import threading
    import time

    peer = ThreadedPeer(default_handler=Echo)
    listener = peer.listen("ws://127.0.0.1:0/rpc")
    silent = socket.create_connection(("127.0.0.1", listener.port))  # never sends a request
    try:
        deadline = time.monotonic() + 10
        while not any(t.name.startswith("rpcbd-ws-conn") for t in threading.enumerate()):
            assert time.monotonic() < deadline, "the connection's thread never started"
            time.sleep(0.005)
        started = time.monotonic()
        peer.shutdown()
        for thread in threading.enumerate():
            if thread.name.startswith("rpcbd-ws-conn"):
                thread.join(5)
                assert not thread.is_alive()
        # Well under websockets' 10 s opening timeout.
        assert time.monotonic() - started < 3
    finally:
        silent.close()
        peer.shutdown()
