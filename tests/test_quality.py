"""Lint, format and type checks run as part of the test command."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ["rpcbd", "tests", "benchmarks", "examples", "hatch_build.py"]


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.skipif(
    shutil.which("ruff") is None, reason="ruff is not installed (pip install -e '.[test]')"
)
def test_ruff_lint() -> None:
    result = _run("ruff", "check", *[p for p in CHECKED if (ROOT / p).exists()])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(
    shutil.which("ruff") is None, reason="ruff is not installed (pip install -e '.[test]')"
)
def test_ruff_format() -> None:
    result = _run("ruff", "format", "--check", *[p for p in CHECKED if (ROOT / p).exists()])
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict() -> None:
    pytest.importorskip("mypy", reason="mypy is not installed (pip install -e '.[test]')")
    result = _run(sys.executable, "-m", "mypy", "--strict", "rpcbd")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_build_hook() -> None:
    pytest.importorskip("mypy", reason="mypy is not installed (pip install -e '.[test]')")
    pytest.importorskip("hatchling", reason="hatchling is not installed (pip install -e '.[test]')")
    result = _run(sys.executable, "-m", "mypy", "--strict", "hatch_build.py")
    assert result.returncode == 0, result.stdout + result.stderr
