"""Serial URLs: settings, the listen refusal, errors."""

from __future__ import annotations

import pytest

from rpcbd import ThreadedPeer
from rpcbd.transports.serial import serial_settings


def test_settings_from_the_url() -> None:
    assert serial_settings(
        "serial:///dev/ttyUSB0?baudrate=115200&parity=e&stopbits=1.5&rtscts=1"
    ) == (
        "/dev/ttyUSB0",
        {"baudrate": 115200, "parity": "E", "stopbits": 1.5, "rtscts": True},
    )
    assert serial_settings("serial://COM3?bytesize=7&xonxoff=false") == (
        "COM3",
        {"bytesize": 7, "xonxoff": False},
    )
    with pytest.raises(ValueError, match="unknown serial setting"):
        serial_settings("serial:///dev/ttyS0?speed=9600")
    with pytest.raises(ValueError, match="bad value"):
        serial_settings("serial:///dev/ttyS0?baudrate=fast")


@pytest.mark.parametrize(
    "url", ["serial:///dev/ttyS0", "loop://", "socket://127.0.0.1:1", "rfc2217://127.0.0.1:1"]
)
def test_listen_is_refused(peer: ThreadedPeer, url: str) -> None:
    with pytest.raises(ValueError, match="point to point"):
        peer.listen(url)


def test_missing_device(peer: ThreadedPeer) -> None:
    with pytest.raises(OSError):
        peer.connect("serial:///dev/rpcbd-no-such-tty")


def test_loop_url_options_and_close_wakes_the_reader(peer: ThreadedPeer) -> None:
    connection = peer.connect("loop://", baudrate=9600)
    assert connection._transport.port.baudrate == 9600  # type: ignore[attr-defined]
    assert connection.request.echo("to myself") == "to myself"
    connection.close()  # returns only once the reader, blocked in read(), has stopped
    assert connection.closed and connection.wait_closed(0)
