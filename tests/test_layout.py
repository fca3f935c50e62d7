"""The architecture's arrows, checked on the source tree's import graph (ast, not a regex).

Rooms and who may import whom (see the README's "Layout"):

* the ``pipeline`` core (everything in ``pipeline/`` but the applications) imports no room and no application;
* the applications ``pipeline.collector`` and ``pipeline.tools`` import the core (and themselves);
* ``consumers``, ``alerts`` and ``dashboards`` import the core (and themselves), never each other;
* ``pipeline.usecases``, what each command does, imports the core and every room (never an application);
* ``pipeline.cli``, the composition root, may import everything.

No module imports another room's private (``_``-prefixed) names, and no module is named like a junk drawer.
The CLI parses arguments and formats output only: no module of ``pipeline.cli`` touches the store or runs SQL.

Faust behind one door: only ``consumers.faust_adapter`` touches Faust's (and mode's) non-public API - it
imports their internal modules, subclasses their classes and reads or writes their private attributes;
every other module uses the public surface (``faust``, ``faust.types``, ``faust.web``, ``mode``) only.
"""

from __future__ import annotations

import ast
import functools
import importlib.machinery
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "consumers", "alerts", "dashboards")
APPLICATIONS = ("pipeline.cli", "pipeline.collector", "pipeline.tools", "pipeline.usecases")
ALLOWED: dict[str, set[str]] = {
    "core": {"core"},
    "pipeline.collector": {"core", "pipeline.collector"},
    "pipeline.tools": {"core", "pipeline.tools"},
    "pipeline.usecases": {"core", "consumers", "alerts", "dashboards", "pipeline.usecases"},
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


FAUST_ADAPTER = "consumers.faust_adapter"
FAUST_PACKAGES = ("faust", "mode")
FAUST_PUBLIC_MODULES = frozenset({"faust", "faust.types", "faust.web", "mode"})


def _is_faust(module: str) -> bool:
    return module.split(".")[0] in FAUST_PACKAGES


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


@functools.cache
def faust_private_names() -> frozenset[str]:
    """Every ``_``-prefixed (not dunder) name the installed faust and mode define or use as an attribute."""
    names: set[str] = set()
    for package in FAUST_PACKAGES:
        spec = importlib.machinery.PathFinder.find_spec(package)  # not sys.modules: faust replaces its module
        assert spec is not None and spec.origin is not None, f"{package} is not installed"
        for path in Path(spec.origin).parent.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    name = node.name
                elif isinstance(node, ast.Attribute):
                    name = node.attr
                elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                    name = node.id
                else:
                    continue
                if _private(name):
                    names.add(name)
    return frozenset(names)


def faust_violations(module: str, source: str, private_names: frozenset[str] | None = None) -> list[str]:
    """Every use of Faust's non-public API in ``module`` (none are allowed outside the adapter).

    * importing a faust/mode module outside :data:`FAUST_PUBLIC_MODULES`, or a ``_`` name from any;
    * subclassing a class imported from faust/mode (overriding is how private hooks get replaced);
    * an attribute ``x._name`` (``x`` not ``self``/``cls``) where ``_name`` is private to faust/mode.
    """
    if module == FAUST_ADAPTER:
        return []
    private = faust_private_names() if private_names is None else private_names
    tree = ast.parse(source)
    found = []
    faust_names: set[str] = set()  # local names bound to faust/mode modules or objects
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _is_faust(alias.name):
                    faust_names.add((alias.asname or alias.name).split(".")[0])
                    if alias.name not in FAUST_PUBLIC_MODULES:
                        found.append(f"{module}:{node.lineno} imports Faust internals {alias.name}")
        elif isinstance(node, ast.ImportFrom) and not node.level and _is_faust(node.module or ""):
            target = node.module or ""
            faust_names.update(a.asname or a.name for a in node.names)
            if target not in FAUST_PUBLIC_MODULES:
                found.append(f"{module}:{node.lineno} imports Faust internals from {target}")
            found += [
                f"{module}:{node.lineno} imports private {target}.{a.name}" for a in node.names if _private(a.name)
            ]
    on_faust_self: set[int] = set()  # `self._x` inside a subclass of a Faust class is Faust's private too
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for base in node.bases:
                root = base
                while isinstance(root, ast.Attribute):
                    root = root.value
                if isinstance(root, ast.Name) and root.id in faust_names:
                    found.append(f"{module}:{node.lineno} subclasses Faust's {ast.unparse(base)}")
                    on_faust_self.update(id(n) for n in ast.walk(node))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in private:
            on_self = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
            if not on_self or id(node) in on_faust_self:
                found.append(f"{module}:{node.lineno} touches Faust's private {ast.unparse(node)}")
    return found


def source_files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_the_tree_has_every_room_and_the_walk_sees_it():
    modules = {module_name(p) for p in source_files()}
    expected = {"pipeline.settings", "pipeline.events", "pipeline.errors", "pipeline.kafka.emitter",
                "pipeline.clickhouse.client", "pipeline.catalog.metrics", "pipeline.telemetry", "pipeline.cli.main",
                "pipeline.collector.app", "pipeline.tools.demo", "consumers.app"}  # fmt: skip
    assert expected <= modules


def test_imports_follow_the_arrows():
    found = []
    for path in source_files():
        found += violations(module_name(path), path.read_text(), path.name == "__init__.py")
    assert found == []


def test_only_the_adapter_touches_faust_internals():
    found = []
    for path in source_files():
        found += faust_violations(module_name(path), path.read_text())
    assert found == [], "move it into consumers/faust_adapter.py (and pin it in tests/consumers/test_faust_contract.py)"


def test_the_adapter_is_where_the_faust_internals_are():
    """The check above sees what it is for: the adapter itself would fail it, were it any other module."""
    source = (ROOT / "consumers" / "faust_adapter.py").read_text()
    found = "\n".join(faust_violations("consumers.elsewhere", source))
    needles = ("faust.transport.drivers", "faust.types.tuples", "mode.utils.futures", "_read_offset", "_acked_index",
               "_committed_offset", "_wait_next_records", "subclasses Faust's faust.App")  # fmt: skip
    for needle in needles:
        assert needle in found, needle
    assert faust_violations(FAUST_ADAPTER, source) == []


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


def test_checker_rejects_private_names_of_another_room():
    assert violations("consumers.sink", "from pipeline.kafka.emitter import _pack\n")
    assert not violations("pipeline.kafka.admin", "from pipeline.kafka.config import kafka_python_config\n")


def test_checker_accepts_the_arrows():
    assert not violations("pipeline.cli.main", "from consumers.app import run_worker\nfrom alerts import rules\n")
    assert not violations("alerts.evaluator", "from pipeline import catalog, clickhouse\nimport faust\n")
    assert not violations("consumers.app", "from .sink import ClickHouseSink\n")
    assert not violations(
        "pipeline.usecases.worker", "from consumers.app import run_worker\nfrom alerts import rules\n"
    )
    assert not violations("pipeline.cli.main", "from pipeline.usecases import api\n")


def test_checker_rejects_use_cases_importing_an_application():
    assert violations("pipeline.usecases.reads", "from pipeline.cli.table import render\n")
    assert violations("pipeline.usecases.findings", "from pipeline.tools.demo import Table\n")
    assert violations("consumers.app", "from pipeline.usecases import api\n")


# The CLI runs no SQL: it neither imports the store's client, nor calls a client's query methods, nor holds SQL text.

STORE_MODULES = ("pipeline.clickhouse", "clickhouse_connect", "chdb")
CLIENT_CALLS = {"query", "command", "insert", "raw_query", "raw_insert", "query_df", "query_arrow", "insert_df",
                "insert_arrow", "query_np", "query_rows", "query_row_block_stream"}  # fmt: skip
# SQL statements as the code writes them (upper-case keywords in their grammatical places), not English prose.
SQL = re.compile(
    r"\bSELECT\b.*\bFROM\b|\bINSERT\s+INTO\b|\b(CREATE|ALTER|DROP|TRUNCATE|OPTIMIZE|RENAME|EXCHANGE)\s+"
    r"(TABLE|DATABASE|VIEW|MATERIALIZED|DICTIONARY|TEMPORARY|IF)\b|\bSYSTEM\s+[A-Z]+\b|\bSHOW\s+(TABLES|DATABASES)\b",
    re.DOTALL,
)


def sql_findings(module: str, source: str, is_package: bool = False) -> list[str]:
    """Every place ``module`` imports the store, calls a client's query method, or holds a SQL statement."""
    found = []
    for line, target, names in imports(module, source, is_package):
        for full in [target] + [f"{target}.{n}" for n in names]:
            if any(full == m or full.startswith(m + ".") for m in STORE_MODULES):
                found.append(f"{module}:{line} imports {full}")
                break
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in CLIENT_CALLS:
            found.append(f"{module}:{node.lineno} calls .{node.func.attr}()")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value):
            found.append(f"{module}:{node.lineno} holds SQL {node.value[:60]!r}")
    return found


def test_the_cli_runs_no_sql():
    cli = [p for p in source_files() if room(module_name(p)) == "pipeline.cli"]
    assert {module_name(p) for p in cli} >= {"pipeline.cli.main", "pipeline.cli.table"}
    found = []
    for path in cli:
        found += sql_findings(module_name(path), path.read_text(), path.name == "__init__.py")
    assert found == []


def test_sql_check_catches_the_store_queries_and_sql_text():
    assert sql_findings("pipeline.cli.main", "from pipeline import clickhouse\n")
    assert sql_findings("pipeline.cli.main", "from pipeline.clickhouse.client import opened\n")
    assert sql_findings("pipeline.cli.main", "import clickhouse_connect\n")
    assert sql_findings("pipeline.cli.main", "def f(c):\n    return c.query(q).result_rows\n")
    assert sql_findings("pipeline.cli.main", "def f(c, rows):\n    c.insert('t', rows)\n")
    assert sql_findings("pipeline.cli.main", "def f(c):\n    c.command(q)\n")
    assert sql_findings("pipeline.cli.main", "Q = f'SELECT count() FROM {db}.events FINAL'\n")
    assert sql_findings("pipeline.cli.main", "Q = 'CREATE TABLE IF NOT EXISTS x (a UInt8) ENGINE = Memory'\n")
    assert sql_findings("pipeline.cli.main", "Q = 'INSERT INTO t VALUES'\n")


def test_sql_check_passes_prose_and_formatting():
    assert not sql_findings("pipeline.cli.main", "H = 'select the rule files; from the shipped set'\n")
    assert not sql_findings("pipeline.cli.main", "H = 'apply pending schema migrations (idempotent)'\n")
    assert not sql_findings(
        "pipeline.cli.main", "from pipeline.usecases import api\nx = api.read(s, 'scorecard', {})\n"
    )
    assert not sql_findings("pipeline.cli.table", "def f(t, rows):\n    t.add_row(*rows)\n")


def test_faust_checker_rejects_internal_modules_and_private_names():
    assert faust_violations("consumers.app", "from faust.transport.drivers import aiokafka\n")
    assert faust_violations("consumers.app", "import faust.transport.consumer\n")
    assert faust_violations("consumers.loop", "from faust.types.tuples import ack_lock\n")
    assert faust_violations("consumers.loop", "from mode.utils.futures import notify\n")
    assert faust_violations("consumers.loop", "from faust import _private_helper\n")
    assert faust_violations("pipeline.tools.demo", "from faust.types import _Internal\n")


def test_faust_checker_rejects_private_attributes_and_subclasses():
    names = frozenset({"_read_offset", "_windowed_timestamp"})
    assert faust_violations("consumers.app", "app.consumer._read_offset[tp] = 3\n", names)
    assert faust_violations(
        "pipeline.tools.bench.textbook_faust", "n = counts.table._windowed_timestamp(k, t)\n", names
    )
    assert faust_violations("consumers.app", "import faust\nclass A(faust.App):\n    pass\n", names)
    assert faust_violations("consumers.app", "from faust.types import TP\nclass T(TP):\n    pass\n", names)
    subclass = "import faust\nclass A(faust.App):\n    def f(self):\n        return self._read_offset\n"
    assert any("self._read_offset" in v for v in faust_violations("consumers.app", subclass, names))


def test_faust_checker_accepts_the_public_surface_and_our_own_privates():
    names = frozenset({"_read_offset"})
    assert not faust_violations("consumers.app", "import faust\nfrom faust.types import TP\nimport mode\n", names)
    assert not faust_violations("consumers.app", "app.topics.add(topic)\nos._exit(70)\n", names)
    assert not faust_violations("consumers.loop", "class L:\n    def f(self):\n        self._read_offset = 1\n", names)
    assert not faust_violations(FAUST_ADAPTER, "from faust.types.tuples import ack_lock\nx._read_offset\n", names)
    assert "_wait_next_records" in faust_private_names() and "_exit" not in faust_private_names()
