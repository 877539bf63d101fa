"""In-process pipes: two connected connections, no sockets - for tests and embedding.

``pipe_pair(handler_a, handler_b)`` returns two connections, each served by its own
private peer. Calls go both ways; closing either end closes both and stops the peers.

Run:  python inprocess_pipes.py
"""

from rpcbd import Handler, RpcMethodNotFoundError, mayblock, pipe_pair


class Server(Handler):
    def add(self, a, b):
        return a + b

    @mayblock
    def greet(self):
        # Symmetric: the server asks the client for its name.
        name = self.connection.request.name()
        return "Hello, %s!" % name


class Client(Handler):
    def name(self):
        return "pipe client"


if __name__ == "__main__":
    client, server = pipe_pair(Client, Server)
    with client:
        assert client.request.add(2, 3) == 5
        print("add(2, 3) = %d" % client.request.add(2, 3))
        print("greet() = %r" % client.request.greet())
        try:
            client.request.no_such_method()
        except RpcMethodNotFoundError as exc:
            print("no_such_method() raised %s (code %d)" % (type(exc).__name__, exc.code))
    server.wait_closed(5)  # the other end notices at once, on its own reader thread
    print("closed: %s %s" % (client.closed, server.closed))
