"""The seed documentation's snippets, verbatim apart from Python 3 ``print`` and the port.

Tests must not use fixed ports, so the snippets' ``9999`` is replaced by a port the
kernel just handed out; nothing else in the text changes.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

SIMPLE_SERVER = """
from rpcbd import Handler, ThreadedTCPJsonRpcPeer, JSONRPC_V2

class Example(Handler):
    assume_methods_block = False
    def echo(self, data):
        return data

peer = ThreadedTCPJsonRpcPeer(JSONRPC_V2, default_handler = Example)
peer.listen_tcp(port = 9999)
"""

SIMPLE_CLIENT = """
from rpcbd import ThreadedTCPJsonRpcPeer, JSONRPC_V2

peer = ThreadedTCPJsonRpcPeer(JSONRPC_V2)
connection = peer.connect_tcp('127.0.0.1', 9999)
data = connection.request.echo('Hello World!')
print('Got data: %s' % data)
"""

FINISH = """
peer.shutdown()
"""

STANDALONE = """
from rpcbd import Handler, ThreadedTCPJsonRpcPeer, JSONRPC_V2
from time import sleep
import logging # so we can see what is happening
import signal  # so keyboard interupt goes to main thread

class Example(Handler):
    assume_methods_block = False
    def echo(self, data):
        return data

if __name__=='__main__':
    logging.basicConfig(level = logging.INFO)
    peer = ThreadedTCPJsonRpcPeer(JSONRPC_V2, default_handler = Example)
    peer.listen_tcp(port = 9999)
    try:
        while True:
            sleep(1)
    except KeyboardInterrupt:
        print('*** Got keyboard interrupt - shutting down ***')
        peer.shutdown()
    print('Done!')
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run_snippet(source: str, port: int, namespace: dict[str, Any]) -> None:
    exec(compile(source.replace("9999", str(port)), "<seed snippet>", "exec"), namespace)


def test_simple_server_and_client_in_one_process(capsys: Any) -> None:
    port = free_port()
    server: dict[str, Any] = {}
    client: dict[str, Any] = {}
    run_snippet(SIMPLE_SERVER, port, server)
    try:
        run_snippet(SIMPLE_CLIENT, port, client)
        run_snippet(FINISH, port, client)
    finally:
        run_snippet(FINISH, port, server)
    assert capsys.readouterr().out == "Got data: Hello World!\n"


def test_standalone_server_and_client_processes(tmp_path: Path) -> None:
    port = free_port()
    server_file = tmp_path / "server.py"
    server_file.write_text(STANDALONE.replace("9999", str(port)))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen(
        [sys.executable, str(server_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        # The client retries until the server listens (bounded), then makes the call.
        client_source = (
            textwrap.dedent(
                f"""
            import socket, time
            deadline = time.monotonic() + 20
            while True:
                try:
                    socket.create_connection(("127.0.0.1", {port}), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)
            """
            )
            + SIMPLE_CLIENT.replace("9999", str(port))
            + FINISH
        )
        client = subprocess.run(
            [sys.executable, "-c", client_source], capture_output=True, text=True, timeout=60
        )
        assert client.returncode == 0, client.stderr
        assert client.stdout == "Got data: Hello World!\n"
        server.send_signal(signal.SIGINT)
        out, _ = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode == 0, out
    assert "*** Got keyboard interrupt - shutting down ***" in out
    assert out.rstrip().endswith("Done!")
