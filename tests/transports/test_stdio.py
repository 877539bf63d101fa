"""exec: and stdio: specifics (the conformance suite covers the calls)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from rpcbd import ConnectionClosedError, ThreadedPeer


def test_child_exit_fails_calls_in_flight(peer: ThreadedPeer) -> None:
    # The child reads one request and exits without answering.
    script = "import sys; sys.stdin.buffer.read1(65536); sys.exit(0)"
    connection = peer.spawn([sys.executable, "-c", script], stderr=subprocess.DEVNULL)
    started = time.monotonic()
    with pytest.raises(ConnectionClosedError):
        connection.request.anything()
    assert time.monotonic() - started < 5
    connection.close()
    assert connection._transport.process.returncode == 0  # type: ignore[attr-defined]


def test_close_escalates_to_terminate(peer: ThreadedPeer) -> None:
    # A child that ignores end of input: close() terminates it after kill_timeout.
    script = "import time\nwhile True: time.sleep(1)"
    connection = peer.spawn([sys.executable, "-c", script], kill_timeout=0.2)
    process = connection._transport.process  # type: ignore[attr-defined]
    started = time.monotonic()
    connection.close()
    assert process.returncode is not None and process.returncode < 0  # reaped, by a signal
    assert time.monotonic() - started < 3


def test_exec_url_is_split_with_shlex(peer: ThreadedPeer) -> None:
    script = "import sys; sys.stderr.write(sys.argv[1])"
    connection = peer.connect(
        f"exec:{sys.executable} -c '{script}' 'two words'", stderr=subprocess.PIPE
    )
    process = connection._transport.process  # type: ignore[attr-defined]
    assert process.args[-1] == "two words"
    connection.close()
    assert process.stderr.read() == b"two words"
    process.stderr.close()


def test_missing_program(peer: ThreadedPeer) -> None:
    with pytest.raises(FileNotFoundError):
        peer.spawn(["/nonexistent/rpcbd-program"])


def test_stdio_cannot_listen(peer: ThreadedPeer) -> None:
    with pytest.raises(ValueError, match="cannot be listened on"):
        peer.listen("stdio:")
    with pytest.raises(ValueError, match="cannot be listened on"):
        peer.listen("exec:true")


def test_stdio_child_keeps_stdout_for_the_protocol(peer: ThreadedPeer) -> None:
    # stdio_child.py print()s after connecting: that line must reach stderr, and the
    # protocol (content-length framing) must stay intact.
    import os

    child = os.path.join(os.path.dirname(os.path.abspath(__file__)), "stdio_child.py")
    connection = peer.spawn([sys.executable, child], stderr=subprocess.PIPE)
    process = connection._transport.process  # type: ignore[attr-defined]
    assert connection.request.echo("clean") == "clean"
    connection.close()
    assert b"this line goes to stderr" in process.stderr.read()
    process.stderr.close()
