"""The seed's stand-alone echo server, in Python 3.

Run:  python tcp_server.py [PORT]      (default 9999; 0 picks a free port)
Then: python tcp_client.py PORT        in another shell.  Ctrl-C stops the server.
"""

import logging  # so we can see what is happening
import sys
from time import sleep

from rpcbd import JSONRPC_V2, Handler, ThreadedTCPJsonRpcPeer


class Example(Handler):
    assume_methods_block = False

    def echo(self, data):
        return data


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9999
    peer = ThreadedTCPJsonRpcPeer(JSONRPC_V2, default_handler=Example)
    listener = peer.listen_tcp(port=port)
    print(f"Listening on port {listener.port}", flush=True)
    try:
        while True:
            sleep(1)
    except KeyboardInterrupt:
        print("*** Got keyboard interrupt - shutting down ***")
        peer.shutdown()
    print("Done!")
