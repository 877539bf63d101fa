"""Helpers shared by the reliability tests: transport availability, process-wide
resource counters (threads, descriptors, memory) and raw-socket clients."""

from __future__ import annotations

import contextlib
import json
import resource
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rpcbd.transports import registered_schemes

# One polling helper and one descriptor count for every threaded-side test.
from ..threaded.helpers import open_fds, wait_until

__all__ = [
    "CHILD",
    "STREAM_SCHEMES",
    "RawClient",
    "descriptors_for",
    "listen_url",
    "open_fds",
    "python",
    "require_scheme",
    "rpcbd_threads",
    "rss_kib",
    "wait_until",
]

#: The child-process peer used by the SIGKILL tests.
CHILD = str(Path(__file__).with_name("child.py"))

#: Schemes the fault tests run over, in the order of the issue.
STREAM_SCHEMES = ("tcp", "unix", "ws", "exec")


def require_scheme(scheme: str) -> None:
    """Skip the calling test while ``scheme`` is not a registered transport."""
    if scheme not in registered_schemes():
        pytest.skip(
            f"transport {scheme!r} is not registered yet "
            f"(rpcbd.transports.registered_schemes() = {registered_schemes()})"
        )


def listen_url(scheme: str, directory: str) -> str:
    """A URL to listen on for ``scheme``: port 0 on loopback, or a socket in ``directory``."""
    if scheme == "tcp":
        return "tcp://127.0.0.1:0"
    if scheme == "unix":
        return f"unix://{directory}/s.sock"
    if scheme == "ws":
        return "ws://127.0.0.1:0/"
    raise ValueError(scheme)


def rpcbd_threads() -> list[str]:
    """Names of the live threads rpcbd started."""
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("rpcbd-"))


def rss_kib() -> int:
    """This process's resident set size in KiB (``VmRSS`` of /proc/self/status)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


class RawClient:
    """A bare socket that speaks newline-framed JSON, to send what no client library would.

    Every read has a deadline, so a test that expects a reply never hangs.
    """

    def __init__(self, address: Any, family: int = socket.AF_INET, timeout: float = 5.0) -> None:
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(address)
        self._buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_json(self, value: Any) -> None:
        self.sock.sendall(json.dumps(value).encode() + b"\n")

    def read_line(self) -> bytes:
        """The next line (without its newline); raises on timeout or end of stream."""
        while b"\n" not in self._buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"connection closed; unread: {self._buffer[:200]!r}")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def read_json(self) -> Any:
        return json.loads(self.read_line())

    def call(self, value: Any) -> Any:
        self.send_json(value)
        return self.read_json()

    def closed_by_peer(self, timeout: float = 5.0) -> bool:
        """Whether the server closes the connection within ``timeout`` (bytes it sends
        before closing are read and dropped)."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
        except TimeoutError:
            return False
        except OSError:
            return True  # reset by peer counts as closed
        return True

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def python() -> str:
    """The interpreter running the tests (the child processes use the same)."""
    return sys.executable


@contextlib.contextmanager
def descriptors_for(connections: int) -> Iterator[None]:
    """Raise ``RLIMIT_NOFILE`` to hold both ends of ``connections`` connections plus the
    usual descriptors (skipping the test if the hard limit is lower); restore it after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 2 * connections + 256
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {needed}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
