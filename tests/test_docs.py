"""The documentation site builds, and the code blocks of its pages run.

Conventions (also in docs/contributing.md):

- Every ```python block of a page in docs/ runs, in order, in one namespace, in a fresh
  Python process per page, with ``__name__ == "__docs__"`` (so ``if __name__ ==
  "__main__":`` bodies are compiled but not run).
- The number 9999 stands for a free TCP port, the same one for the whole page.
- An HTML comment on the line before a block (blank lines allowed) controls it:
  ``<!-- test: skip -->`` compiles without running; ``<!-- test: group=NAME -->`` runs the
  block in a separate process shared with the page's other blocks of that group;
  ``<!-- test: output -->`` before a ```text block makes it the expected stdout of the
  python blocks (of the group of the last one) since the previous check;
  ``<!-- test: run -->`` opts a block in on pages that are not run by default
  (docs/transports/ and docs/asyncio.md, maintained with their code).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGE_TIMEOUT = 60

_FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w+-]*)\s*$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*test:\s*(?P<body>.*?)\s*-->\s*$")
_KNOWN = {"skip", "group", "output", "run"}


@dataclass
class Block:
    page: str
    line: int  # 1-based line of the first code line
    lang: str
    code: str
    directives: dict[str, str] = field(default_factory=dict)


def _opted_out(page: str) -> bool:
    return page.startswith("transports/") or page == "asyncio.md"


def parse_blocks(path: Path) -> list[Block]:
    """The fenced blocks of a markdown page, with the directive before each."""
    page = path.relative_to(DOCS).as_posix()
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        directives: dict[str, str] = {}
        j = i - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        match = _DIRECTIVE.match(lines[j]) if j >= 0 else None
        if match:
            for word in match.group("body").split():
                key, _, value = word.partition("=")
                directives[key] = value
        body: list[str] = []
        start = i + 2  # 1-based line of the first body line
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i])
            i += 1
        code = textwrap.dedent("\n".join(body))
        blocks.append(Block(page, start, opening["lang"], code, directives))
        i += 1
    return blocks


def _pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if "_hooks" not in p.parts)


def _steps_by_group() -> dict[str, list[dict[str, object]]]:
    """``{"page.md" or "page.md[group]": steps}`` for every page with python to run."""
    groups: dict[str, list[dict[str, object]]] = {}
    for path in _pages():
        last_group: str | None = None
        for block in parse_blocks(path):
            unknown = set(block.directives) - _KNOWN
            if unknown:
                raise ValueError(f"{block.page}:{block.line}: unknown directive(s) {unknown}")
            if block.lang == "python":
                run = "skip" not in block.directives and (
                    not _opted_out(block.page) or "run" in block.directives
                )
                if _opted_out(block.page) and not run:
                    last_group = None  # its output block, if any, is not checked either
                    continue
                group = block.directives.get("group") or ""
                key = f"{block.page}[{group}]" if group else block.page
                groups.setdefault(key, []).append(
                    {
                        "kind": "code",
                        "where": f"docs/{block.page}",
                        "line": block.line,
                        "code": block.code,
                        "run": run,
                    }
                )
                last_group = key
            elif "output" in block.directives:
                if last_group is None:
                    if _opted_out(block.page):
                        continue
                    raise ValueError(f"{block.page}:{block.line}: output with no python before")
                groups[last_group].append(
                    {
                        "kind": "output",
                        "where": f"docs/{block.page}:{block.line}",
                        "text": block.code,
                    }
                )
    return groups


_RUNNER = r"""
import contextlib, io, json, sys

steps = json.load(sys.stdin)
namespace = {"__name__": "__docs__"}
captured = io.StringIO()

def normal(text):
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())

for step in steps:
    if step["kind"] == "code":
        # Pad so tracebacks point at the right line of the markdown page.
        code = compile("\n" * (step["line"] - 1) + step["code"], step["where"], "exec")
        if step["run"]:
            with contextlib.redirect_stdout(captured):
                exec(code, namespace)
    else:
        got, captured = normal(captured.getvalue()), io.StringIO()
        want = normal(step["text"])
        if got != want:
            sys.stderr.write(
                "output differs at %s\n--- expected\n%s\n--- printed\n%s\n"
                % (step["where"], want, got)
            )
            sys.exit(1)
"""

GROUPS = _steps_by_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_code_blocks_run(group: str, tmp_path: Path) -> None:
    port = str(_free_port())
    steps = [
        {k: re.sub(r"\b9999\b", port, v) if k in ("code", "text") else v for k, v in step.items()}
        for step in GROUPS[group]
    ]
    result = _run_steps(steps, tmp_path)
    assert result.returncode == 0, result.stderr


def test_every_page_with_code_is_tested() -> None:
    pages_with_python = {
        block.page
        for path in _pages()
        for block in parse_blocks(path)
        if block.lang == "python" and not _opted_out(block.page)
    }
    tested = {key.split("[")[0] for key in GROUPS}
    assert pages_with_python <= tested
    assert {"getting-started.md", "callbacks.md", "sans-io.md"} <= tested


def test_output_blocks_are_checked() -> None:
    checks = [s for steps in GROUPS.values() for s in steps if s["kind"] == "output"]
    assert len(checks) >= 10


def test_parse_blocks_reads_directives(tmp_path: Path) -> None:
    page = DOCS / "getting-started.md"
    blocks = parse_blocks(page)
    skipped = [b for b in blocks if "skip" in b.directives]
    assert [b.code for b in skipped] == ["peer.shutdown()"]
    lines = page.read_text(encoding="utf-8").splitlines()
    for block in blocks:
        assert lines[block.line - 1].strip() == block.code.splitlines()[0].strip()


def _missing_docs_tools() -> str | None:
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        try:
            found = importlib.util.find_spec(module)
        except ModuleNotFoundError:
            found = None
        if found is None:
            return module
    return None


def test_site_builds_strict(tmp_path: Path) -> None:
    missing = _missing_docs_tools()
    if missing:
        pytest.skip(f"{missing} is not installed (pip install -e '.[docs]')")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stderr[-5000:]
    site = tmp_path / "site"
    assert (site / "getting-started" / "index.html").exists()
    reference = (site / "reference" / "threaded" / "index.html").read_text(encoding="utf-8")
    assert "rpcbd.threaded.peer.ThreadedPeer" in reference  # docstrings were rendered
    # Every public name has an entry in the API reference.
    import rpcbd
    import rpcbd.aio

    anchors = set()
    for page in (site / "reference").rglob("index.html"):
        anchors.update(re.findall(r'id="(rpcbd[\w.]*)"', page.read_text(encoding="utf-8")))
    short = {anchor.rsplit(".", 1)[-1] for anchor in anchors}
    public = (set(rpcbd.__all__) | set(rpcbd.aio.__all__)) - {"__version__"}
    assert not sorted(public - short), "names missing from docs/reference"


def _run_steps(steps: list[dict[str, object]], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _RUNNER],
        input=json.dumps(steps),
        capture_output=True,
        text=True,
        timeout=PAGE_TIMEOUT,
        cwd=cwd,
    )


def test_runner_catches_wrong_output_and_errors(tmp_path: Path) -> None:
    code = {"kind": "code", "where": "docs/x.md", "line": 7, "run": True}
    wrong = _run_steps(
        [{**code, "code": "print('a')"}, {"kind": "output", "where": "x", "text": "b"}], tmp_path
    )
    assert wrong.returncode == 1
    assert "--- expected\nb\n--- printed\na" in wrong.stderr
    failing = _run_steps([{**code, "code": "1 / 0"}], tmp_path)
    assert failing.returncode == 1
    assert 'File "docs/x.md", line 7' in failing.stderr
    skipped = _run_steps([{**code, "code": "1 / 0", "run": False}], tmp_path)
    assert skipped.returncode == 0
