"""The two codec interfaces: a *framing* cuts a byte stream into messages, a *dialect* turns
message bytes into JSON-RPC messages and back.

Neither does I/O. A framing is stateless and hands out one :class:`Deframer` per connection;
the deframer is an incremental parser that accepts the byte stream split anywhere.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from rpcbd._compiled import mypyc_attr
from rpcbd.exceptions import FramingError

if TYPE_CHECKING:
    from rpcbd.core.messages import Invalid, Message
    from rpcbd.exceptions import RpcError
    from rpcbd.typing import Params, RequestId

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "Deframer", "Dialect", "Framing"]

#: The default ``max_message_size``: 16 MiB.
DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024


# Users subclass it; a compiled build must allow that.
@mypyc_attr(allow_interpreted_subclasses=True)
class Deframer(ABC):
    """Incremental parser for one direction of one connection.

    Feed it bytes with :meth:`feed` as they arrive, then pull frames with :meth:`next_frame`
    until it returns ``None`` (more bytes are needed). At end of stream call
    :meth:`feed_eof`.

    Never buffers more than ``max_message_size`` bytes of one frame (plus the bytes of
    frames already complete and not yet pulled, and a small header allowance).
    """

    def __init__(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        if max_message_size < 1:
            raise ValueError("max_message_size must be positive")
        self.max_message_size = max_message_size

    @abstractmethod
    def feed(self, data: bytes | bytearray) -> None:
        """Append bytes received from the stream. Cheap: parsing happens in next_frame()."""

    @abstractmethod
    def next_frame(self) -> bytes | FramingError | None:
        """Return the next complete frame's payload, a :class:`FramingError`, or ``None``.

        A returned :class:`FramingError` with ``recoverable=True`` means the bad frame was
        skipped and later frames can still be pulled; with ``recoverable=False`` the
        deframer is dead and every later call returns the same error.
        """

    @abstractmethod
    def feed_eof(self) -> FramingError | None:
        """The stream ended. Return an error if a frame was left incomplete, else ``None``.

        Call after pulling every frame; bytes that are only whitespace between frames are
        not an error.
        """

    @property
    @abstractmethod
    def buffered(self) -> int:
        """Bytes held and not yet returned as frames."""


# Users subclass it; a compiled build must allow that.
@mypyc_attr(allow_interpreted_subclasses=True)
class Framing(ABC):
    """How messages are delimited on a byte stream."""

    #: The name users pass as ``framing=``.
    name: ClassVar[str] = ""

    @abstractmethod
    def frame(self, payload: bytes) -> bytes:
        """Return ``payload`` wrapped for the wire."""

    @abstractmethod
    def deframer(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> Deframer:
        """Return a new incremental parser for one incoming stream."""


# Users subclass it; a compiled build must allow that.
@mypyc_attr(allow_interpreted_subclasses=True)
class Dialect(ABC):
    """A JSON-RPC version: how messages map to JSON values.

    A dialect works on decoded JSON values; the endpoint's serializer turns them into bytes.
    Instances are stateless and shared: ``JSONRPC_V2`` and ``JSONRPC_V1``.
    """

    #: Short name, e.g. ``"2.0"``.
    version: ClassVar[str] = ""
    #: Whether arrays of messages (batches) exist in this version.
    supports_batches: ClassVar[bool] = False
    #: Whether ``params`` may be an object (named parameters).
    supports_named_params: ClassVar[bool] = False
    #: The notification sent to cancel a call (the LSP convention), or None if this
    #: version has no such convention.
    cancel_method: ClassVar[str | None] = None

    @abstractmethod
    def request(self, method: str, params: Params, id: RequestId) -> dict[str, Any]:
        """The JSON object of a request."""

    @abstractmethod
    def notification(self, method: str, params: Params) -> dict[str, Any]:
        """The JSON object of a notification."""

    @abstractmethod
    def response(self, id: RequestId, result: Any) -> dict[str, Any]:
        """The JSON object of a successful reply."""

    @abstractmethod
    def error_response(self, id: RequestId, error: RpcError) -> dict[str, Any]:
        """The JSON object of an error reply."""

    @abstractmethod
    def decode(self, value: Any) -> Message | Invalid:
        """Classify one decoded JSON value (one element of a batch, or a whole message)."""

    def __repr__(self) -> str:
        return f"<JSON-RPC {self.version}>"
