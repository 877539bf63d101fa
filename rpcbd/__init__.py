"""rpcbd: bi-directional JSON-RPC.

Either side of a connection can call the other at any time; many calls can be in flight;
any thread may call. See https://rpcbd.invalid/docs for the guide.
"""

from __future__ import annotations

from rpcbd.codecs.jsonrpc1 import JSONRPC_V1
from rpcbd.codecs.jsonrpc2 import JSONRPC_V2
from rpcbd.context import CallContext, current_call
from rpcbd.core.endpoint import Endpoint
from rpcbd.dispatch import Handler, exposed, hidden, mayblock, willnotblock
from rpcbd.exceptions import (
    ConnectionClosedError,
    FramingError,
    LocalProtocolError,
    MessageTooLargeError,
    ProtocolError,
    RemoteProtocolError,
    RPCBDError,
    RpcCancelledError,
    RpcError,
    RpcInternalError,
    RpcInvalidError,
    RpcInvalidParamsError,
    RpcMethodNotFoundError,
    RpcParseError,
    RpcServerBusyError,
    RpcServerError,
    RpcTimeoutError,
    TransportError,
)
from rpcbd.threaded import (
    Connection,
    ConnectionGroup,
    Dispatcher,
    Listener,
    RemoteCallback,
    ThreadedPeer,
    ThreadedTCPJsonRpcPeer,
    pipe_pair,
)

__version__ = "0.7.0.dev0"

__all__ = [
    "JSONRPC_V1",
    "JSONRPC_V2",
    "CallContext",
    "Connection",
    "ConnectionClosedError",
    "ConnectionGroup",
    "Dispatcher",
    "Endpoint",
    "FramingError",
    "Handler",
    "Listener",
    "LocalProtocolError",
    "MessageTooLargeError",
    "ProtocolError",
    "RPCBDError",
    "RemoteCallback",
    "RemoteProtocolError",
    "RpcCancelledError",
    "RpcError",
    "RpcInternalError",
    "RpcInvalidError",
    "RpcInvalidParamsError",
    "RpcMethodNotFoundError",
    "RpcParseError",
    "RpcServerBusyError",
    "RpcServerError",
    "RpcTimeoutError",
    "ThreadedPeer",
    "ThreadedTCPJsonRpcPeer",
    "TransportError",
    "__version__",
    "current_call",
    "exposed",
    "hidden",
    "mayblock",
    "pipe_pair",
    "willnotblock",
]
