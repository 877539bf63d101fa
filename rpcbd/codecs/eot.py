"""EOT framing: the rpcbd 0.6 wire format.

Each message is one JSON text followed by the byte 0x04 (ASCII End Of Transmission)::

    {"jsonrpc":"2.0","method":"ping","params":[],"id":1}\\x04

JSON never contains a raw 0x04 (control characters must be escaped inside strings, RFC 8259
section 7), so the byte is a safe delimiter. Whitespace between frames is ignored, and empty
frames are dropped. A frame longer than ``max_message_size`` gives a recoverable
:class:`~rpcbd.exceptions.MessageTooLargeError`; the rest of it is dropped as it arrives.
Whitespace between the payload and the EOT counts toward the limit.

Memory bound: after ``next_frame()`` returns ``None`` the deframer holds at most
``max_message_size`` bytes.
"""

from __future__ import annotations

from rpcbd._compiled import mypyc_attr
from rpcbd.codecs.base import DEFAULT_MAX_MESSAGE_SIZE, Deframer, Framing
from rpcbd.codecs.newline import DelimiterDeframer

__all__ = ["EOT", "EotFraming"]

#: The frame terminator.
EOT = b"\x04"


@mypyc_attr(allow_interpreted_subclasses=True)
class EotFraming(Framing):
    """Payload followed by 0x04 (name ``"eot"``), for peers still on rpcbd 0.6."""

    name = "eot"

    def frame(self, payload: bytes) -> bytes:
        """Return ``payload + b"\\x04"``.

        Raises:
            ValueError: ``payload`` contains 0x04, which would end the frame early.
        """
        if EOT in payload:
            raise ValueError("an EOT-framed payload must not contain b'\\x04'")
        return payload + EOT

    def deframer(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> Deframer:
        """Return a new :class:`~rpcbd.codecs.newline.DelimiterDeframer` splitting on 0x04."""
        return DelimiterDeframer(max_message_size, delimiter=EOT)

    def __repr__(self) -> str:
        return "EotFraming()"
