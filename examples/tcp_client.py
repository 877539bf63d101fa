"""The seed's simple client, in Python 3: calls ``echo`` on tcp_server.py.

Run:  python tcp_client.py [PORT] [HOST]      (default 9999 on 127.0.0.1)
"""

import sys

from rpcbd import JSONRPC_V2, ThreadedTCPJsonRpcPeer

port = int(sys.argv[1]) if len(sys.argv) > 1 else 9999
host = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"

peer = ThreadedTCPJsonRpcPeer(JSONRPC_V2)
connection = peer.connect_tcp(host, port)
data = connection.request.echo("Hello World!")
print("Got data: %s" % data)

peer.shutdown()
