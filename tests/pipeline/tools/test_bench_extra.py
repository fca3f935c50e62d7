"""`pulse bench` without the `bench` extra: a contender it cannot run is reported with the extra that brings it."""

from __future__ import annotations

import subprocess
import sys

from pipeline.tools.bench.contenders import BENCH_EXTRA, CONTENDERS, missing


def test_every_optional_library_is_one_the_bench_extra_brings() -> None:
    optional = {m for c in CONTENDERS for m in c.requires} - {"faust"}  # faust: the worker extra's
    assert optional and optional <= {"quixstreams", "confluent_kafka", "orjson"}, optional
    assert "productpulse[bench]" in BENCH_EXTRA


def test_a_missing_contender_library_names_the_extra_not_an_import_error() -> None:
    quix = next(c for c in CONTENDERS if "quixstreams" in c.requires)
    code = (
        "import sys; sys.modules['quixstreams'] = None\n"  # as if the bench extra were not installed
        "import importlib.util, pipeline.tools.bench.contenders as c\n"
        "real = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda name, *a: None if name == 'quixstreams' else real(name, *a)\n"
        f"q = next(x for x in c.CONTENDERS if x.key == {quix.key!r}); print(c.missing(q))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "['quixstreams']"
    assert missing(quix) == []  # here the dev extra installs it


def test_pulse_bench_help_needs_no_bench_library() -> None:
    code = (
        "import sys\n"
        "for name in ('quixstreams', 'confluent_kafka', 'orjson'): sys.modules[name] = None\n"
        "from pipeline.cli import main\n"
        "sys.argv = ['pulse', 'bench', '--help']\n"
        "main()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "contender" in out.stdout
