"""The ``pulse`` command: the composition root (:mod:`.main`) and its output formatting (:mod:`.table`)."""

from pipeline.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
