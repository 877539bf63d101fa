"""A serial device link: JSON-RPC over a serial line (newline framing by default).

Serial lines are point to point, so both ends ``connect``. Three ways to run it:

    python serial_link.py
        ``loop://``: pyserial's loopback port sends back whatever is written, so this
        one peer is both the host and the device - it answers its own calls.
    python serial_link.py "serial:///dev/ttyUSB0?baudrate=115200"
        a real device that speaks JSON-RPC (and serves read_temperature).
    python serial_link.py serial:///dev/pts/3 serial:///dev/pts/4
        both ends of a pty pair made by ``socat -d -d pty,raw,echo=0 pty,raw,echo=0``:
        the second URL is opened by a simulated device in this process.
"""

import sys

from rpcbd import JSONRPC_V2, Handler, ThreadedPeer


class Sensor(Handler):
    """What the device serves."""

    assume_methods_block = False

    def read_temperature(self, unit="C"):
        celsius = 21.5
        return celsius if unit == "C" else celsius * 9 / 5 + 32

    def identify(self):
        return {"model": "rpcbd-sensor", "firmware": "1.0"}


if __name__ == "__main__":
    host_url = sys.argv[1] if len(sys.argv) > 1 else "loop://"
    device_url = sys.argv[2] if len(sys.argv) > 2 else None

    device = None
    if device_url is not None:
        device = ThreadedPeer(JSONRPC_V2, default_handler=Sensor)
        device.connect(device_url)
    # On loop:// the host must serve Sensor itself: its own calls come back to it.
    host = ThreadedPeer(
        JSONRPC_V2, default_handler=Sensor if device_url is None else None, default_timeout=5
    )
    try:
        line = host.connect(host_url)
        print("link:", line.description)
        print("identify() ->", line.request.identify())
        print("read_temperature() ->", line.request.read_temperature())
        print("read_temperature('F') ->", line.request.read_temperature("F"))
    finally:
        host.shutdown()
        if device is not None:
            device.shutdown()
