"""The framing registry: look a framing up by the name users pass as ``framing=``.

The built-in framings:

==================  =============================  ===========================================
name                aliases                        wire format
==================  =============================  ===========================================
``newline``         ``ndjson``, ``lines``          payload ``\\n``
``content-length``  ``lsp``, ``content_length``    ``Content-Length: N\\r\\n\\r\\n`` payload
``netstring``                                      ``N:`` payload ``,``
``length-prefix``   ``length_prefix``              4-byte big-endian N, payload
``json-stream``     ``json_stream``                concatenated JSON values
``eot``                                            payload ``\\x04`` (rpcbd 0.6)
==================  =============================  ===========================================

Names are case-insensitive. :func:`register_framing` adds a user-defined framing.
"""

from __future__ import annotations

from rpcbd.codecs.base import Framing
from rpcbd.codecs.content_length import ContentLengthFraming
from rpcbd.codecs.eot import EotFraming
from rpcbd.codecs.json_stream import JsonStreamFraming
from rpcbd.codecs.length_prefix import LengthPrefixFraming
from rpcbd.codecs.netstring import NetstringFraming
from rpcbd.codecs.newline import NewlineFraming

__all__ = ["ALIASES", "FRAMINGS", "get_framing", "register_framing"]

#: Every registered framing by (lower-case) name. Framings are stateless, so one instance
#: of each is shared by every connection.
FRAMINGS: dict[str, Framing] = {
    framing.name: framing
    for framing in (
        NewlineFraming(),
        ContentLengthFraming(),
        NetstringFraming(),
        LengthPrefixFraming(),
        JsonStreamFraming(),
        EotFraming(),
    )
}

#: Other accepted spellings, mapped to the registered name.
ALIASES: dict[str, str] = {
    "lsp": "content-length",
    "content_length": "content-length",
    "length_prefix": "length-prefix",
    "json_stream": "json-stream",
    "ndjson": "newline",
    "lines": "newline",
}


def get_framing(name_or_framing: str | Framing) -> Framing:
    """Return the framing called ``name_or_framing``, or the argument itself if it is one.

    Args:
        name_or_framing: a registered name or alias (any case), or a :class:`Framing`.

    Raises:
        ValueError: no framing has that name; the message lists the valid names.
        TypeError: the argument is neither a string nor a :class:`Framing`.
    """
    if isinstance(name_or_framing, Framing):
        return name_or_framing
    if not isinstance(name_or_framing, str):
        raise TypeError(f"framing must be a name or a Framing, not {type(name_or_framing)!r}")
    key = name_or_framing.lower()
    framing = FRAMINGS.get(key)
    if framing is None and key in ALIASES:
        framing = FRAMINGS.get(ALIASES[key])
    if framing is None:
        valid = ", ".join(sorted(FRAMINGS) + sorted(ALIASES))
        raise ValueError(f"unknown framing {name_or_framing!r}; valid names: {valid}")
    return framing


def register_framing(framing: Framing, *, replace: bool = False) -> None:
    """Make ``framing`` available by its ``name`` (case-insensitive) to :func:`get_framing`.

    Args:
        framing: an instance of a :class:`Framing` subclass with a non-empty ``name``.
        replace: allow replacing a framing already registered under that name.

    Raises:
        TypeError: ``framing`` is not a :class:`Framing`.
        ValueError: ``name`` is empty, or taken and ``replace`` is false.
    """
    if not isinstance(framing, Framing):
        raise TypeError(f"expected a Framing instance, not {type(framing)!r}")
    key = framing.name.lower()
    if not key:
        raise ValueError("a framing needs a non-empty name")
    if not replace and (key in FRAMINGS or key in ALIASES):
        raise ValueError(f"a framing named {framing.name!r} is already registered")
    FRAMINGS[key] = framing
