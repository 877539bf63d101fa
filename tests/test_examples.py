"""Every program in examples/ is run here, as a subprocess, and its output checked.

Examples that need a transport still being built skip with the reason when its URL scheme
is not registered (``rpcbd.transports.registered_schemes()``).
"""

from __future__ import annotations

import importlib.util
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from rpcbd import ThreadedPeer
from rpcbd.transports import registered_schemes

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TIMEOUT = 30

TESTED = {
    "tcp_server.py",
    "tcp_client.py",
    "callbacks_implicit.py",
    "callbacks_explicit.py",
    "inprocess_pipes.py",
    "serial_link.py",
    "lsp_stdio_child.py",
    "websocket_bridge.py",
}


def run(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=EXAMPLES,
    )
    assert result.returncode == 0, result.stderr
    return result


def needs_schemes(*schemes: str) -> None:
    missing = [s for s in schemes if s not in registered_schemes()]
    if missing:
        pytest.skip(f"transport scheme(s) {', '.join(missing)} not registered yet")


class Started:
    """A long-running example, stopped by a signal at the end."""

    def __init__(self, name: str, *args: str) -> None:
        # A background job of a non-interactive shell starts with SIGINT ignored, which
        # children inherit (and Python then raises no KeyboardInterrupt). A handler, unlike
        # SIG_IGN, is reset to the default by exec: install one around the start.
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, str(EXAMPLES / name), *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=EXAMPLES,
            )
        finally:
            signal.signal(signal.SIGINT, previous)
        self._stdout_fd = self.proc.stdout.fileno() if self.proc.stdout else -1
        self._pending = b""

    def readline(self) -> str:
        """The next line of stdout, read unbuffered so a deadline can apply."""
        deadline = time.monotonic() + TIMEOUT
        while b"\n" not in self._pending:
            ready, _, _ = select.select([self._stdout_fd], [], [], deadline - time.monotonic())
            chunk = os.read(self._stdout_fd, 4096) if ready else b""
            if not chunk:
                self.proc.kill()
                pytest.fail(f"no line from the example in time; got {self._pending!r}")
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return line.decode() + "\n"

    def stop(self, signum: int) -> tuple[int, str, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            out, err = self.proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        return self.proc.returncode, out, err


def test_every_example_is_tested() -> None:
    assert {p.name for p in EXAMPLES.glob("*.py")} == TESTED


def test_tcp_server_and_client() -> None:
    server = Started("tcp_server.py", "0")
    try:
        line = server.readline()
        assert line.startswith("Listening on port ")
        port = line.split()[-1]
        client = run("tcp_client.py", port)
        assert client.stdout == "Got data: Hello World!\n"
    finally:
        status, out, err = server.stop(signal.SIGINT)
    assert status == 0, err
    assert (server._pending.decode() + out).splitlines()[-2:] == [
        "*** Got keyboard interrupt - shutting down ***",
        "Done!",
    ]


def test_callbacks_implicit_run_in_main_thread_in_order() -> None:
    result = run("callbacks_implicit.py")
    assert result.stdout.splitlines() == [
        *(f"Counted to {i} (in MainThread)" for i in range(1, 6)),
        "Result: Counted to 5",
    ]


def test_callbacks_explicit_run_in_the_handler() -> None:
    result = run("callbacks_explicit.py")
    assert result.stdout.splitlines() == [
        "report: Counted to 1",
        "report: Counted to 2",
        "report: Counted to 3",
        "report: Finished counting to 3",
        "Result: ok",
    ]


def test_inprocess_pipes() -> None:
    result = run("inprocess_pipes.py")
    assert result.stdout.splitlines() == [
        "add(2, 3) = 5",
        "greet() = 'Hello, pipe client!'",
        "no_such_method() raised RpcMethodNotFoundError (code -32601)",
        "closed: True True",
    ]


def test_serial_link_over_loop() -> None:
    needs_schemes("loop")
    if importlib.util.find_spec("serial") is None:
        pytest.skip("pyserial is not installed")
    result = run("serial_link.py")
    assert result.stdout.splitlines() == [
        "link: loop://",
        "identify() -> {'model': 'rpcbd-sensor', 'firmware': '1.0'}",
        "read_temperature() -> 21.5",
        "read_temperature('F') -> 70.7",
    ]


def test_serial_link_over_a_pty_pair() -> None:
    needs_schemes("serial")
    if importlib.util.find_spec("serial") is None:
        pytest.skip("pyserial is not installed")
    if shutil.which("socat") is None:
        pytest.skip("socat is not installed (it makes the pty pair)")
    socat = subprocess.Popen(
        ["socat", "-d", "-d", "pty,raw,echo=0", "pty,raw,echo=0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert socat.stderr is not None
        ptys: list[str] = []
        deadline = time.monotonic() + TIMEOUT
        while len(ptys) < 2 and time.monotonic() < deadline:
            line = socat.stderr.readline()
            if not line:
                break
            ptys += re.findall(r"PTY is (\S+)", line)
        assert len(ptys) == 2, "socat did not report two ptys"
        result = run("serial_link.py", f"serial://{ptys[0]}", f"serial://{ptys[1]}")
        assert result.stdout.splitlines() == [
            f"link: serial://{ptys[0]}",
            "identify() -> {'model': 'rpcbd-sensor', 'firmware': '1.0'}",
            "read_temperature() -> 21.5",
            "read_temperature('F') -> 70.7",
        ]
    finally:
        socat.terminate()
        socat.communicate(timeout=TIMEOUT)


def test_lsp_stdio_child() -> None:
    needs_schemes("exec", "stdio")
    result = run("lsp_stdio_child.py")
    assert result.stdout.splitlines() == [
        "server says: toy server ready",
        "initialize -> toy {'hoverProvider': True}",
        "hover -> You are hovering line 3, column 7 of file:///tmp/project/main.py",
        "child exited: True",
    ]


def test_websocket_bridge() -> None:
    needs_schemes("ws")
    if importlib.util.find_spec("websockets") is None:
        pytest.skip("websockets is not installed")
    bridge = Started("websocket_bridge.py", "--port", "0")
    peer = ThreadedPeer()
    try:
        first = bridge.readline()
        assert first.startswith("listening on ws://127.0.0.1:")
        ws_url = first.split()[-1]
        page_line = bridge.readline()
        assert page_line.startswith("open http://127.0.0.1:")
        connection = peer.connect(ws_url)
        assert connection.request.echo("through the bridge") == "through the bridge"
        progress: list[str] = []
        assert connection.request.count(2, progress.append) == "Counted to 2"
        assert progress == ["Counted to 1", "Counted to 2"]
        with urllib.request.urlopen(page_line.split()[1], timeout=TIMEOUT) as response:
            page = response.read().decode()
        assert "<html" in page and "rpcbd.js" in page
    finally:
        peer.shutdown()
        status, out, err = bridge.stop(signal.SIGTERM)
    assert status == 0, err
    assert (bridge._pending.decode() + out).splitlines()[-1] == "Done!"


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def test_websocket_bridge_page_connects_in_a_browser(tmp_path: Path) -> None:
    needs_schemes("ws")
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed")
    bridge = Started("websocket_bridge.py", "--port", "0")
    doms: list[str] = []
    try:
        bridge.readline()
        page_url = bridge.readline().split()[1]
        # The page's script connected its WebSocket through the bridge.
        expected = "connected to " + page_url.replace("http://", "ws://") + "rpc"
        # --dump-dom prints the page once the virtual time budget has run out; on a loaded
        # machine that has happened before the page's WebSocket had connected (the page
        # showed its initial state): a few attempts, each with a fresh profile.
        for attempt in range(3):
            doms.append(
                subprocess.run(
                    [
                        browser,
                        "--headless",
                        "--no-sandbox",
                        "--disable-gpu",
                        f"--user-data-dir={tmp_path / str(attempt)}",
                        "--virtual-time-budget=5000",
                        "--dump-dom",
                        page_url,
                    ],
                    capture_output=True,
                    text=True,
                    timeout=60,
                ).stdout
            )
            if expected in doms[-1]:
                break
    finally:
        status, _, err = bridge.stop(signal.SIGTERM)
    assert status == 0, err
    assert expected in doms[-1], f"not connected after {len(doms)} attempts: {doms[-1]}"
