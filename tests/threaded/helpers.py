"""Helpers for the threaded runtime tests."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from rpcbd import Handler, RpcError, current_call, mayblock, willnotblock
from rpcbd._compiled import compiled_modules

#: For a test that replaces a global of ``rpcbd.threaded.connection`` (a module it imported)
#: to force a rare path: compiled (RPCBD_TEST_COMPILED), the module keeps what it imported,
#: so the test runs against the pure-Python build only (the same source).
patches_connection_globals = pytest.mark.skipif(
    "rpcbd.threaded.connection" in compiled_modules(),
    reason="patches a global of rpcbd.threaded.connection, which the compiled build does "
    "not look up again: runs in the pure-Python suite",
)


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until true or ``timeout``; returns its last value."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return predicate()
        time.sleep(0.005)
    return True


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def thread_names() -> list[str]:
    return sorted(t.name for t in threading.enumerate())


class Custom(RpcError):
    code = 42
    default_message = "custom"


class Service(Handler):
    """The server-side handler the tests call."""

    release = threading.Event()

    @willnotblock
    def echo(self, data: Any) -> Any:
        return data

    @willnotblock
    def add(self, a: int, b: int) -> int:
        return a + b

    @willnotblock
    def divide(self, a: float, b: float) -> float:
        return a / b

    @willnotblock
    def fail(self, code: int, message: str, data: Any = None) -> None:
        raise RpcError(code, message, data)

    @willnotblock
    def fail_custom(self) -> None:
        raise Custom("my message", data={"why": "because"})

    @willnotblock
    def type_error_inside(self) -> None:
        len(5)  # type: ignore[arg-type]

    @mayblock
    def count(self, n: int, callback: Any = None) -> str:
        for i in range(1, n + 1):
            callback("Counted to %d" % i)
        return "Counted to %d" % n

    @mayblock
    def ask_back(self, value: Any) -> Any:
        # The server calls the client while the client's call is in flight.
        return self.connection.request.client_echo(value)

    @willnotblock
    def ask_back_inline(self, value: Any) -> Any:
        return self.connection.request.client_echo(value)

    @mayblock
    def wait_for_cancel(self) -> str:
        call = current_call()
        assert call is not None
        if call.cancel_event.wait(10):
            call.raise_if_cancelled()
        return "not cancelled"

    @mayblock
    def block(self) -> str:
        Service.release.wait(10)
        return "released"


class ClientSide(Handler):
    assume_methods_block = False

    def client_echo(self, value: Any) -> Any:
        return ["client", value]
