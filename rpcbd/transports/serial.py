"""Serial lines through pyserial: ``serial:///dev/ttyUSB0?baudrate=115200`` and every pyserial
URL (``loop://``, ``socket://HOST:PORT``, ``rfc2217://HOST:PORT``, ``spy://...``, ...).

``serial://DEVICE?name=value&...`` opens ``DEVICE`` with the query's settings, given to
:func:`serial.serial_for_url` as keywords: ``baudrate``, ``bytesize`` (5-8), ``parity``
(``N``, ``E``, ``O``, ``M``, ``S``), ``stopbits`` (1, 1.5, 2), ``xonxoff``, ``rtscts``,
``dsrdtr`` (``0``/``1``, ``true``/``false``), and ``exclusive``. The ``baudrate`` option of
``connect`` is used when the URL has none. Other pyserial URLs are passed to pyserial as they
are (their query strings are pyserial's, see its "URL handlers" page).

Serial lines are point to point: both ends ``connect``; ``listen`` raises ``ValueError``.
The default framing is ``newline``. Reads block on the port (no timeout, no polling); closing
the connection wakes a blocked read with ``cancel_read()`` where the port supports it (POSIX
ports, ``loop://``), otherwise by closing the port.

pyserial is imported on first use; install it with ``pip install pyserial``.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from rpcbd.exceptions import ConnectionClosedError
from rpcbd.transports import SERIAL_LISTEN_REFUSAL
from rpcbd.transports.base import Transport

__all__ = [
    "LISTEN_REFUSAL",
    "SerialTransport",
    "connect_from_url",
    "connect_serial",
    "serial_settings",
]

#: The message of the ValueError raised by ``listen`` on a serial URL.
LISTEN_REFUSAL = SERIAL_LISTEN_REFUSAL

_INT_SETTINGS = {"baudrate", "bytesize"}
_BOOL_SETTINGS = {"xonxoff", "rtscts", "dsrdtr", "exclusive"}
_FLOAT_SETTINGS = {"stopbits", "inter_byte_timeout"}
_KNOWN_SETTINGS = _INT_SETTINGS | _BOOL_SETTINGS | _FLOAT_SETTINGS | {"parity"}


def _import_serial() -> Any:
    try:
        import serial
    except ImportError as exc:  # pragma: no cover - pyserial is a dependency
        raise ImportError("serial URLs need the pyserial package: pip install pyserial") from exc
    return serial


def serial_settings(url: str) -> tuple[str, dict[str, Any]]:
    """Split ``serial://DEVICE?settings`` into the device and pyserial keywords.

    Raises:
        ValueError: no device, an unknown setting or a bad value.
    """
    parts = urlsplit(url)
    device = unquote(parts.netloc + parts.path)
    if not device:
        raise ValueError(f"{url!r} names no device; use serial:///dev/ttyUSB0?baudrate=115200")
    settings: dict[str, Any] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name not in _KNOWN_SETTINGS:
            raise ValueError(
                f"unknown serial setting {name!r} in {url!r}; "
                f"known: {', '.join(sorted(_KNOWN_SETTINGS))}"
            )
        try:
            if name in _INT_SETTINGS:
                settings[name] = int(value)
            elif name in _FLOAT_SETTINGS:
                number = float(value)
                settings[name] = int(number) if number.is_integer() else number
            elif name in _BOOL_SETTINGS:
                lowered = value.lower()
                if lowered not in {"0", "1", "true", "false", "yes", "no", "on", "off"}:
                    raise ValueError(value)
                settings[name] = lowered in {"1", "true", "yes", "on"}
            else:
                settings[name] = value.upper()
        except ValueError:
            raise ValueError(f"bad value {value!r} for serial setting {name!r}") from None
    return device, settings


class SerialTransport(Transport):
    """An open pyserial port (``serial.SerialBase``)."""

    default_framing = "newline"

    def __init__(self, port: Any, description: str) -> None:
        self._port = port
        self.description = description
        self._aborted = False
        self._closed = False
        self._lock = threading.Lock()

    @property
    def port(self) -> Any:
        """The pyserial port object."""
        return self._port

    def read(self) -> bytes | None:
        port = self._port
        if self._aborted:
            return None
        try:
            # timeout=None: read(1) blocks until a byte arrives (or cancel_read());
            # then take whatever else is already buffered in one go.
            first: bytes = port.read(1)
            if not first or self._aborted:
                return None
            waiting = port.in_waiting
            return first + port.read(waiting) if waiting else first
        except (OSError, TypeError, AttributeError):
            # SerialException is an OSError; a port closed under us by abort() can
            # raise the others from inside pyserial.
            if self._aborted:
                return None
            raise

    def write(self, chunks: list[bytes]) -> None:
        if self._aborted:
            raise ConnectionClosedError(f"{self.description} is closed")
        port = self._port
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        try:
            port.write(data)
        except (TypeError, AttributeError) as exc:
            raise ConnectionClosedError(f"{self.description} is closed") from exc

    def abort(self) -> None:
        with self._lock:
            if self._aborted:
                return
            self._aborted = True
        port = self._port
        woke = False
        with contextlib.suppress(Exception):
            port.cancel_write()
        try:
            port.cancel_read()
            woke = True
        except (AttributeError, NotImplementedError):
            pass
        except Exception:
            pass
        if not woke:
            # No way to interrupt the read: closing the port makes it fail.
            self._close_port()

    def close(self) -> None:
        self.abort()
        self._close_port()

    def _close_port(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        with contextlib.suppress(Exception):
            self._port.close()


def connect_serial(url: str, *, baudrate: int | None = None) -> SerialTransport:
    """Open the serial port ``url`` (``serial://DEVICE?...`` or any pyserial URL).

    Raises:
        ImportError: pyserial is not installed.
        ValueError: a bad URL or setting.
        OSError: the port could not be opened (``serial.SerialException``).
    """
    serial = _import_serial()
    if url.lower().startswith("serial:"):
        device, settings = serial_settings(url)
    else:
        device, settings = url, {}
    if baudrate is not None:
        settings.setdefault("baudrate", baudrate)
    # timeout=None: blocking reads (see read()); write_timeout=None: writes block while the
    # line is busy, which is the back pressure.
    port = serial.serial_for_url(device, timeout=None, write_timeout=None, **settings)
    return SerialTransport(port, url)


def connect_from_url(url: str, options: dict[str, Any]) -> SerialTransport:
    """Registry entry for ``serial:`` and pyserial's URL schemes (option ``baudrate``)."""
    return connect_serial(url, baudrate=options.get("baudrate"))
