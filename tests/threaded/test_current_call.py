"""``current_call()`` in notification handlers, whose context is made only when asked for."""

from __future__ import annotations

import queue
import threading
from typing import Any

import pytest

from rpcbd import Handler, current_call, mayblock, pipe_pair, willnotblock
from tests.helpers import describe_current_call

NOTED: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()


def _describe(connection: Any) -> dict[str, Any]:
    return describe_current_call(connection, threading.Event)


class Notes(Handler):
    @willnotblock
    def inline(self) -> None:
        NOTED.put(_describe(self.connection))

    @mayblock
    def in_pool(self) -> None:
        NOTED.put(_describe(self.connection))

    @willnotblock
    def describe(self) -> dict[str, Any]:
        return _describe(self.connection)


@pytest.mark.parametrize("method", ["inline", "in_pool"])
def test_notification_handlers_see_their_call(method: str) -> None:
    client, _server = pipe_pair(None, Notes)
    try:
        getattr(client.notification, method)()
        assert NOTED.get(timeout=5) == {
            "id": None,
            "method": method,
            "same_connection": True,
            "same_object": True,
            "cancelled": False,
            "event_type_ok": True,
        }
        # A request's context is the one $/cancelRequest reaches; it says the same.
        described = client.request.describe()
        assert described["method"] == "describe" and isinstance(described["id"], int)
        assert current_call() is None  # nothing leaks out of a handler
    finally:
        client.close()
