"""Type aliases used across rpcbd."""

from __future__ import annotations

from typing import Any

__all__ = ["JSON", "Params", "RequestId"]

#: Any JSON value as Python sees it (dict, list, str, int, float, bool, None).
JSON = Any

#: A JSON-RPC id: a string, a number, or null. Ids keep the type they came with.
RequestId = int | float | str | None

#: Request parameters: by position (a list), by name (a dict), or absent (None).
Params = list[Any] | dict[str, Any] | None
