"""The ``pulse`` command behaves like a Python CLI is expected to: version, exit codes, messages, durations."""

from __future__ import annotations

from importlib.metadata import version

import pytest

from pipeline.cli.main import main


def test_version_prints_the_package_version_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"pulse {version('productpulse')}"
