"""The ``rpcbd`` command line, run as a subprocess (``python -m rpcbd ...``).

Servers and bridges started here listen on port 0 and print their real URL on the first
line of stdout, which the tests read (with a deadline) before connecting.
"""

from __future__ import annotations

import os
import select
import shlex
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rpcbd.cli import parse_value

TIMEOUT = 30


def rpcbd(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rpcbd", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=cwd,
    )


class Background:
    """A long-running ``rpcbd serve`` / ``rpcbd bridge`` with its stderr in a file."""

    def __init__(self, args: list[str], log: Path, cwd: str | None = None) -> None:
        self.log = log
        self._stderr = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rpcbd", *args],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            cwd=cwd,
        )
        self.url = self._first_line().split()[-1]

    def _first_line(self) -> str:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], TIMEOUT)
        if not ready:
            self.stop()
            pytest.fail(f"no URL printed within {TIMEOUT}s; stderr: {self.log.read_text()}")
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            self.stop()
            pytest.fail(f"unexpected first line {line!r}; stderr: {self.log.read_text()}")
        return line.strip()

    def wait_for_log(self, text: str) -> str:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            content = self.log.read_text()
            if text in content:
                return content
            time.sleep(0.02)  # polling a file with a deadline
        pytest.fail(f"{text!r} never appeared in the log: {self.log.read_text()}")

    def stop(self, signum: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            status = self.proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            status = self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()
        return status


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Background]:
    proc = Background(["serve", "tcp://127.0.0.1:0"], tmp_path / "serve.log")
    try:
        yield proc
    finally:
        proc.stop()


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TestHelp:
    @pytest.mark.parametrize(
        "args", [[], ["demo"], ["serve"], ["call"], ["notify"], ["bridge"]], ids=str
    )
    def test_help_at_every_level(self, args: list[str]) -> None:
        result = rpcbd(*args, "--help")
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("usage: rpcbd")
        assert "--trace" in result.stdout or not args

    def test_no_command_is_a_usage_error(self) -> None:
        result = rpcbd()
        assert result.returncode == 2
        assert "COMMAND" in result.stderr

    def test_bad_option_is_a_usage_error(self) -> None:
        result = rpcbd("call", "--no-such-option")
        assert result.returncode == 2
        assert "usage:" in result.stderr

    def test_main_returns_the_status(self, capsys: pytest.CaptureFixture[str]) -> None:
        from rpcbd.__main__ import main

        assert main(["--version"]) == 0
        assert "rpcbd" in capsys.readouterr().out

    def test_version_says_how_rpcbd_was_built(self, capsys: pytest.CaptureFixture[str]) -> None:
        from rpcbd.__main__ import main
        from rpcbd._compiled import compiled_modules
        from rpcbd.codecs.serializer import default_serializer

        assert main(["--version"]) == 0
        out = capsys.readouterr().out
        expected = "compiled with mypyc" if compiled_modules() else "pure Python"
        assert expected in out
        assert f"JSON: {default_serializer().name}" in out


class TestParseValue:
    @pytest.mark.parametrize(
        ("text", "value"),
        [
            ("3", 3),
            ("-1.5", -1.5),
            ('"3"', "3"),
            ("hello", "hello"),
            ("[1, 2]", [1, 2]),
            ('{"a": null}', {"a": None}),
            ("true", True),
            ("null", None),
            ("", ""),
        ],
    )
    def test_json_or_string(self, text: str, value: object) -> None:
        assert parse_value(text) == value


class TestDemo:
    def test_demo_tells_the_whole_story(self) -> None:
        result = rpcbd("demo")
        assert result.returncode == 0, result.stderr
        out = result.stdout
        for section in (
            "A call from the client to the server",
            "A notification: no reply",
            "The server calls the client, during the client's call",
            "An implicit callback",
            "Errors come back as exceptions",
        ):
            assert section in out
        # a call each way, on the wire
        assert '--> {"jsonrpc":"2.0","method":"echo","params":["Hello World!"],"id":1}' in out
        assert '--> {"jsonrpc":"2.0","method":"log","params":["hello","server"]}' in out
        assert '<-- {"jsonrpc":"2.0","method":"whoami","id":1}' in out
        assert "returned 'the rpcbd demo client'" in out
        # the callback lines come from MainThread, in order, before the result
        lines = [f"progress: Counted to {i}  (in MainThread)" for i in range(1, 6)]
        positions = [out.index(line) for line in lines]
        assert positions == sorted(positions)
        assert positions[-1] < out.index("returned 'Counted to 5'")
        # errors
        assert "RpcInternalError(code=-32603" in out
        assert "code=4001" in out and '"a": "str"' in out
        assert "Traceback" not in out + result.stderr
        assert "\x1b[" not in out  # no colour when stdout is not a terminal

    def test_demo_trace_prints_both_sides_to_stderr(self) -> None:
        result = rpcbd("demo", "--trace")
        assert result.returncode == 0
        assert result.stderr.count('"method":"echo"') == 2  # sent by one, read by the other


class TestCall:
    def test_echo_prints_json(self, server: Background) -> None:
        result = rpcbd("call", server.url, "echo", "hello")
        assert result.returncode == 0, result.stderr
        assert result.stdout == '"hello"\n'
        server.wait_for_log('call echo ["hello"] from tcp://127.0.0.1:')
        assert "connection from tcp://127.0.0.1:" in server.log.read_text()

    def test_json_args_and_named_args(self, server: Background) -> None:
        result = rpcbd("call", server.url, "echo", '{"a": [1, 2.5, null]}')
        assert result.stdout == '{"a": [1, 2.5, null]}\n'
        result = rpcbd("call", server.url, "divide", "--kw", "a=7", "--kw", "b=2")
        assert result.returncode == 0, result.stderr
        assert result.stdout == "3.5\n"

    def test_callback_prints_progress_then_the_result(self, server: Background) -> None:
        result = rpcbd("call", server.url, "count", "3", "--callback")
        assert result.returncode == 0, result.stderr
        assert result.stderr.splitlines() == [f'callback("Counted to {i}")' for i in (1, 2, 3)]
        assert result.stdout == '"Counted to 3"\n'

    def test_trace(self, server: Background) -> None:
        result = rpcbd("call", server.url, "echo", "1", "--trace")
        assert result.returncode == 0
        assert result.stderr.splitlines() == [
            '--> {"jsonrpc":"2.0","method":"echo","params":[1],"id":1}',
            '<-- {"jsonrpc":"2.0","result":1,"id":1}',
        ]
        assert result.stdout == "1\n"

    def test_internal_error_exits_1(self, server: Background) -> None:
        result = rpcbd("call", server.url, "divide", "1", "0")
        assert result.returncode == 1
        assert result.stderr == "error -32603: Internal error\n"
        assert result.stdout == ""

    def test_custom_error_with_data_exits_1(self, server: Background) -> None:
        result = rpcbd("call", server.url, "divide", "one", "2")
        assert result.returncode == 1
        assert result.stderr.splitlines() == [
            "error 4001: divide needs two numbers",
            'data: {"a": "str", "b": "int"}',
        ]

    def test_unknown_method_exits_1(self, server: Background) -> None:
        result = rpcbd("call", server.url, "no_such_method")
        assert result.returncode == 1
        assert result.stderr.startswith("error -32601: Method not found")

    def test_notify(self, server: Background) -> None:
        result = rpcbd("notify", server.url, "log", "hi", "there")
        assert result.returncode == 0, result.stderr
        assert result.stdout == ""
        server.wait_for_log("says: hi there")

    def test_connection_refused_exits_3(self) -> None:
        url = f"tcp://127.0.0.1:{free_port()}"
        result = rpcbd("call", url, "echo", "1")
        assert result.returncode == 3
        assert result.stderr.startswith(f"rpcbd call: {url}: ")

    def test_timeout_exits_3(self) -> None:
        # A socket that listens but never answers: the kernel accepts the connection.
        with socket.socket() as silent:
            silent.bind(("127.0.0.1", 0))
            silent.listen()
            url = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
            started = time.monotonic()
            result = rpcbd("call", url, "echo", "1", "--timeout", "0.3")
            elapsed = time.monotonic() - started
        assert result.returncode == 3
        assert "timed out" in result.stderr
        assert elapsed < 10

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["call", "nope://x", "echo"], "unknown transport URL"),
            (["call", "tcp://127.0.0.1:9", "echo", "--kw", "novalue"], "NAME=VALUE"),
            (["call", "tcp://127.0.0.1:9", "echo", "1", "--kw", "a=1"], "not both"),
            (["call", "tcp://127.0.0.1:9", "echo", "--v1", "--kw", "a=1"], "1.0"),
            (["call", "tcp://127.0.0.1:9", "echo", "--framing", "bogus"], "unknown framing"),
            (["call", "tcp://127.0.0.1:9", "echo", "--timeout", "-1"], "--timeout"),
            (["serve", "tcp://127.0.0.1:0", "--framing", "bogus"], "unknown framing"),
            (["bridge", "tcp://127.0.0.1:9", "tcp://127.0.0.1:9", "--framing-a", "x"], "framing"),
        ],
    )
    def test_usage_errors_exit_2(self, args: list[str], message: str) -> None:
        result = rpcbd(*args)
        assert result.returncode == 2
        assert message in result.stderr

    def test_call_a_child_process_over_exec(self) -> None:
        from rpcbd.transports import registered_schemes

        if "exec" not in registered_schemes():
            pytest.skip("the exec: transport is not registered yet")
        child = Path(__file__).resolve().parent.parent / "examples" / "lsp_stdio_child.py"
        url = "exec:" + shlex.join([sys.executable, str(child), "--child"])
        result = rpcbd(
            "call",
            url,
            "textDocument/hover",
            "--kw",
            'textDocument={"uri": "file:///x.py"}',
            "--kw",
            'position={"line": 1, "character": 2}',
            "--trace",
        )
        assert result.returncode == 0, result.stderr
        assert "line 1, column 2 of file:///x.py" in result.stdout
        assert '--> {"jsonrpc":"2.0","method":"textDocument/hover"' in result.stderr


class TestServe:
    def test_sigint_and_sigterm_stop_cleanly(self, tmp_path: Path) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            proc = Background(["serve", "tcp://127.0.0.1:0"], tmp_path / "serve.log")
            assert rpcbd("call", proc.url, "echo", "1").returncode == 0
            assert proc.stop(signum) == 0
            assert "Traceback" not in proc.log.read_text()

    def test_custom_handler_and_v1(self, tmp_path: Path) -> None:
        (tmp_path / "myhandlers.py").write_text(
            textwrap.dedent(
                """
                from rpcbd import Handler

                class Greeter(Handler):
                    def greet(self, name):
                        return "Hello, " + name
                """
            )
        )
        for spec in ("myhandlers:Greeter", str(tmp_path / "myhandlers.py") + ":Greeter"):
            proc = Background(
                ["serve", "tcp://127.0.0.1:0", "--handler", spec, "--v1"],
                tmp_path / "serve.log",
                cwd=str(tmp_path),
            )
            try:
                result = rpcbd("call", proc.url, "greet", "Ada", "--v1", "--trace")
                assert result.returncode == 0, result.stderr
                assert result.stdout == '"Hello, Ada"\n'
                assert '"error":null' in result.stderr  # JSON-RPC 1.0 replies carry both
            finally:
                assert proc.stop() == 0

    def test_bad_handler_exits_2(self, tmp_path: Path) -> None:
        result = rpcbd("serve", "tcp://127.0.0.1:0", "--handler", "no_such_module:X")
        assert result.returncode == 2
        assert "cannot import no_such_module" in result.stderr
        result = rpcbd("serve", "tcp://127.0.0.1:0", "--handler", "rpcbd.demo:Nope")
        assert result.returncode == 2
        assert "has no class Nope" in result.stderr

    def test_handler_needing_decorators_exits_2(self, tmp_path: Path) -> None:
        (tmp_path / "undecided.py").write_text(
            "from rpcbd import Handler\n\n"
            "class Undecided(Handler):\n"
            "    assume_methods_block = None\n\n"
            "    def work(self):\n"
            "        return 1\n"
        )
        result = rpcbd(
            "serve", "tcp://127.0.0.1:0", "--handler", "undecided:Undecided", cwd=str(tmp_path)
        )
        assert result.returncode == 2
        assert "cannot serve Undecided" in result.stderr and "work" in result.stderr

    def test_address_in_use_exits_3(self, server: Background) -> None:
        result = rpcbd("serve", server.url)
        assert result.returncode == 3


class TestBridge:
    def test_relays_between_framings(self, tmp_path: Path) -> None:
        backend = Background(
            ["serve", "tcp://127.0.0.1:0", "--framing", "content-length"], tmp_path / "serve.log"
        )
        bridge = None
        try:
            bridge = Background(
                [
                    "bridge",
                    "tcp://127.0.0.1:0",
                    backend.url,
                    "--listen-a",
                    "--framing-a",
                    "newline",
                    "--framing-b",
                    "content-length",
                    "--trace",
                ],
                tmp_path / "bridge.log",
            )
            # A newline client cannot talk to the content-length server directly...
            direct = rpcbd("call", backend.url, "echo", "1", "--timeout", "2")
            assert direct.returncode != 0
            # ...but can through the bridge, both ways (the callbacks come back).
            result = rpcbd("call", bridge.url, "count", "2", "--callback")
            assert result.returncode == 0, result.stderr + bridge.log.read_text()
            assert result.stdout == '"Counted to 2"\n'
            assert result.stderr.count("callback(") == 2
            log = bridge.wait_for_log('<-- {"jsonrpc":"2.0","result":"Counted to 2","id":1}')
            assert '--> {"jsonrpc":"2.0","method":"count"' in log
            # A second client gets its own connection to the backend.
            assert rpcbd("call", bridge.url, "echo", "again").stdout == '"again"\n'
        finally:
            if bridge is not None:
                assert bridge.stop() == 0
            backend.stop()

    def test_connect_both_sides_ends_with_the_pair(self, tmp_path: Path) -> None:
        # B is a bare socket the test controls; A is the demo server.
        backend = Background(["serve", "tcp://127.0.0.1:0"], tmp_path / "serve.log")
        try:
            with socket.socket() as listener:
                listener.bind(("127.0.0.1", 0))
                listener.listen()
                port = listener.getsockname()[1]
                proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "rpcbd",
                        "bridge",
                        backend.url,
                        f"tcp://127.0.0.1:{port}",
                        "--framing-b",
                        "netstring",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                listener.settimeout(TIMEOUT)
                conn, _ = listener.accept()
                with conn:
                    conn.settimeout(TIMEOUT)
                    request = b'{"jsonrpc":"2.0","method":"echo","params":["x"],"id":7}'
                    conn.sendall(b"%d:%s," % (len(request), request))
                    reply = b""
                    while not reply.endswith(b","):
                        chunk = conn.recv(4096)
                        assert chunk, "bridge closed early"
                        reply += chunk
                body = b'{"jsonrpc":"2.0","result":"x","id":7}'
                assert reply == b"%d:%s," % (len(body), body)
                _, stderr = proc.communicate(timeout=TIMEOUT)  # B closed: the bridge ends
                assert proc.returncode == 0, stderr
        finally:
            backend.stop()

    def test_both_sides_listening_is_a_usage_error(self) -> None:
        result = rpcbd(
            "bridge", "tcp://127.0.0.1:0", "tcp://127.0.0.1:0", "--listen-a", "--listen-b"
        )
        assert result.returncode == 2
        assert "at most one side" in result.stderr

    def test_unreachable_side_exits_3(self) -> None:
        url = f"tcp://127.0.0.1:{free_port()}"
        result = rpcbd("bridge", url, url)
        assert result.returncode == 3


@pytest.mark.skipif(not hasattr(os, "fork"), reason="console script check needs a POSIX shell")
def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("rpcbd")
    if not script.exists():
        pytest.skip("the rpcbd console script is not installed next to this python")
    result = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, timeout=TIMEOUT
    )
    assert result.returncode == 0
    assert "demo" in result.stdout
