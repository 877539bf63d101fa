"""Pipes: ``stdio:`` (this process's stdin/stdout) and ``exec:CMD ARGS`` (a child process).

Both default to ``content-length`` framing, the framing of LSP and ``vscode-jsonrpc``.
POSIX only: a blocked read is woken through a self-pipe and :func:`select.select`.

``stdio:``
    The connection owns this process's standard output: anything else written there
    corrupts the stream. So while it is open, file descriptor 1 and ``sys.stdout`` are
    pointed at standard error: a stray ``print()``, or a library writing to fd 1, ends up
    on stderr instead of in the protocol. Configure ``logging`` to write to stderr (its
    default ``StreamHandler`` does). Closing the connection restores stdout.

``exec:CMD ARGS``
    Starts ``CMD`` (split with :func:`shlex.split`, no shell) with pipes on its stdin and
    stdout; its stderr is inherited unless the ``stderr`` option says otherwise (a file
    object, a descriptor, or ``subprocess.DEVNULL``). Options ``env`` and ``cwd`` are passed
    to :class:`subprocess.Popen`. When the child exits its stdout ends, so calls in flight
    fail at once with ``ConnectionClosedError``. Closing the connection closes the child's
    stdin (a well-behaved child exits on end of input), waits ``kill_timeout`` seconds
    (default 2), then terminates it, waits again, kills it, and always reaps it.
    ``peer.spawn(argv)`` is the same as ``connect("exec:" + shlex.join(argv))``.
"""

from __future__ import annotations

import contextlib
import os
import select
import shlex
import subprocess
import sys
import threading
from typing import IO, Any

from rpcbd.exceptions import ConnectionClosedError
from rpcbd.transports.base import Transport

__all__ = [
    "ExecTransport",
    "PipeTransport",
    "StdioTransport",
    "connect_exec",
    "connect_from_url",
    "connect_stdio",
    "exec_from_url",
]

#: Bytes asked of the pipe per read (Linux pipes hold 64 KiB by default).
READ_SIZE = 256 * 1024


class PipeTransport(Transport):
    """A pair of file descriptors: one read, one written.

    A reader blocks in :func:`select.select` on the read descriptor and a private wake-up
    pipe, so :meth:`abort` can wake it from another thread without closing a descriptor
    that thread still uses.
    """

    default_framing = "content-length"

    def __init__(self, read_fd: int, write_fd: int, description: str) -> None:
        self._read_fd = read_fd
        self._write_fd = write_fd
        self.description = description
        self._wake_r, self._wake_w = os.pipe()
        self._aborted = False
        self._closed = False
        self._abort_lock = threading.Lock()

    def read(self) -> bytes | None:
        if self._aborted:
            return None
        readable, _, _ = select.select([self._read_fd, self._wake_r], [], [])
        if self._aborted or self._wake_r in readable:
            return None
        data = os.read(self._read_fd, READ_SIZE)
        return data or None

    def write(self, chunks: list[bytes]) -> None:
        if self._aborted:
            raise ConnectionClosedError(f"{self.description} is closed")
        fd = self._write_fd
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                written = os.write(fd, view)
                view = view[written:]

    def abort(self) -> None:
        with self._abort_lock:
            if self._aborted:
                return
            self._aborted = True
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")

    def close(self) -> None:
        self.abort()
        with self._abort_lock:
            if self._closed:
                return
            self._closed = True
        self._release()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _release(self) -> None:
        """Free the transport's own descriptors (subclasses)."""


class StdioTransport(PipeTransport):
    """This process's stdin and stdout; stdout is kept for the protocol while open."""

    def __init__(self) -> None:
        for stream in (sys.stdout, sys.__stdout__):
            if stream is not None:
                with contextlib.suppress(Exception):
                    stream.flush()
        # A private copy of fd 1 carries the protocol; fd 1 itself (and sys.stdout) now
        # go to stderr, so nothing else can write into the stream by accident.
        out_fd = os.dup(1)
        os.dup2(2, 1)
        self._saved_stdout = sys.stdout
        sys.stdout = sys.stderr
        super().__init__(0, out_fd, "stdio:")

    def _release(self) -> None:
        with contextlib.suppress(OSError):
            os.dup2(self._write_fd, 1)  # stdout is stdout again
        sys.stdout = self._saved_stdout
        os.close(self._write_fd)


class ExecTransport(PipeTransport):
    """A child process's stdin (written) and stdout (read)."""

    def __init__(
        self, process: subprocess.Popen[bytes], description: str, kill_timeout: float
    ) -> None:
        assert process.stdin is not None and process.stdout is not None
        super().__init__(process.stdout.fileno(), process.stdin.fileno(), description)
        self.process = process
        self.kill_timeout = kill_timeout

    def _release(self) -> None:
        process = self.process
        assert process.stdin is not None and process.stdout is not None
        # End of input asks a well-behaved child to exit; then escalate.
        with contextlib.suppress(OSError):
            process.stdin.close()
        try:
            process.wait(self.kill_timeout)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(self.kill_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        process.stdout.close()


def connect_stdio() -> StdioTransport:
    """This process's stdin/stdout as a transport (see the module docs about stdout)."""
    return StdioTransport()


def connect_exec(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    stderr: IO[Any] | int | None = None,
    kill_timeout: float = 2.0,
) -> ExecTransport:
    """Start ``argv`` and talk to it over its stdin/stdout.

    Raises:
        ValueError: ``argv`` is empty.
        OSError: the program could not be started (e.g. ``FileNotFoundError``).
    """
    if not argv:
        raise ValueError("exec: needs a command, e.g. exec:python -m mytool --stdio")
    process = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        env=env,
        cwd=cwd,
        bufsize=0,
    )
    return ExecTransport(process, f"exec:{shlex.join(argv)}", kill_timeout)


def connect_from_url(url: str, options: dict[str, Any]) -> StdioTransport:
    """Registry entry for ``stdio:``."""
    if url.partition(":")[2].strip("/"):
        raise ValueError(f"{url!r}: stdio: takes no address")
    return connect_stdio()


def exec_from_url(url: str, options: dict[str, Any]) -> ExecTransport:
    """Registry entry for ``exec:CMD ARGS`` (options ``env``, ``cwd``, ``stderr``,
    ``kill_timeout``)."""
    kill_timeout = options.get("kill_timeout")
    return connect_exec(
        shlex.split(url.partition(":")[2]),
        env=options.get("env"),
        cwd=options.get("cwd"),
        stderr=options.get("stderr"),
        kill_timeout=2.0 if kill_timeout is None else kill_timeout,
    )
