"""A child process for the exec:/stdio: tests: serves a handler over its stdin/stdout."""

from __future__ import annotations

import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from rpcbd import Handler
from rpcbd.aio import AsyncPeer


class Child(Handler):
    async def echo(self, value: object) -> object:
        return value

    async def pid(self) -> int:
        return os.getpid()

    async def hang(self) -> None:
        await asyncio.Event().wait()

    async def ask_parent(self, value: int) -> object:
        return await self.connection.request.parent_double(value)


async def main() -> None:
    async with AsyncPeer(default_handler=Child) as peer:
        conn = await peer.connect("stdio:")
        await conn.wait_closed()


if __name__ == "__main__":
    asyncio.run(main())
