"""An LSP-style child process: JSON-RPC over the child's stdin/stdout, with
``Content-Length`` headers (the framing of the Language Server Protocol and
vscode-jsonrpc, and the default of ``stdio:`` and ``exec:``).

The parent starts this same file as the child with ``peer.spawn([...])`` (the same as
``peer.connect("exec:python lsp_stdio_child.py --child")``); the child serves over
``connect("stdio:")``. Method names like ``textDocument/hover`` are not Python
identifiers: ``@exposed("textDocument/hover")`` maps them.

Run:  python lsp_stdio_child.py
"""

import sys

from rpcbd import JSONRPC_V2, Handler, ThreadedPeer, exposed, mayblock, willnotblock


class LanguageServer(Handler):
    """The child: a toy language server."""

    @mayblock  # it notifies the client while it runs
    def initialize(self, processId, rootUri, capabilities):
        self.connection.notification("window/logMessage")(type=3, message="toy server ready")
        return {"capabilities": {"hoverProvider": True}, "serverInfo": {"name": "toy"}}

    @exposed("textDocument/hover")
    def hover(self, textDocument, position):
        word = "line %d, column %d of %s" % (
            position["line"],
            position["character"],
            textDocument["uri"],
        )
        return {"contents": {"kind": "plaintext", "value": "You are hovering " + word}}

    def shutdown(self):
        return None

    def exit(self):
        # A notification: the client is done. Closing ends the child's main loop.
        self.connection.close()


class Editor(Handler):
    """The parent: what an editor serves to its language server."""

    @exposed("window/logMessage")
    @willnotblock  # inline on the reader: printed before the reply that follows it
    def log_message(self, type, message):
        print("server says: %s" % message)


def child():
    peer = ThreadedPeer(JSONRPC_V2, default_handler=LanguageServer)
    connection = peer.connect("stdio:")  # stdout now carries only protocol bytes
    connection.wait_closed()
    peer.shutdown()


def parent():
    peer = ThreadedPeer(JSONRPC_V2, default_handler=Editor, default_timeout=10)
    try:
        server = peer.spawn([sys.executable, __file__, "--child"])
        result = server.request.initialize(
            processId=None, rootUri="file:///tmp/project", capabilities={}
        )
        print("initialize ->", result["serverInfo"]["name"], result["capabilities"])
        hover = server.request("textDocument/hover")(
            textDocument={"uri": "file:///tmp/project/main.py"},
            position={"line": 3, "character": 7},
        )
        print("hover ->", hover["contents"]["value"])
        server.request.shutdown()
        server.notification.exit()
        server.wait_closed(10)
        print("child exited:", server.closed)
    finally:
        peer.shutdown()


if __name__ == "__main__":
    if "--child" in sys.argv:
        child()
    else:
        parent()
