"""Codecs: dialects (JSON-RPC 2.0 / 1.0), framings and JSON serializers. No I/O.

Import from the submodules: :mod:`rpcbd.codecs.jsonrpc2`, :mod:`rpcbd.codecs.jsonrpc1`,
:mod:`rpcbd.codecs.framing`, :mod:`rpcbd.codecs.serializer`.
"""

from __future__ import annotations

__all__: list[str] = []
