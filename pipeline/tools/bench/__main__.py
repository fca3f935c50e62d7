"""``python -m pipeline.tools.bench``: the bench without the CLI (settings from ``PULSE_*``, embedded store)."""

from __future__ import annotations

import argparse
import sys

from pipeline.settings import Settings
from pipeline.tools.bench import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.tools.bench", description=__doc__)
    add_arguments(parser)
    return run(Settings(), parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
