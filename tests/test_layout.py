"""The architecture's arrows, checked on the source tree's import graph (ast, not a regex).

Rooms and who may import whom (see the README's "Layout"):

* the ``pipeline`` core (everything in ``pipeline/`` but the applications) imports no room and no application;
* the applications ``pipeline.collector`` and ``pipeline.tools`` import the core (and themselves);
* ``consumers``, ``alerts`` and ``dashboards`` import the core (and themselves), never each other;
* ``pipeline.usecases``, the application layer, imports the core and every room (it composes them);
* ``pipeline.cli``, the composition root, may import everything.

No module imports another room's private (``_``-prefixed) names, and no module is named like a junk drawer.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "consumers", "alerts", "dashboards")
APPLICATIONS = ("pipeline.cli", "pipeline.collector", "pipeline.tools", "pipeline.usecases")
ALLOWED: dict[str, set[str]] = {
    "core": {"core"},
    "pipeline.collector": {"core", "pipeline.collector"},
    "pipeline.tools": {"core", "pipeline.tools"},
    "pipeline.usecases": {"core", "pipeline.usecases", "consumers", "alerts", "dashboards"},
    "consumers": {"core", "consumers"},
    "alerts": {"core", "alerts"},
    "dashboards": {"core", "dashboards"},
    "pipeline.cli": {"core", "pipeline.cli", *APPLICATIONS, "consumers", "alerts", "dashboards"},
}


def room(module: str) -> str | None:
    """The room a dotted module name lives in; None for stdlib and third-party modules."""
    top = module.split(".")[0]
    if top not in PACKAGES:
        return None
    for app in APPLICATIONS:
        if module == app or module.startswith(app + "."):
            return app
    return "core" if top == "pipeline" else top


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(module: str, source: str, is_package: bool) -> Iterator[tuple[int, str, list[str]]]:
    """(line, imported module, imported names) for every import statement, relative ones resolved."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([target] if target else []))
            yield node.lineno, target, [a.name for a in node.names]


def violations(module: str, source: str, is_package: bool = False) -> list[str]:
    """Every import of ``module`` that breaks an arrow or reaches into another room's private names."""
    mine = room(module)
    if mine is None:
        return []
    found = []
    for line, target, names in imports(module, source, is_package):
        theirs = room(target)
        if theirs is None:
            continue
        # `from pipeline import tools` imports a room as a name: judge the name's room.
        targets = [f"{target}.{n}" if room(f"{target}.{n}") != theirs else target for n in names] or [target]
        for full in targets:
            if room(full) not in ALLOWED[mine]:
                found.append(f"{module}:{line} imports {full} ({mine} may not import {room(full)})")
        if theirs != mine:
            found += [f"{module}:{line} imports private {target}.{n}" for n in names if n.startswith("_")]
    return found


def source_files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_the_tree_has_every_room_and_the_walk_sees_it():
    modules = {module_name(p) for p in source_files()}
    expected = {"pipeline.settings", "pipeline.events", "pipeline.errors", "pipeline.kafka.emitter",
                "pipeline.clickhouse.client", "pipeline.catalog.metrics", "pipeline.telemetry", "pipeline.cli.main",
                "pipeline.collector.app", "pipeline.tools.demo", "pipeline.usecases.schema", "consumers.app",
                "alerts.tables", "pipeline.schema", "pipeline.fastdecode"}  # fmt: skip
    assert expected <= modules


def test_imports_follow_the_arrows():
    found = []
    for path in source_files():
        found += violations(module_name(path), path.read_text(), path.name == "__init__.py")
    assert found == []


def test_no_junk_drawer_modules():
    bad = [p for p in source_files() if p.stem in ("utils", "util", "helpers", "common", "misc")]
    assert bad == []


# The checker itself: each rule catches what it is for.


def test_checker_rejects_core_importing_an_application():
    assert violations("pipeline.events", "from pipeline.tools.synth import traffic\n")
    assert violations("pipeline.settings", "from pipeline import tools\n")
    assert violations("pipeline.catalog.metrics", "import consumers.app\n")


def test_checker_rejects_rooms_importing_each_other():
    assert violations("consumers.app", "from alerts.evaluator import Evaluator\n")
    assert violations("alerts.evaluator", "from consumers import sink\n")
    assert violations("dashboards.render", "from pipeline.cli.table import render\n")
    assert violations("pipeline.tools.demo", "from pipeline.collector.app import create_app\n")
    assert violations("alerts.tables", "from pipeline.usecases import schema\n")
    assert violations("pipeline.usecases.schema", "from pipeline.cli.main import main\n")


def test_checker_rejects_private_names_of_another_room():
    assert violations("consumers.sink", "from pipeline.kafka.emitter import _pack\n")
    assert not violations("pipeline.kafka.admin", "from pipeline.kafka.config import kafka_python_config\n")


def test_checker_accepts_the_arrows():
    assert not violations("pipeline.cli.main", "from consumers.app import run_worker\nfrom alerts import rules\n")
    assert not violations("alerts.evaluator", "from pipeline import catalog, clickhouse\nimport faust\n")
    assert not violations("consumers.app", "from .sink import ClickHouseSink\n")
    assert not violations("pipeline.usecases.schema", "from alerts import tables\nfrom pipeline import clickhouse\n")
    assert not violations("pipeline.cli.main", "from pipeline.usecases import schema\n")
