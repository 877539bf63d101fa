"""A browser talks to a TCP JSON-RPC service through a WebSocket bridge.

It starts:

1. a TCP JSON-RPC service (rpcbd's demo handler: echo, count, divide) on a free port,
   standing for the service you already have (or pass ``--backend tcp://HOST:PORT``);
2. a bridge listening on ``ws://127.0.0.1:PORT/rpc`` that relays every WebSocket message
   to its own TCP connection to the service, re-framed with newlines. The same port
   answers plain HTTP: ``/`` is rpcbd's browser demo page, ``/rpcbd.js`` its client.

Open the printed ``http://`` address in a browser, then Ctrl-C to stop. The command-line
equivalent of step 2 is ``rpcbd bridge ws://127.0.0.1:8765/rpc tcp://... --listen-a``.

Run:  python websocket_bridge.py [--port 8765] [--backend tcp://127.0.0.1:9999]
"""

import argparse

from rpcbd import JSONRPC_V2, ThreadedPeer
from rpcbd.cli import Bridge
from rpcbd.demo import DemoHandler

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--backend", help="an existing TCP service to bridge to")
    args = parser.parse_args()

    service = None
    backend = args.backend
    if backend is None:
        service = ThreadedPeer(JSONRPC_V2, default_handler=DemoHandler)
        backend = service.listen("tcp://127.0.0.1:0").url

    bridge = Bridge(f"ws://127.0.0.1:{args.port}/rpc", backend, listen_a=True)
    ws_url = bridge.start()
    print("listening on", ws_url, flush=True)
    print("open", ws_url.replace("ws://", "http://").rsplit("/", 1)[0] + "/", "in a browser")
    print("bridged to", backend, flush=True)
    try:
        bridge.serve_forever()  # until Ctrl-C or SIGTERM
    finally:
        if service is not None:
            service.shutdown()
    print("Done!")
