"""mkdocs hook: fill the "Transports" nav section with the pages in docs/transports/.

Those pages are written alongside the transports themselves; listing them here means the
nav never names a page that does not exist, nor leaves one out.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

__all__ = ["on_config"]

_ORDER = ["index", "readme", "tcp", "tls", "unix", "websocket", "serial", "stdio-exec", "pipe"]


def _title(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"#\s+(.+)", line)
        if match:
            return match.group(1).strip()
    return path.stem.replace("-", " ").replace("_", " ").capitalize()


def on_config(config: Any) -> Any:
    docs = Path(config["docs_dir"])
    pages = sorted((docs / "transports").glob("*.md"))
    # An overview first, then the usual order of the URL table; unknown pages at the end.
    order = {stem: i for i, stem in enumerate(_ORDER)}
    pages.sort(key=lambda p: (order.get(p.stem.lower(), len(order)), p.name))
    entries = [{_title(p): p.relative_to(docs).as_posix()} for p in pages]
    nav = config["nav"] or []
    for i, item in enumerate(nav):
        if isinstance(item, dict) and "Transports" in item:
            if entries:
                nav[i] = {"Transports": entries}
            else:
                del nav[i]
            break
    return config
