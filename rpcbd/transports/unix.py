"""Unix domain sockets: ``unix:///path/to/sock``.

The transport is the same :class:`~rpcbd.transports.tcp.SocketTransport` as TCP (default
framing ``newline``); only addressing and the socket file differ.

The socket file:

- **Stale files.** A file left behind by a server that died is removed when a new server
  listens on the same path, but only if it is a socket and nothing answers on it; if a
  server answers, ``listen`` raises ``OSError(EADDRINUSE)``; if the path is not a socket,
  ``listen`` raises ``FileExistsError`` (rpcbd never deletes other files).
- **Permissions.** Connecting needs write permission on the socket file. Without the
  ``mode`` option the file gets ``0o777`` minus the process umask (with the usual umask
  ``022`` that is ``0o755``: only the owner may connect). ``mode=0o600`` says so
  explicitly, ``mode=0o660`` lets the owner's group in. The mode is set before the socket
  starts listening, so nobody connects in between. Some BSDs ignore the permissions of
  socket files: there, put the socket in a directory with the permissions you want.
- **Clean up.** Closing the listener removes the file (if it is still the one it made).
- **Abstract names (Linux).** ``unix://@name`` uses the abstract namespace: no file at all.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from typing import Any
from urllib.parse import unquote, urlsplit

from rpcbd.transports.tcp import SocketListener, SocketTransport

__all__ = [
    "UnixListener",
    "connect_from_url",
    "connect_unix",
    "listen_from_url",
    "listen_unix",
    "unix_path",
]


def unix_path(url: str) -> str:
    """The socket path of ``unix:///abs/path``, ``unix:relative/path`` or ``unix://@abstract``.

    Raises:
        ValueError: the URL names no path.
    """
    parts = urlsplit(url)
    # unix:///tmp/s -> path "/tmp/s"; unix://@name or unix://relative/x -> netloc + path.
    path = unquote(parts.netloc + parts.path)
    if not path:
        raise ValueError(f"{url!r} names no socket path; use unix:///path/to/socket")
    return path


def _address(path: str) -> str:
    # A leading "@" asks for Linux's abstract namespace, spelled with a NUL byte.
    return "\0" + path[1:] if path.startswith("@") else path


def _url(path: str) -> str:
    return f"unix://{path}" if path.startswith(("/", "@")) else f"unix:{path}"


def connect_unix(path: str, *, connect_timeout: float | None = None) -> SocketTransport:
    """Connect to the Unix socket at ``path`` (``@name``: abstract namespace)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(connect_timeout)
        sock.connect(_address(path))
        sock.settimeout(None)
    except BaseException:
        sock.close()
        raise
    return SocketTransport(sock, _url(path))


class UnixListener(SocketListener):
    """A :class:`SocketListener` that removes its socket file when closed."""

    def __init__(self, sock: socket.socket, path: str) -> None:
        super().__init__(sock, _url(path), self._wrap_accepted)
        self.address = path
        self._path = path
        self._inode: int | None = None
        if not path.startswith("@"):
            self._inode = os.stat(path).st_ino

    def _wrap_accepted(self, sock: socket.socket, address: Any) -> SocketTransport:
        # Unix clients are usually unnamed: describe the connection by the listener's path.
        return SocketTransport(sock, self.url)

    def close(self) -> None:
        first = not self._closing
        super().close()
        if first and self._inode is not None:
            # Remove the file only if it is still ours: another server may have replaced
            # it after we were told to stop.
            with contextlib.suppress(OSError):
                if os.stat(self._path).st_ino == self._inode:
                    os.unlink(self._path)


def _remove_stale(path: str) -> None:
    """Delete ``path`` if it is a socket nobody serves; raise if it is in use or not a
    socket."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise FileExistsError(errno.EEXIST, "exists and is not a socket; not removing it", path)
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except ConnectionRefusedError:
        # Nobody listens: a server died without removing its file.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    except OSError:
        return  # e.g. no permission to connect: let bind() report the real problem
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, "a server is already listening on this socket", path)


def listen_unix(path: str, *, mode: int | None = None, backlog: int = 128) -> UnixListener:
    """Listen on the Unix socket ``path``.

    Args:
        path: the socket file (``@name`` for Linux's abstract namespace).
        mode: permissions of the socket file, e.g. ``0o600``; None keeps the umask's.
        backlog: the kernel's queue of connections not yet accepted.

    Raises:
        OSError: a server already listens on ``path`` (``EADDRINUSE``), or ``path`` exists
            and is not a socket (``FileExistsError``).
    """
    if not path.startswith("@"):
        _remove_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(_address(path))
        if mode is not None and not path.startswith("@"):
            # Before listen(): until then connecting fails, so no client slips in under
            # the umask's permissions.
            os.chmod(path, mode)
        sock.listen(backlog)
        return UnixListener(sock, path)
    except BaseException:
        sock.close()
        raise


def connect_from_url(url: str, options: dict[str, Any]) -> SocketTransport:
    """Registry entry: ``unix:///path`` with the peer's options."""
    return connect_unix(unix_path(url), connect_timeout=options.get("connect_timeout"))


def listen_from_url(url: str, options: dict[str, Any]) -> UnixListener:
    """Registry entry: listen on ``unix:///path`` (option ``mode`` sets permissions)."""
    return listen_unix(unix_path(url), mode=options.get("mode"))
