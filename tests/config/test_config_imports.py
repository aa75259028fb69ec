"""The config package's modules import each other without a cycle, and the model is pure data.

The import graph is read from the source (every ``import`` anywhere in a module, so a lazy
import inside a function that would close a cycle counts too); a package ``__init__`` that
a submodule imports counts as a node, since importing it imports every submodule.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "l5d_twisted.config"
CONFIG_DIR = REPO / "l5d_twisted" / "config"
MODULES = sorted(p.stem for p in CONFIG_DIR.glob("*.py") if p.stem != "__init__")

# The model: frozen dataclasses, knobs and docs.  Reading YAML and writing JSON live elsewhere.
PURE_DATA = ("model", "perprefix", "params", "tls", "prefix", "schema")
READERS_AND_WRITERS = (
    "decode",
    "decoders",
    "dtabs",
    "loader",
    "checks",
    "tojson",
    "reference",
    "yamldoc",
)


def _name(stem: str) -> str:
    return PACKAGE if stem == "__init__" else f"{PACKAGE}.{stem}"


def _imports(stem: str) -> set[str]:
    """The modules of the config package that ``stem`` imports (and every other import)."""
    tree = ast.parse((CONFIG_DIR / f"{stem}.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*PACKAGE.split("."), *([base] if base else [])])
            if base != PACKAGE:
                found.add(base)
                continue
            # ``from l5d_twisted.config import decode`` imports the module decode; any other
            # name comes from the package's __init__, which must have run to its end.
            for alias in node.names:
                found.add(f"{PACKAGE}.{alias.name}" if alias.name in MODULES else PACKAGE)
    return found


def import_graph() -> dict[str, set[str]]:
    nodes = {_name(stem): stem for stem in ["__init__", *MODULES]}
    return {
        name: {m for m in _imports(stem) if m in nodes and m != name}
        for name, stem in nodes.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_config_modules_import_each_other_without_a_cycle() -> None:
    graph = import_graph()
    assert len(graph) == len(MODULES) + 1 and graph[PACKAGE], graph
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_each_module_imports_only_those_listed_before_it_in_the_package_doc() -> None:
    import l5d_twisted.config

    doc = l5d_twisted.config.__doc__ or ""
    order = re.findall(r"``(\w+)``", doc.split("The modules,", 1)[1])
    order = [stem for stem in order if stem in MODULES]
    assert sorted(order) == MODULES, "list every module in the package doc"
    for stem, imported in import_graph().items():
        if stem == PACKAGE:
            continue
        earlier = {f"{PACKAGE}.{s}" for s in order[: order.index(stem.rsplit(".", 1)[1])]}
        assert imported <= earlier, f"{stem} imports {sorted(imported - earlier)}, listed after it"


def test_the_cycle_finder_finds_the_cycle_this_package_had() -> None:
    """model -> perprefix -> tojson -> model (a lazy import closed it), before issue 13."""
    had = {
        "model": {"perprefix", "tojson"},
        "perprefix": {"tojson", "decode"},
        "tojson": {"model"},
        "decode": set(),
    }
    cycle = find_cycle({k: set(v) for k, v in had.items()})
    assert (
        cycle is not None
        and cycle[0] == cycle[-1]
        and set(cycle) == {"model", "perprefix", "tojson"}
    )


@pytest.mark.parametrize("stem", PURE_DATA)
def test_the_model_neither_decodes_nor_writes_json(stem: str) -> None:
    imported = _imports(stem)
    for other in READERS_AND_WRITERS:
        assert f"{PACKAGE}.{other}" not in imported, f"{stem} imports {other}"
    assert not any(m == "yaml" or m.startswith("yaml.") for m in imported), f"{stem} imports yaml"
    tree = ast.parse((CONFIG_DIR / f"{stem}.py").read_text())
    defined = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    assert not defined & {"to_json", "decode"}, defined


def test_decoders_are_one_explicit_table_not_import_side_effects() -> None:
    from l5d_twisted.config import decode
    from l5d_twisted.config.decoders import TYPE_DECODERS
    from l5d_twisted.config.model import InterpreterConfig, NamerSpec, RouterConfig, Workers
    from l5d_twisted.config.perprefix import ClientConfig, ServiceConfig
    from l5d_twisted.naming.dtab import Dtab

    assert set(TYPE_DECODERS) == {
        RouterConfig,
        InterpreterConfig,
        NamerSpec,
        Dtab,
        ClientConfig,
        ServiceConfig,
        Workers,
    }
    assert not [name for name in vars(decode) if name.startswith("register")]


# Each module imported first in a fresh interpreter (then a config read and shown, which
# uses every module): an order-dependent import problem shows as an ImportError here.
_FRESH = """
import importlib, json, sys
stems = sys.argv[1:]
for first in stems:
    for name in [m for m in sys.modules if m == "l5d_twisted" or m.startswith("l5d_twisted.")]:
        del sys.modules[name]
    importlib.import_module("l5d_twisted.config." + first)
    for order in (stems, stems[::-1]):
        for stem in order:
            importlib.import_module("l5d_twisted.config." + stem)
    from l5d_twisted.config import config_json, load_config
    config = load_config(
        "routers:\\n- protocol: http\\n  dtab: /svc => /#/io.l5d.fs\\n"
        "  client: {kind: io.l5d.static, configs: [{prefix: /#/*, failFast: true}]}\\n"
        "namers: [{kind: io.l5d.fs, rootDir: .}]\\n"
    )
    shown = config_json(config)
    assert shown["routers"][0]["servers"][0]["port"] == 4140, shown
    assert shown["routers"][0]["dtab"] == "/svc => /#/io.l5d.fs", shown
    json.dumps(shown)
print("ok", len(stems))
"""


def test_each_module_imports_first_in_a_fresh_interpreter() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _FRESH, *MODULES],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ok", str(len(MODULES))]
