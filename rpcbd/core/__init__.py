"""The sans-IO core: :class:`Endpoint`, its events and messages. No I/O, threads or clocks."""

from __future__ import annotations

from rpcbd.core.endpoint import Endpoint
from rpcbd.core.events import (
    CancelRequested,
    ConnectionClosed,
    ErrorReceived,
    Event,
    InvalidMessageReceived,
    NotificationReceived,
    RequestReceived,
    ResponseReceived,
)
from rpcbd.core.messages import ErrorResponse, Invalid, Message, Notification, Request, Response
from rpcbd.core.state import State

__all__ = [
    "CancelRequested",
    "ConnectionClosed",
    "Endpoint",
    "ErrorReceived",
    "ErrorResponse",
    "Event",
    "Invalid",
    "InvalidMessageReceived",
    "Message",
    "Notification",
    "NotificationReceived",
    "Request",
    "RequestReceived",
    "Response",
    "ResponseReceived",
    "State",
]
