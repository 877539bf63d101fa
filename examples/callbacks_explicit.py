"""Explicit callbacks: pass a method *name*; the other side calls it like any method.

The client serves its own handler (``default_handler``), so the server can call
``report`` on it at any time - during the call, as here, or later. Unlike an implicit
callback, it runs where the client's handler methods run: on the thread reading the
connection for a ``@willnotblock`` method (in arrival order), on a worker thread for a
``@mayblock`` one.

Run:  python callbacks_explicit.py
"""

from rpcbd import JSONRPC_V2, Handler, ThreadedTCPJsonRpcPeer, mayblock, willnotblock


class Counter(Handler):
    @mayblock
    def count(self, n, method_name):
        for i in range(1, n + 1):
            self.connection.notification(method_name)("Counted to %d" % i)
        # A request (not a notification) waits for the client's answer:
        return self.connection.request(method_name)("Finished counting to %d" % n)


class Reporter(Handler):
    @willnotblock  # runs inline, where the connection is read, in arrival order
    def report(self, message):
        print("report: %s" % message)
        return "ok"


if __name__ == "__main__":
    server = ThreadedTCPJsonRpcPeer(JSONRPC_V2, default_handler=Counter)
    listener = server.listen_tcp(port=0)

    client = ThreadedTCPJsonRpcPeer(JSONRPC_V2, default_handler=Reporter)
    connection = client.connect_tcp("127.0.0.1", listener.port)
    result = connection.request.count(3, "report")
    print("Result: %s" % result)

    client.shutdown()
    server.shutdown()
