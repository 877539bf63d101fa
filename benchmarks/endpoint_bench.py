"""CPU cost of the sans-IO :class:`~rpcbd.core.Endpoint` per message
(``python -m benchmarks.endpoint_bench``).

Each figure is the best of 5 ``timeit`` runs of one round, in µs of CPU time, printed as a
markdown table, for each serializer installed and the newline and content-length framings:

- client round: ``send_request`` + ``data_to_send`` + ``receive_data(reply)`` +
  ``events_received``;
- server round: ``receive_data(request)`` + ``events_received`` + ``send_response`` +
  ``data_to_send``;
- notification: ``receive_data(notification)`` + ``events_received``;
- floor: the serializer's ``loads`` of the request and ``dumps`` of the reply, plus the
  framing, with nothing of rpcbd around it (orjson or ``json`` called directly).

No I/O: the bytes a peer would send are prepared once and fed in each round.
"""

from __future__ import annotations

import json
import sys
import time
import timeit
from collections.abc import Callable
from typing import Any

from rpcbd.codecs.serializer import Serializer, available_serializers
from rpcbd.core import Endpoint, RequestReceived

__all__ = ["main", "measure"]

_REQUEST = b'{"jsonrpc":"2.0","id":1,"method":"echo","params":["hello, world"]}'
_NOTIFICATION = b'{"jsonrpc":"2.0","method":"log","params":["hello, world"]}'
_NUMBER = 20000
_REPEAT = 5


def _best(fn: Callable[[], Any], number: int, repeat: int) -> float:
    """CPU microseconds per call, best of ``repeat`` runs of ``number`` calls.

    CPU time (``time.process_time``), not wall time: on a machine shared with other work a
    run that loses its CPU for a while is not counted as slower.
    """
    times = timeit.repeat(fn, number=number, repeat=repeat, timer=time.process_time)
    return min(times) / number * 1e6


def _frame(framing: str, payload: bytes) -> bytes:
    if framing == "newline":
        return payload + b"\n"
    return b"Content-Length: %d\r\n\r\n%b" % (len(payload), payload)


def _floor(serializer: Serializer, framing: str) -> Callable[[], Any]:
    """The raw library's decode + encode + framing, as a program without rpcbd would do."""
    if serializer.name == "orjson":
        import orjson

        loads: Callable[[bytes], Any] = orjson.loads
        dumps: Callable[[Any], bytes] = orjson.dumps
    else:

        def dumps(value: Any) -> bytes:
            return json.dumps(value, separators=(",", ":")).encode()

        loads = json.loads

    def floor() -> None:
        message = loads(_REQUEST)
        reply = dumps({"jsonrpc": "2.0", "result": message["params"][0], "id": message["id"]})
        _frame(framing, reply)

    return floor


def measure(
    serializer: Serializer, framing: str, number: int = _NUMBER, repeat: int = _REPEAT
) -> dict[str, float]:
    """µs per round for one serializer and framing, best of ``repeat`` runs of ``number``."""
    client = Endpoint(framing=framing, serializer=serializer)
    server = Endpoint(framing=framing, serializer=serializer)
    replies: dict[Any, bytes] = {}

    def client_round() -> None:
        id = client.send_request("echo", ["hello, world"])
        client.data_to_send()
        client.receive_data(replies[id])
        client.events_received()

    def server_round() -> None:
        server.receive_data(request)
        for event in server.events_received():
            assert isinstance(event, RequestReceived)
            server.send_response(event, event.params[0])  # type: ignore[index]
        server.data_to_send()

    def notification_round() -> None:
        server.receive_data(notification)
        server.events_received()

    # The client's ids count up from 1: prepare every reply it will get.
    total = repeat * number + 1
    replies = {
        id: _frame(framing, b'{"jsonrpc":"2.0","result":"hello, world","id":%d}' % id)
        for id in range(1, total + 1)
    }
    request = _frame(framing, _REQUEST)
    notification = _frame(framing, _NOTIFICATION)
    return {
        "client": _best(client_round, number, repeat),
        "server": _best(server_round, number, repeat),
        "notification": _best(notification_round, number, repeat),
        "floor": _best(_floor(serializer, framing), number, repeat),
    }


def main() -> int:
    rows = [
        "| serializer | framing | client round µs | server round µs | notification µs | floor µs |",
        "|---|---|---|---|---|---|",
    ]
    for name, serializer in available_serializers().items():
        for framing in ("newline", "content-length"):
            result = measure(serializer, framing)
            rows.append(
                f"| {name} | {framing} | {result['client']:.2f} | {result['server']:.2f} "
                f"| {result['notification']:.2f} | {result['floor']:.2f} |"
            )
    print(f"python {sys.version.split()[0]}; CPU time, best of {_REPEAT} x {_NUMBER} rounds")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
