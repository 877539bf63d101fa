"""``python -m rpcbd``: the command line (see :mod:`rpcbd.cli`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rpcbd`` command and return its exit status."""
    from rpcbd.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
