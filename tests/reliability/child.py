"""A peer run in a child process by the fault tests, so that it can be SIGKILLed.

Usage (run by path, never imported by the tests)::

    python child.py serve URL   # serve ChildService on URL; "stdio:" serves over stdin/stdout
    python child.py call URL    # connect to URL (or "stdio:") and call the parent's ask_back()

With ``serve URL`` the child prints the listener's URL on a line of its own, then serves
until it is killed. Both modes only end by being killed (that is the point).
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

from rpcbd import Handler, ThreadedPeer, mayblock, willnotblock

_forever = threading.Event()


class ChildService(Handler):
    """What the parent calls in the child."""

    @willnotblock
    def pid(self) -> int:
        return os.getpid()

    @willnotblock
    def echo(self, value: Any) -> Any:
        return value

    @mayblock
    def block(self) -> None:
        # Tell the parent the call is running, then never answer: the parent kills us.
        self.connection.notification.started()
        _forever.wait(120)

    @mayblock
    def client_block(self) -> None:
        # The parent's handler calls back into us; keep its call in flight.
        self.connection.notification.callback_started(os.getpid())
        _forever.wait(120)


def main(argv: list[str]) -> int:
    mode, url = argv[1], argv[2]
    peer = ThreadedPeer(default_handler=ChildService, shutdown_on_parent_exit=False)
    if mode == "serve":
        if url == "stdio:":
            connection = peer.connect("stdio:")
            connection.wait_closed(120)
        else:
            listener = peer.listen(url)
            print(listener.url, flush=True)
            _forever.wait(120)
    elif mode == "call":
        connection = peer.connect(url)
        connection.request.ask_back()
    peer.shutdown(timeout=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
