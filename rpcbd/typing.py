"""Type aliases used across rpcbd."""

from __future__ import annotations

from typing import Any, Union

__all__ = ["JSON", "Params", "RequestId"]

#: Any JSON value as Python sees it (dict, list, str, int, float, bool, None).
JSON = Any

#: A JSON-RPC id: a string, a number, or null. Ids keep the type they came with.
RequestId = Union[int, float, str, None]

#: Request parameters: by position (a list), by name (a dict), or absent (None).
Params = Union[list[Any], dict[str, Any], None]
