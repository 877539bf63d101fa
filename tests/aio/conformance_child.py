"""A child process for the asyncio ``exec:``/``stdio:`` conformance runs: an AsyncPeer
serves the conformance handler over its stdin/stdout until the connection closes.

Usage: ``python conformance_child.py [--framing NAME] [--max-message-size N]``
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

# The repository root, so that the conformance handler imports as in the tests.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from rpcbd.aio import AsyncPeer
from tests.transports.conformance import ConformanceHandler


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--framing", default=None)
    parser.add_argument("--max-message-size", type=int, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    options = {}
    if args.max_message_size:
        options["max_message_size"] = args.max_message_size
    async with AsyncPeer(default_handler=ConformanceHandler, **options) as peer:
        connection = await peer.connect("stdio:", framing=args.framing)
        print("this line goes to stderr, not into the protocol")  # stdout is protected
        await connection.wait_closed()


if __name__ == "__main__":
    asyncio.run(main())
