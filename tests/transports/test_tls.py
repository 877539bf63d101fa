"""TLS: verification on by default, a clear error without a server context, and a silent
client does not hold up the accept loop."""

from __future__ import annotations

import socket
import ssl

import pytest
import trustme

from rpcbd import ThreadedPeer


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


def test_listen_needs_ssl_context(peer: ThreadedPeer) -> None:
    with pytest.raises(ValueError, match="ssl_context"):
        peer.listen("tls://127.0.0.1:0")


def test_client_verifies_by_default(peer: ThreadedPeer, ca: trustme.CA) -> None:
    listener = peer.listen("tls://127.0.0.1:0", ssl_context=_server_context(ca))
    with pytest.raises(ssl.SSLCertVerificationError):
        peer.connect(listener.url)  # the throwaway CA is not in the system's store
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    with peer.connect(listener.url, ssl_context=trusting) as connection:
        assert connection.request.echo("verified") == "verified"
    # The name checked is the URL's host unless server_hostname says otherwise.
    with pytest.raises(ssl.SSLCertVerificationError):
        peer.connect(listener.url, ssl_context=trusting, server_hostname="example.com")


def test_client_certificates(peer: ThreadedPeer, ca: trustme.CA) -> None:
    server_context = _server_context(ca)
    server_context.verify_mode = ssl.CERT_REQUIRED
    ca.configure_trust(server_context)
    listener = peer.listen("tls://127.0.0.1:0", ssl_context=server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    ca.issue_cert("client@example.com").configure_cert(client_context)
    with peer.connect(listener.url, ssl_context=client_context) as connection:
        assert connection.request.echo("mutual") == "mutual"


def test_silent_client_does_not_block_accepting(peer: ThreadedPeer, ca: trustme.CA) -> None:
    listener = peer.listen("tls://127.0.0.1:0", ssl_context=_server_context(ca))
    silent = socket.create_connection(("127.0.0.1", listener.port))  # never says hello
    try:
        trusting = ssl.create_default_context()
        ca.configure_trust(trusting)
        with peer.connect(listener.url, ssl_context=trusting, connect_timeout=10) as connection:
            assert connection.request.echo("not blocked") == "not blocked"
    finally:
        silent.close()
