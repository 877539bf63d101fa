"""Implicit callbacks: pass a Python function as an argument.

rpcbd sends the function as the method name ``rpc.callback.<uuid4>``. While the call is in
flight the server calls that name (here five notifications), and the function runs in the
caller's own thread, in order, before the call returns. The name stops working when the
final response arrives.

Run:  python callbacks_implicit.py       (starts its own server on a free port)
"""

import threading

from rpcbd import JSONRPC_V2, Handler, ThreadedTCPJsonRpcPeer, mayblock


class Counter(Handler):
    @mayblock  # it calls the other side while it runs: give it a worker thread
    def count(self, n, callback):
        for i in range(1, n + 1):
            callback("Counted to %d" % i)  # a notification to rpc.callback.<uuid>
        return "Counted to %d" % n


def progress(message):
    print("%s (in %s)" % (message, threading.current_thread().name))


if __name__ == "__main__":
    server = ThreadedTCPJsonRpcPeer(JSONRPC_V2, default_handler=Counter)
    listener = server.listen_tcp(port=0)

    client = ThreadedTCPJsonRpcPeer(JSONRPC_V2)
    connection = client.connect_tcp("127.0.0.1", listener.port)
    result = connection.request.count(5, progress)
    print("Result: %s" % result)

    client.shutdown()
    server.shutdown()
