"""WebSocket: ``ws://HOST:PORT/path`` and ``wss://...`` through the ``websockets`` package
(its threaded client and server, ``websockets.sync``; version 13 or later).

One JSON-RPC message (or batch) per WebSocket message: rpcbd sends text frames and accepts
text and binary frames. No framing applies. Options:

- ``max_message_size``: the largest message accepted; a bigger one closes the connection
  with code 1009 (the WebSocket protocol cannot skip a message).
- ``ping_interval`` / ``ping_timeout`` (seconds, default 20/20; None disables): keepalive
  pings, and how long a pong may take before the connection is considered dead.
- ``ssl_context``: for ``wss://``, the server's certificate (required when listening) or
  the client's trust settings (default: :func:`ssl.create_default_context`);
  ``server_hostname`` overrides the name checked.
- ``connect_timeout``: bounds the client's opening handshake (default 10 s).

Serving (``listen("ws://127.0.0.1:8765/rpc")``):

- **Path routing.** The listen URL's path is the WebSocket endpoint; a handshake on any
  other path gets HTTP 404.
- **Origins** (a browser sends ``Origin``; other clients usually do not). A handshake
  without ``Origin`` is accepted. A browser page's ``Origin`` is accepted when its host is
  ``localhost``, ``127.0.0.1`` or ``[::1]``, or equals the host (and port) the server was
  reached at (the ``Host`` header): the server's own page. Anything else gets HTTP 403, so
  a page on another site cannot drive a local server through the user's browser.
  ``origins=["https://app.example.com", ...]`` replaces that rule by an explicit allowlist
  (exact ``scheme://host[:port]`` strings).
- **Authentication.** ``authenticate=fn`` is called as ``fn(request)`` with the handshake
  request (``request.path`` includes the query string, ``request.headers`` the headers);
  returning False refuses with HTTP 401. Only the WebSocket handshake is guarded: the
  static files below are public.
- **Browser bridge.** A plain HTTP ``GET`` (no WebSocket upgrade) is answered with static
  files, so one port serves the page and its WebSocket: ``/rpcbd.js`` is the JavaScript
  client shipped in ``rpcbd/static``; ``/`` is a demo page, or ``index.html`` of the
  ``static_dir`` option, whose other files are served too. ``serve_client=False`` turns
  all of this off (plain GETs get 404).

``websockets`` is imported on first use; install it with ``pip install websockets``.
"""

from __future__ import annotations

import contextlib
import html
import http
import inspect
import logging
import mimetypes
import socket
import ssl
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from rpcbd.exceptions import ConnectionClosedError
from rpcbd.transports.base import ListenerBackend, Transport
from rpcbd.transports.tcp import format_host

if TYPE_CHECKING:
    from websockets.http11 import Request, Response
    from websockets.sync.connection import Connection as WsConnection
    from websockets.sync.server import Server, ServerConnection

__all__ = [
    "CLOSE_TIMEOUT",
    "LOCAL_HOSTS",
    "STATIC_DIR",
    "WebSocketListener",
    "WebSocketTransport",
    "connect_from_url",
    "connect_ws",
    "listen_from_url",
    "listen_ws",
    "origin_allowed",
]

log = logging.getLogger("rpcbd")

#: Seconds closing waits for the peer's half of the closing handshake.
CLOSE_TIMEOUT = 2.0
#: Origin hosts always accepted by the default origin policy.
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

#: Where the JavaScript client and the demo page live (shipped inside the package).
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}


def _import_websockets() -> Any:
    try:
        import websockets.sync.client
        import websockets.sync.server
    except ImportError as exc:  # pragma: no cover - websockets is a dependency
        raise ImportError(
            "ws:// and wss:// URLs need the websockets package (13 or later): "
            "pip install websockets"
        ) from exc
    return websockets


class WebSocketTransport(Transport):
    """One WebSocket connection (client or server side): one message per read/write."""

    message_based = True
    default_framing = None

    def __init__(self, connection: WsConnection, description: str) -> None:
        self._ws = connection
        self.description = description
        self._closed = threading.Event()
        from websockets.exceptions import ConnectionClosed

        self._connection_closed = ConnectionClosed
        # send(..., text=True) sends bytes as a text frame (websockets 14+); before that,
        # a text frame needs a str.
        self._send_bytes_as_text = "text" in inspect.signature(connection.send).parameters

    @property
    def websocket(self) -> WsConnection:
        """The ``websockets.sync`` connection."""
        return self._ws

    def read(self) -> bytes | None:
        try:
            # decode=False: text frames come as their UTF-8 bytes, which the JSON parser
            # reads directly (no decode and re-encode).
            return self._ws.recv(decode=False)
        except self._connection_closed:
            return None
        except (RuntimeError, EOFError) as exc:
            raise OSError(f"reading from {self.description} failed: {exc}") from exc

    def write(self, chunks: list[bytes]) -> None:
        try:
            for chunk in chunks:
                if self._send_bytes_as_text:
                    self._ws.send(chunk, text=True)
                else:  # pragma: no cover - websockets 13
                    self._ws.send(chunk.decode("utf-8"))
        except self._connection_closed as exc:
            raise ConnectionClosedError(f"{self.description} is closed") from exc
        except RuntimeError as exc:
            raise ConnectionClosedError(f"{self.description}: {exc}") from exc

    def abort(self) -> None:
        # A normal closing handshake, bounded by CLOSE_TIMEOUT; it ends the background
        # thread of ``websockets``, and with it a recv() blocked in our reader.
        if not self._closed.is_set():
            with contextlib.suppress(Exception):
                self._ws.close()

    def close(self) -> None:
        self.abort()
        self._closed.set()

    def wait_closed(self) -> None:
        """Block until :meth:`close` was called (the server's per-connection handler)."""
        self._closed.wait()


def _split_origin(origin: str) -> tuple[str, int | None] | None:
    try:
        parts = urlsplit(origin)
        host = parts.hostname
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return None
    return (host, port) if host else None


def origin_allowed(
    origin: str | None, host_header: str | None, allowed: Sequence[str] | None, secure: bool
) -> bool:
    """The origin policy (see the module docs).

    Args:
        origin: the ``Origin`` header, or None.
        host_header: the ``Host`` header the client sent.
        allowed: the ``origins`` option (an explicit allowlist) or None (default policy).
        secure: whether the server speaks TLS (for the ``Host`` header's default port).
    """
    if origin is None:
        return True  # not a browser: Origin checks protect browsers' users only
    if allowed is not None:
        return origin.rstrip("/") in {entry.rstrip("/") for entry in allowed}
    parsed = _split_origin(origin)
    if parsed is None:
        return False  # "null" (sandboxed frames, file: pages) or garbage
    host, port = parsed
    if host in LOCAL_HOSTS:
        return True
    if not host_header:
        return False
    reached = _split_origin(("https://" if secure else "http://") + host_header)
    return reached == (host, port)


class WebSocketListener(ListenerBackend):
    """A ``websockets.sync`` server on a socket we bound; accepting runs in our thread.

    Our own accept loop (rather than ``Server.serve_forever``) lets :meth:`close` stop
    accepting while accepted connections stay open, as the Listener contract says.
    """

    def __init__(
        self,
        sock: socket.socket,
        url: str,
        path: str,
        options: dict[str, Any],
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        self._sock = sock
        address = sock.getsockname()
        self.address = address
        self.port = address[1]
        self.url = url
        self._path = path
        self._options = options
        self._ssl_context = ssl_context
        self._secure = ssl_context is not None
        self._static_dir = Path(options["static_dir"]) if options.get("static_dir") else None
        self._closing = False
        self._thread: threading.Thread | None = None
        self._server: Server | None = None
        # Sockets still in their opening handshake: close() cuts them, so that their
        # threads end now rather than at the handshake timeout.
        self._opening: set[socket.socket] = set()
        self._opening_lock = threading.Lock()
        self._on_transport: Callable[[Transport], None] | None = None

    # -- HTTP side ---------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.partition("?")[0]
        upgrade = request.headers.get("Upgrade", "").lower()
        if upgrade != "websocket":
            return self._serve_static(connection, path)
        if path != self._path:
            return connection.respond(http.HTTPStatus.NOT_FOUND, "No WebSocket endpoint here.\n")
        origin = request.headers.get("Origin")
        if not origin_allowed(
            origin, request.headers.get("Host"), self._options.get("origins"), self._secure
        ):
            log.warning("refused a WebSocket handshake from origin %r", origin)
            return connection.respond(http.HTTPStatus.FORBIDDEN, "Origin not allowed.\n")
        authenticate = self._options.get("authenticate")
        if authenticate is not None and not authenticate(request):
            return connection.respond(http.HTTPStatus.UNAUTHORIZED, "Authentication failed.\n")
        return None

    def _static_file(self, path: str) -> tuple[bytes, str] | None:
        if path == "/rpcbd.js":
            return (STATIC_DIR / "rpcbd.js").read_bytes(), "text/javascript; charset=utf-8"
        if self._static_dir is not None:
            root = self._static_dir.resolve()
            relative = unquote(path).lstrip("/") + ("index.html" if path.endswith("/") else "")
            target = (root / relative).resolve()
            if root not in target.parents or not target.is_file():
                return None  # missing, or outside static_dir ("/../secret")
            ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
            if ctype.startswith("text/") or ctype.endswith(("javascript", "json")):
                ctype += "; charset=utf-8"
            return target.read_bytes(), ctype
        if path in {"/", "/index.html", "/demo.html"}:
            page = (STATIC_DIR / "demo.html").read_text("utf-8")
            # The demo page learns where the WebSocket endpoint is from this meta tag.
            page = page.replace(
                '<meta name="rpcbd-endpoint" content="/">',
                f'<meta name="rpcbd-endpoint" content="{html.escape(self._path)}">',
            )
            return page.encode(), "text/html; charset=utf-8"
        return None

    def _serve_static(self, connection: ServerConnection, path: str) -> Response:
        found = self._static_file(path) if self._options.get("serve_client", True) else None
        if found is None:
            return connection.respond(http.HTTPStatus.NOT_FOUND, "Not found.\n")
        from websockets.datastructures import Headers
        from websockets.http11 import Response

        body, ctype = found
        headers = Headers(
            [
                ("Content-Type", ctype),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-cache"),
                ("X-Content-Type-Options", "nosniff"),
                ("Connection", "close"),
            ]
        )
        return Response(200, "OK", headers, body)

    # -- WebSocket side ----------------------------------------------------------------

    def _handle(self, connection: ServerConnection) -> None:
        """Runs in the per-connection thread of ``websockets`` once the handshake is done."""
        assert self._on_transport is not None
        self._opened(connection.socket)
        host, port = connection.remote_address[:2]
        scheme = "wss" if self._secure else "ws"
        transport = WebSocketTransport(connection, f"{scheme}://{format_host(host)}:{port}")
        self._on_transport(transport)
        # Returning would make websockets close the connection: wait until rpcbd closes it.
        transport.wait_closed()

    def start(self, on_transport: Callable[[Transport], None]) -> None:
        websockets = _import_websockets()
        self._on_transport = on_transport
        options = self._options
        # The socket is bound already (port 0 resolved, loopback by default). TLS is ours
        # (see _serve_connection), not websockets': see rpcbd.transports.tls.TLSTransport
        # for why an ssl.SSLSocket must not be read and written by two threads.
        self._server = websockets.sync.server.serve(
            self._handle,
            sock=self._sock,
            process_request=self._process_request,
            max_size=options["max_message_size"],
            ping_interval=options.get("ping_interval"),
            ping_timeout=options.get("ping_timeout"),
            close_timeout=CLOSE_TIMEOUT,
            logger=logging.getLogger("rpcbd.websockets"),
        )
        self._thread = threading.Thread(
            target=self._accept_loop, name=f"rpcbd-ws-server {self.url}"
        )
        self._thread.start()

    def _accept_loop(self) -> None:
        server = self._server
        assert server is not None
        listening = server.socket
        while not self._closing:
            try:
                sock, address = listening.accept()
            except OSError:
                if self._closing:
                    return
                continue  # EMFILE, ECONNABORTED: keep serving the others
            if self._closing:
                sock.close()
                return
            # The handshake (TLS, then HTTP) runs in the connection's own thread, so a
            # silent client never holds up this loop. The thread ends with the connection.
            threading.Thread(
                target=self._serve_connection,
                args=(sock, address),
                name=f"rpcbd-ws-conn {format_host(str(address[0]))}:{address[1]}",
            ).start()

    def _opened(self, sock: Any) -> None:
        raw = sock.transport.socket if hasattr(sock, "transport") else sock
        with self._opening_lock:
            self._opening.discard(raw)

    def _serve_connection(self, sock: socket.socket, address: Any) -> None:
        """A connection's thread: TLS handshake (wss), then websockets' handler."""
        server = self._server
        assert server is not None
        with self._opening_lock:
            if self._closing:
                sock.close()
                return
            self._opening.add(sock)
        try:
            self._open_and_serve(server, sock, address)
        finally:
            with self._opening_lock:
                self._opening.discard(sock)

    def _open_and_serve(self, server: Server, sock: socket.socket, address: Any) -> None:
        if self._ssl_context is not None:
            from rpcbd.transports.tls import HANDSHAKE_TIMEOUT, TLSSocket, TLSTransport

            transport = TLSTransport(sock, self._ssl_context, "wss", server_side=True)
            try:
                sock.settimeout(HANDSHAKE_TIMEOUT)
                transport.handshake()
                sock.settimeout(None)
            except (OSError, ValueError) as exc:
                log.debug("TLS handshake with %s failed: %s", address, exc)
                transport.close()
                return
            # websockets wants a socket; TLSSocket is one as far as it is concerned.
            sock = TLSSocket(transport)  # type: ignore[assignment]
        server.handler(sock, address)

    def close(self) -> None:
        with self._opening_lock:
            if self._closing:
                return
            self._closing = True
            opening = list(self._opening)
        for sock in opening:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        listening = self._server.socket if self._server is not None else self._sock
        with contextlib.suppress(OSError):
            socket.socket.shutdown(listening, socket.SHUT_RDWR)  # wakes accept() on Linux
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        listening.close()
        self._sock.close()
        # websockets' Server makes a socketpair for its own serve_forever(), which this
        # listener does not run (it accepts itself); close it, or two descriptors leak.
        for name in ("shutdown_watcher", "shutdown_notifier"):
            pair_end = getattr(self._server, name, None)
            if pair_end is not None:
                pair_end.close()


def listen_ws(url: str, options: dict[str, Any]) -> WebSocketListener:
    """Listen on ``ws://HOST:PORT/path`` or ``wss://...`` (see the module docs).

    Raises:
        ValueError: a ``wss://`` URL without ``ssl_context``, or a URL without a port.
    """
    _import_websockets()
    parts = urlsplit(url)
    secure = parts.scheme.lower() == "wss"
    context = options.get("ssl_context")
    if secure and context is None:
        raise ValueError(
            "wss:// listeners need ssl_context=: an ssl.SSLContext holding the server's "
            "certificate (ssl.create_default_context(ssl.Purpose.CLIENT_AUTH) then "
            "load_cert_chain(...))"
        )
    if parts.port is None:
        raise ValueError(f"{url!r} needs a port, e.g. ws://127.0.0.1:8765/rpc (0 picks one)")
    host = (parts.hostname or "127.0.0.1").strip("[]")
    path = parts.path or "/"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, parts.port))
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    bound_host, bound_port = sock.getsockname()[:2]
    listen_url = f"{parts.scheme.lower()}://{format_host(bound_host)}:{bound_port}{path}"
    return WebSocketListener(sock, listen_url, path, options, context if secure else None)


def connect_ws(url: str, options: dict[str, Any]) -> WebSocketTransport:
    """Open a WebSocket connection to ``url`` (``ws://`` or ``wss://``).

    Raises:
        OSError: the connection failed; ``websockets.exceptions.InvalidStatus`` (an
            exception of ``websockets``) when the server refused the handshake (403, ...).
    """
    websockets = _import_websockets()
    secure = url.lower().startswith("wss:")
    extra: dict[str, Any] = {}
    if secure:
        from rpcbd.transports.tls import ThreadSafeTLSContext

        context = options.get("ssl_context")
        # websockets calls ssl.wrap_socket(sock, server_hostname=...): ours returns a TLS
        # socket that its reading and writing threads can share safely.
        extra["ssl"] = ThreadSafeTLSContext(
            context if context is not None else ssl.create_default_context()
        )
        if options.get("server_hostname"):
            extra["server_hostname"] = options["server_hostname"]
    timeout = options.get("connect_timeout")
    connect = websockets.sync.client.connect
    if "legacy" in inspect.signature(connect).parameters:
        # websockets 17.1+: connect() returns the connection itself only when asked; we
        # manage its life ourselves (close() in the transport).
        extra["legacy"] = True
    connection = connect(
        url,
        max_size=options["max_message_size"],
        ping_interval=options.get("ping_interval"),
        ping_timeout=options.get("ping_timeout"),
        close_timeout=CLOSE_TIMEOUT,
        open_timeout=10 if timeout is None else timeout,
        logger=logging.getLogger("rpcbd.websockets"),
        **extra,
    )
    return WebSocketTransport(connection, url)


def connect_from_url(url: str, options: dict[str, Any]) -> WebSocketTransport:
    """Registry entry for ``ws://`` and ``wss://``."""
    return connect_ws(url, options)


def listen_from_url(url: str, options: dict[str, Any]) -> WebSocketListener:
    """Registry entry for listening on ``ws://`` and ``wss://``."""
    return listen_ws(url, options)
