"""Hatch build hook for the optional compiled build: ``RPCBD_COMPILE=1 pip install .``.

With ``RPCBD_COMPILE=1`` in the environment, a wheel build compiles the modules listed in
``rpcbd/_compiled.py`` (the sans-IO core, the codecs, both runtimes' connections) with
mypyc and puts the extension modules beside the ``.py`` files in the wheel; without it (and
for editable installs) the wheel is pure Python, as always.

Why not the ``hatch-mypyc`` plugin: it compiles in place, leaving stale extension modules
in a checkout (which then shadow the sources being edited), and renames ``pyproject.toml``
for the duration of the build. This hook compiles a copy of the sources in a temporary
directory instead.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

#: The mypy (and so mypyc) release the compiled build is made and tested with.
MYPYC_REQUIREMENT = "mypy==2.4.1"

_SETUP_PY = """\
from setuptools import setup
from mypyc.build import mypycify

setup(
    name="rpcbd-compiled-part",
    # The build environment has mypy but not rpcbd's dependencies (websockets, pyserial):
    # what the compiled modules import from them is typed Any.
    ext_modules=mypycify(
        ["--ignore-missing-imports", *{paths!r}], opt_level="3", debug_level="0"
    ),
)
"""


def compile_requested() -> bool:
    """Whether ``RPCBD_COMPILE`` asks for the compiled build."""
    return os.environ.get("RPCBD_COMPILE", "").strip().lower() in {"1", "true", "yes", "on"}


def compiled_module_paths(root: Path) -> list[str]:
    """The source paths of ``rpcbd._compiled.COMPILED_MODULES``, read without importing
    rpcbd (the build environment need not have its dependencies)."""
    tree = ast.parse((root / "rpcbd" / "_compiled.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "COMPILED_MODULES"
            for target in node.targets
        ):
            modules = ast.literal_eval(node.value)
            return [module.replace(".", "/") + ".py" for module in modules]
    raise RuntimeError("rpcbd/_compiled.py has no COMPILED_MODULES")


class CustomBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    """Compiles the modules of ``rpcbd._compiled.COMPILED_MODULES`` when asked to."""

    #: The copy being compiled; it holds the built extensions until the wheel is written.
    _workdir: tempfile.TemporaryDirectory[str] | None = None

    def dependencies(self) -> list[str]:
        if not compile_requested():
            return []
        return [MYPYC_REQUIREMENT, "setuptools>=61"]

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable" or not compile_requested():
            return
        root = Path(self.root)
        paths = compiled_module_paths(root)
        self._workdir = tempfile.TemporaryDirectory(prefix="rpcbd-mypyc-")
        work = Path(self._workdir.name)
        # The whole package: mypy follows the compiled modules' imports of the rest.
        shutil.copytree(
            root / "rpcbd",
            work / "rpcbd",
            ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd", "static"),
        )
        (work / "setup.py").write_text(_SETUP_PY.format(paths=paths), encoding="utf-8")
        process = subprocess.run(
            [sys.executable, "setup.py", "build_ext", "--inplace"],
            cwd=work,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            check=False,
        )
        if process.returncode:
            output = process.stdout.decode("utf-8", "replace")
            raise RuntimeError(f"mypyc could not compile rpcbd:\n{output}")
        built = [
            path
            for pattern in ("rpcbd/**/*.so", "rpcbd/**/*.pyd", "*.so", "*.pyd")
            for path in work.glob(pattern)
        ]
        if len(built) <= len(paths):  # one extension per module, plus mypyc's shared one
            raise RuntimeError(f"mypyc built only {[p.name for p in built]}")
        for path in built:
            build_data["force_include"][str(path)] = path.relative_to(work).as_posix()
        build_data["infer_tag"] = True
        build_data["pure_python"] = False

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None
