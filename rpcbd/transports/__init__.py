"""Transports, chosen by URL scheme.

The registry maps a scheme to the functions that open a connection or a listener for it:

===================================  ===========================  ======  =======
URL                                  module                       listen  connect
===================================  ===========================  ======  =======
``tcp://HOST:PORT``                  :mod:`rpcbd.transports.tcp`  yes     yes
``tls://HOST:PORT``                  ``...transports.tls``        yes     yes
``unix:///path``                     ``...transports.unix``       yes     yes
``ws://HOST:PORT/path``, ``wss://``  ``...transports.websocket``  yes     yes
``serial://DEV?baudrate=N``,         ``...transports.serial``     no      yes
``loop://``, ``socket://``,
``rfc2217://``, ``spy://``, ...
``stdio:``                           ``...transports.stdio``      no      yes
``exec:CMD ARGS``                    ``...transports.stdio``      no      yes
===================================  ===========================  ======  =======

Entries name their module as a ``"module:function"`` string, so optional dependencies
(``websockets``, ``pyserial``) are imported only when their scheme is used.

A new transport is one file: a :class:`~rpcbd.transports.base.Transport` subclass (blocking
``read``/``write``/``abort``/``close``), optionally a
:class:`~rpcbd.transports.base.ListenerBackend`, and two functions taking ``(url, options)``
(``options`` holds the peer's options merged with the call's). Then::

    register_transport(TransportScheme("mine", connect="mypkg.mine:connect_from_url",
                                       listen="mypkg.mine:listen_from_url"))

and ``peer.connect("mine://...")`` uses it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from rpcbd.transports.base import ListenerBackend, Transport

__all__ = [
    "SERIAL_LISTEN_REFUSAL",
    "ListenerBackend",
    "Transport",
    "TransportScheme",
    "lookup_transport",
    "register_transport",
    "registered_schemes",
    "split_host_port",
]

#: ``connect(url, options) -> Transport``; options are the peer's and call's keywords.
Connector = Callable[[str, dict[str, Any]], Transport]
#: ``listen(url, options) -> ListenerBackend``.
ListenerFactory = Callable[[str, dict[str, Any]], ListenerBackend]


@dataclass(frozen=True)
class TransportScheme:
    """How one URL scheme is opened.

    Attributes:
        scheme: the URL scheme, without ``:``.
        connect: ``"module:function"`` or a callable ``(url, options) -> Transport``.
        listen: the same for listeners, or None if the scheme cannot listen.
        aconnect / alisten: the asyncio counterparts (see rpcbd.aio), or None.
        listen_refusal: the message of the ValueError raised when listening is asked of a
            scheme that cannot (e.g. serial lines are point to point).
    """

    scheme: str
    connect: str | Callable[..., Any] | None = None
    listen: str | Callable[..., Any] | None = None
    aconnect: str | Callable[..., Any] | None = None
    alisten: str | Callable[..., Any] | None = None
    listen_refusal: str = ""

    def resolve(self, which: str) -> Callable[..., Any]:
        """The callable for ``which`` ("connect", "listen", "aconnect", "alisten")."""
        target = getattr(self, which)
        if target is None:
            if which.endswith("listen"):
                raise ValueError(
                    self.listen_refusal or f"{self.scheme}: URLs cannot be listened on"
                )
            raise ValueError(f"{self.scheme}: URLs cannot be connected to with this runtime")
        if isinstance(target, str):
            module_name, _, attribute = target.partition(":")
            function: Callable[..., Any] = getattr(importlib.import_module(module_name), attribute)
            return function
        return target  # type: ignore[no-any-return]


_REGISTRY: dict[str, TransportScheme] = {}


def register_transport(entry: TransportScheme) -> None:
    """Add (or replace) the transport for ``entry.scheme``."""
    _REGISTRY[entry.scheme.lower()] = entry


def registered_schemes() -> list[str]:
    """The URL schemes that can be used, sorted."""
    return sorted(_REGISTRY)


def lookup_transport(url: str) -> TransportScheme:
    """The registry entry for ``url``'s scheme.

    Raises:
        ValueError: no scheme, or an unknown one (the message lists the known ones).
    """
    scheme, colon, _ = url.partition(":")
    entry = _REGISTRY.get(scheme.lower()) if colon else None
    if entry is None:
        raise ValueError(
            f"unknown transport URL {url!r}; use one of: "
            + ", ".join(f"{name}:" for name in registered_schemes())
        )
    return entry


def split_host_port(url: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``tcp://HOST:PORT`` (or ``[v6]:PORT``) into ``(host, port)``.

    Raises:
        ValueError: the URL has no valid port.
    """
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"bad port in {url!r}") from exc
    if port is None:
        raise ValueError(f"{url!r} needs a port, e.g. tcp://127.0.0.1:5000 (0 picks one)")
    host = parts.hostname or default_host
    return host, port


def _tcp_connect(url: str, options: dict[str, Any]) -> Transport:
    from rpcbd.transports.tcp import connect_tcp

    host, port = split_host_port(url)
    return connect_tcp(host, port, connect_timeout=options.get("connect_timeout"))


def _tcp_listen(url: str, options: dict[str, Any]) -> ListenerBackend:
    from rpcbd.transports.tcp import listen_tcp

    host, port = split_host_port(url)
    return listen_tcp(host, port)


register_transport(
    TransportScheme(
        "tcp",
        connect=_tcp_connect,
        listen=_tcp_listen,
        aconnect="rpcbd.aio.transports:connect_tcp",
        alisten="rpcbd.aio.transports:listen_tcp",
    )
)
register_transport(
    TransportScheme(
        "tls",
        connect="rpcbd.transports.tls:connect_from_url",
        listen="rpcbd.transports.tls:listen_from_url",
        aconnect="rpcbd.aio.transports:connect_tls",
        alisten="rpcbd.aio.transports:listen_tls",
    )
)
register_transport(
    TransportScheme(
        "unix",
        connect="rpcbd.transports.unix:connect_from_url",
        listen="rpcbd.transports.unix:listen_from_url",
        aconnect="rpcbd.aio.transports:connect_unix",
        alisten="rpcbd.aio.transports:listen_unix",
    )
)
for _scheme in ("ws", "wss"):
    register_transport(
        TransportScheme(
            _scheme,
            connect="rpcbd.transports.websocket:connect_from_url",
            listen="rpcbd.transports.websocket:listen_from_url",
            aconnect="rpcbd.aio.transports:connect_ws",
            alisten="rpcbd.aio.transports:listen_ws",
        )
    )
#: Serial lines are point to point: both ends connect.
SERIAL_LISTEN_REFUSAL = (
    "serial lines are point to point: there is nothing to listen on; "
    "open both ends with connect(url)"
)
# "serial:" plus pyserial's own URL schemes (see serial.serial_for_url).
for _scheme in ("serial", "loop", "socket", "rfc2217", "spy", "hwgrep", "alt", "cp2110"):
    register_transport(
        TransportScheme(
            _scheme,
            connect="rpcbd.transports.serial:connect_from_url",
            aconnect="rpcbd.aio.transports:connect_serial",
            listen_refusal=SERIAL_LISTEN_REFUSAL,
        )
    )
register_transport(
    TransportScheme(
        "stdio",
        connect="rpcbd.transports.stdio:connect_from_url",
        aconnect="rpcbd.aio.transports:connect_stdio",
        listen_refusal="stdio: is this process's stdin/stdout; it cannot be listened on",
    )
)
register_transport(
    TransportScheme(
        "exec",
        connect="rpcbd.transports.stdio:exec_from_url",
        aconnect="rpcbd.aio.transports:connect_exec",
        listen_refusal="exec: starts a child process; it cannot be listened on",
    )
)
del _scheme
