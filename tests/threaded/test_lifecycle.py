"""Load, failure and lifecycle tests over real sockets and processes (issue: threaded
runtime). Time bounds here only catch hangs; speed is measured in benchmarks/."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from rpcbd import Handler, ThreadedPeer, TransportError, mayblock

from .helpers import Service, open_fds, wait_until

CHILD_SERVER = textwrap.dedent(
    """
    import signal, sys, threading, time
    from rpcbd import Handler, ThreadedPeer, mayblock

    class Svc(Handler):
        @mayblock
        def hang(self):
            threading.Event().wait()

        def echo(self, x):
            return x

    peer = ThreadedPeer(default_handler=Svc, shutdown_on_parent_exit=False)
    listener = peer.listen("tcp://127.0.0.1:0")

    def announce():
        # Tell the test our port once serve_forever() has installed its SIGTERM handler.
        while signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            time.sleep(0.01)
        print(listener.port, flush=True)

    threading.Thread(target=announce, daemon=True).start()
    peer.serve_forever()
    print("clean exit", flush=True)
    """
)


def start_child(source: str) -> tuple[subprocess.Popen[str], int]:
    child = subprocess.Popen([sys.executable, "-c", source], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line.strip().isdigit(), line
    return child, int(line)


def test_sixteen_threads_share_one_connection() -> None:
    server = ThreadedPeer(default_handler=Service)
    client = ThreadedPeer()
    try:
        connection = client.connect(server.listen("tcp://127.0.0.1:0").url)
        wrong: list[tuple[int, int, Any]] = []

        def work(worker: int) -> None:
            for i in range(500):
                value = worker * 1000 + i
                got = connection.request.add(value, 1)
                if got != value + 1:
                    wrong.append((worker, i, got))

        threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not any(t.is_alive() for t in threads)
        assert wrong == []
    finally:
        client.shutdown()
        server.shutdown()


def test_server_killed_mid_call_fails_the_call_fast() -> None:
    child, port = start_child(CHILD_SERVER)
    client = ThreadedPeer()
    try:
        connection = client.connect(f"tcp://127.0.0.1:{port}")
        assert connection.request.echo(1) == 1
        errors: list[BaseException] = []
        finished = threading.Event()

        def call() -> None:
            try:
                connection.request("hang", timeout=None)()
            except BaseException as exc:
                errors.append(exc)
            finished.set()

        threading.Thread(target=call).start()
        assert wait_until(lambda: connection._endpoint.calls_in_flight == 1)
        killed_at = time.monotonic()
        child.send_signal(signal.SIGKILL)
        assert finished.wait(2.0), "the pending call did not fail within 2 s"
        assert time.monotonic() - killed_at < 2.0
        assert isinstance(errors[0], TransportError)
    finally:
        client.shutdown()
        child.kill()
        child.wait()


def test_serve_forever_sigterm_is_a_clean_shutdown() -> None:
    child, port = start_child(CHILD_SERVER)
    try:
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=20) == 0
        assert child.stdout is not None
        out = child.stdout.read()
        assert "clean exit" in out
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_client_vanishing_mid_call_leaves_server_serving() -> None:
    gate = threading.Event()

    class Svc(Handler):
        @mayblock
        def slow(self) -> str:
            gate.wait(10)
            return "late"

        def echo(self, x: Any) -> Any:
            return x

    server = ThreadedPeer(default_handler=Svc)
    try:
        listener = server.listen("tcp://127.0.0.1:0")
        leaving = ThreadedPeer()
        connection = leaving.connect(listener.url)
        connection.future.slow()
        assert wait_until(lambda: len(server.connections) == 1)
        leaving.shutdown()  # gone while its call runs
        gate.set()
        assert wait_until(lambda: not server.connections)
        staying = ThreadedPeer()
        try:
            assert staying.connect(listener.url).request.echo("next") == "next"
        finally:
            staying.shutdown()
    finally:
        gate.set()
        server.shutdown()


def test_connect_close_cycles_leak_nothing() -> None:
    server = ThreadedPeer(default_handler=Service)
    client = ThreadedPeer()
    try:
        url = server.listen("tcp://127.0.0.1:0").url
        # Warm up (worker threads start lazily), then measure.
        with client.connect(url) as connection:
            connection.request.echo(0)
        assert wait_until(lambda: not server.connections)
        fds, threads = open_fds(), threading.active_count()
        for i in range(500):
            with client.connect(url) as connection:
                if i % 50 == 0:
                    assert connection.request.echo(i) == i
        assert wait_until(lambda: not server.connections and not client.connections)
        assert wait_until(lambda: open_fds() <= fds and threading.active_count() <= threads)
    finally:
        client.shutdown()
        server.shutdown()


def test_shutdown_with_fifty_idle_connections_is_prompt() -> None:
    server = ThreadedPeer(default_handler=Service)
    client = ThreadedPeer()
    try:
        url = server.listen("tcp://127.0.0.1:0").url
        connections = [client.connect(url) for _ in range(50)]
        assert connections[-1].request.echo(1) == 1
        assert wait_until(lambda: len(server.connections) == 50)
        started = time.monotonic()
        server.shutdown()
        elapsed = time.monotonic() - started
        assert elapsed < 1.0, elapsed
        assert wait_until(lambda: all(c.closed for c in connections))
        started = time.monotonic()
        client.shutdown()
        assert time.monotonic() - started < 1.0
        assert not [t for t in threading.enumerate() if t.name.startswith("rpcbd-")]
    finally:
        client.shutdown()
        server.shutdown()


def test_back_pressure_bounds_requests_in_flight() -> None:
    gate = threading.Event()
    running: list[int] = []
    most = [0]
    lock = threading.Lock()

    class Svc(Handler):
        def work(self, n: int) -> int:
            with lock:
                running.append(n)
                most[0] = max(most[0], len(running))
            gate.wait(10)
            with lock:
                running.remove(n)
            return n

    server = ThreadedPeer(default_handler=Svc, workers=16, max_pending_requests=4)
    client = ThreadedPeer()
    try:
        connection = client.connect(server.listen("tcp://127.0.0.1:0").url)
        futures = [connection.future.work(n) for n in range(40)]
        assert wait_until(lambda: len(running) == 4)
        server_side = server.connections[0]
        # The reader stopped reading: the other requests wait in the kernel and client.
        assert wait_until(lambda: server_side._paused)
        assert server_side._endpoint.requests_in_flight == 4
        gate.set()
        assert [f.result(30) for f in futures] == list(range(40))
        assert most[0] <= 4
    finally:
        gate.set()
        client.shutdown()
        server.shutdown()


SCRIPT_FALLS_OFF_END = textwrap.dedent(
    """
    from rpcbd import ThreadedPeer, Handler

    class Svc(Handler):
        def echo(self, x):
            return x

        def stop(self):
            import threading
            threading.Thread(target=peer.shutdown).start()

    peer = ThreadedPeer(default_handler=Svc, shutdown_on_parent_exit={flag})
    print(peer.listen("tcp://127.0.0.1:0").port, flush=True)
    print("main done", flush=True)
    """
)


def test_script_falling_off_its_end_exits() -> None:
    child, _ = start_child(SCRIPT_FALLS_OFF_END.format(flag=True))
    try:
        # Not communicate(): with a timeout it reads the pipe below the buffer that
        # start_child's readline() has already filled.
        assert child.wait(timeout=20) == 0
        assert child.stdout is not None
        out = child.stdout.read()
        assert "main done" in out
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_shutdown_on_parent_exit_false_keeps_serving() -> None:
    child, port = start_child(SCRIPT_FALLS_OFF_END.format(flag=False))
    client = ThreadedPeer()
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "main done"
        connection = client.connect(f"tcp://127.0.0.1:{port}")
        assert connection.request.echo("alive") == "alive"  # main thread has ended
        connection.notification.stop()  # a notification: no reply races the shutdown
        child.wait(20)
        assert child.returncode == 0
    finally:
        client.shutdown()
        if child.poll() is None:
            child.kill()
            child.wait()


def test_shutdown_is_idempotent_and_refuses_new_work(tmp_path: Path) -> None:
    peer = ThreadedPeer()
    peer.shutdown()
    peer.shutdown()
    with pytest.raises(RuntimeError):
        peer.listen("tcp://127.0.0.1:0")
    assert os.path.exists(tmp_path)
