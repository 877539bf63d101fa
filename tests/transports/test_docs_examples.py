"""Every ```python block of docs/transports/*.md runs as it is (```py blocks are fragments)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs" / "transports"
PAGES = ["tcp", "tls", "unix", "websocket", "serial", "stdio-exec", "pipe"]


def _examples(page: str) -> list[str]:
    text = (DOCS / f"{page}.md").read_text(encoding="utf-8")
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


@pytest.mark.parametrize("page", PAGES)
def test_page_has_a_working_example(page: str) -> None:
    examples = _examples(page)
    assert examples, f"docs/transports/{page}.md has no runnable example"
    env = dict(os.environ, PYTHONPATH=str(DOCS.parents[1]))
    for code in examples:
        # A fresh interpreter: the example must not depend on the test process, and its
        # peers and threads must end on their own.
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
        )
        assert result.returncode == 0, f"{page}.md example failed:\n{result.stderr}"
