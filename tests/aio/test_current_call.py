"""``current_call()`` in inline handlers, whose context is made only when asked for."""

from __future__ import annotations

import asyncio
from typing import Any

from rpcbd import Handler, current_call
from rpcbd.aio import AsyncPeer
from tests.aio.conftest import Runner
from tests.helpers import describe_current_call


def _describe(connection: Any) -> dict[str, Any]:
    return describe_current_call(connection, asyncio.Event)


class Inline(Handler):
    assume_methods_block = False
    notified: asyncio.Queue[dict[str, Any]]

    def describe(self) -> dict[str, Any]:
        return _describe(self.connection)

    def note(self) -> None:
        self.notified.put_nowait(_describe(self.connection))


def test_inline_handlers_see_their_call(arun: Runner) -> None:
    async def main() -> None:
        Inline.notified = asyncio.Queue()
        peer = AsyncPeer(default_handler=Inline)
        try:
            client, _server = peer.pipe_pair()
            described = await client.request.describe()
            assert described == {
                "id": described["id"],
                "method": "describe",
                "same_connection": True,
                "same_object": True,
                "cancelled": False,
                "event_type_ok": True,
            }
            assert isinstance(described["id"], int)
            client.notification.note()
            noted = await asyncio.wait_for(Inline.notified.get(), 5)
            assert noted == {**described, "id": None, "method": "note"}
            assert current_call() is None  # nothing leaks out of a handler
        finally:
            await peer.shutdown()

    arun(main)
