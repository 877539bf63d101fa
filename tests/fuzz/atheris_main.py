"""Coverage-guided fuzzing of every decoder with atheris (libFuzzer for Python).

    python tests/fuzz/atheris_main.py CORPUS_DIR -max_total_time=60

rpcbd is imported with atheris' coverage instrumentation, then libFuzzer mutates inputs for
:func:`harness.one_input`. Any exception is a finding: libFuzzer writes the input to
``crash-*`` and exits non-zero. Run by tests/fuzz/test_decoders.py for a bounded time.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))

with atheris.instrument_imports(include=["rpcbd", "harness"]):
    import harness


def main() -> None:
    atheris.Setup(sys.argv, harness.one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
