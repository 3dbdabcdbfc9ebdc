"""The package's layout holds: imports point one way (each module imports only from its own layer
or the layers below; observers and ports carry calls back up), no two modules import each other
through any chain, no module uses another module's ``_private`` name, ``web/`` and ``cli/`` go
through the ``Engine`` and nothing else, and no product function outgrows a screen.

Read from the source with ``ast``: lazy imports and ``TYPE_CHECKING`` ones included — a type-only
import up is a dependency too."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "spojit_engine"
FUNCTION_LINES_MAX = 60

# From the bottom. A module's layer is its longest matching prefix here.
LAYERS: dict[str, int] = {
    "spojit_engine.settings": 0,
    "spojit_engine.clock": 0,
    "spojit_engine.display": 0,
    "spojit_engine.money": 0,
    "spojit_engine.errors": 0,
    "spojit_engine.db": 0,
    "spojit_engine.jsonbody": 0,
    "spojit_engine.text": 0,  # what outside text may hold before it is stored or looked up
    "spojit_engine.lazy": 0,  # how package faces re-export, lazily
    "spojit_engine.metering.core": 1,  # pure: money rules, burn order, periods, prices
    "spojit_engine.metering.store": 2,  # tables, driver SQL, retries
    "spojit_engine.metering.ledger": 3,  # the one writer and what it composes
    "spojit_engine.metering.reads": 4,  # the card, breakdown, timeline, executions, verify
    "spojit_engine.metering.meter": 4,  # a node call's metering: decorator, meter, group commit
    "spojit_engine.metering": 5,  # the package's face re-exports its subpackages
    "spojit_engine.accounts": 6,  # workspaces and members, over the ledger
    "spojit_engine.llm": 6,  # the one door to LiteLLM; reports usage to the meter
    "spojit_engine.estimation": 7,  # what a run will cost, before it runs
    "spojit_engine.guards": 7,
    "spojit_engine.billing": 7,
    "spojit_engine.notify": 7,  # alerts on what the ledger committed
    "spojit_engine.signin": 7,  # one-time links and browser sessions over accounts
    "spojit_engine.nodes": 8,
    "spojit_engine.migrations": 8,  # Alembic's env reads every table's metadata
    "spojit_engine.engine": 9,
    "spojit_engine.results": 9,
    "spojit_engine.web": 10,
    "spojit_engine.cli": 11,  # the outermost shell: `spojit serve` starts the web app
    "spojit_engine": 12,  # the package's public face re-exports from every layer
}
# Peers on one layer that must not lean on each other either.
PEERS = (
    ("spojit_engine.metering.reads", "spojit_engine.metering.meter"),
    ("spojit_engine.accounts", "spojit_engine.llm"),
    (
        "spojit_engine.estimation",
        "spojit_engine.guards",
        "spojit_engine.billing",
        "spojit_engine.notify",
        "spojit_engine.signin",
    ),
)
APART = {(a, b) for group in PEERS for a in group for b in group if a != b}
# What web/ and cli/ may not reach past the Engine for.
DOOR = re.compile(r"\bengine\.(ledger|guard|sa_engine)\b")


def layer_of(module: str) -> tuple[str, int]:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return best, LAYERS[best]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    path = PACKAGE.parent / Path(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def product_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@cache
def tree_of(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def imports_of(path: Path) -> list[tuple[int, str, str | None]]:
    """(line, module, name) of every spojit_engine import in the file: ``from x import y`` is
    (x.y, None) when y is a submodule, else (x, y); relative imports resolved."""
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found: list[tuple[int, str, str | None]] = []
    for node in ast.walk(tree_of(path)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((node.lineno, sub, None) if is_module(sub) else
                             (node.lineno, base, alias.name))  # fmt: skip
    return [(line, m, n) for line, m, n in found if m.split(".")[0] == "spojit_engine"]


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in product_files():
        here = module_name(path)
        graph.setdefault(here, set()).update(
            target for _, target, _ in imports_of(path) if target != here
        )
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(root: str) -> None:
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            child = next(edges, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def violations() -> list[str]:
    bad = []
    for path in product_files():
        here = module_name(path)
        group, rank = layer_of(here)
        for line, target, _ in imports_of(path):
            their_group, their_rank = layer_of(target)
            if their_rank > rank or (group, their_group) in APART:
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} {here} -> {target}")
    return bad


def private_uses(path: Path) -> list[str]:
    """Another module's ``_name`` imported, or read off a module imported whole."""
    here = module_name(path)
    bad = [
        f"{line} {target}.{name}"
        for line, target, name in imports_of(path)
        if name and name.startswith("_") and not name.startswith("__") and target != here
    ]
    modules = {
        (alias.asname or alias.name).split(".")[0]
        for node in ast.walk(tree_of(path))
        if isinstance(node, ast.ImportFrom | ast.Import)
        for alias in node.names
        if isinstance(node, ast.ImportFrom) and node.module
        and is_module(f"{node.module}.{alias.name}") and node.module.startswith("spojit_engine")
    }  # fmt: skip
    bad += [
        f"{node.lineno} {node.value.id}.{node.attr}"
        for node in ast.walk(tree_of(path))
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
        and node.value.id in modules and node.attr.startswith("_")
        and not node.attr.startswith("__")
    ]  # fmt: skip
    return [f"{path.relative_to(PACKAGE.parent)}:{b}" for b in bad]


def test_no_module_imports_a_layer_above_it() -> None:
    assert violations() == []


def test_no_two_modules_import_each_other_through_any_chain() -> None:
    assert cycles(import_graph()) == []


def test_no_module_uses_another_modules_private_name() -> None:
    assert [b for path in product_files() for b in private_uses(path)] == []


def test_web_and_cli_go_through_the_engine_only() -> None:
    """The ``Engine`` is the only door: its ledger, guard and SQLAlchemy engine stay inside."""
    bad = [
        f"{path.relative_to(PACKAGE.parent)}:{n}"
        for sub in ("web", "cli")
        for path in sorted((PACKAGE / sub).rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if DOOR.search(line)
    ]
    assert bad == []


def test_no_product_function_outgrows_a_screen() -> None:
    long = [
        f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}"
        for path in product_files()
        if "migrations" not in path.parts
        for node in ast.walk(tree_of(path))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (node.end_lineno or node.lineno) - node.lineno + 1 > FUNCTION_LINES_MAX
    ]
    assert long == []


def test_cli_command_modules_do_not_import_the_app() -> None:
    """cli/app.py registers the command groups; they share what they need through cli/context."""
    bad = [
        f"{p.relative_to(PACKAGE)}:{line}"
        for p in sorted((PACKAGE / "cli").rglob("*.py"))
        if p.name not in ("app.py", "__init__.py")
        for line, target, _ in imports_of(p)
        if target == "spojit_engine.cli.app"
    ]
    assert bad == []


@pytest.mark.parametrize(
    ("module", "target", "expected"),
    [
        ("spojit_engine.metering.ledger.operations", "spojit_engine.engine", True),
        ("spojit_engine.metering.core.burn", "spojit_engine.metering.store.schema", True),
        ("spojit_engine.metering.meter.runtime", "spojit_engine.llm", True),
        ("spojit_engine.metering.meter.runtime", "spojit_engine.accounts", True),
        ("spojit_engine.guards.guard", "spojit_engine.engine", True),
        ("spojit_engine.guards.guard", "spojit_engine.billing.orders", True),
        ("spojit_engine.estimation.planner", "spojit_engine.nodes.workflow", True),
        ("spojit_engine.engine", "spojit_engine.guards.guard", False),
        ("spojit_engine.cli.app", "spojit_engine.web.app", False),
        ("spojit_engine.web.app", "spojit_engine.cli.app", True),
    ],
)
def test_the_rule_itself(module: str, target: str, expected: bool) -> None:
    """The checker would catch an import up (it is not vacuously green)."""
    group, rank = layer_of(module)
    their_group, their_rank = layer_of(target)
    assert (their_rank > rank or (group, their_group) in APART) is expected


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_every_package_readme_names_every_module() -> None:
    """A newcomer finds each module's job in its folder's README (or its parent's)."""
    missing = []
    for init in sorted(PACKAGE.rglob("__init__.py")):
        folder = init.parent
        if "migrations" in folder.parts or folder == PACKAGE:
            continue
        readmes = [folder / "README.md", folder.parent / "README.md"]
        text = " ".join(r.read_text() for r in readmes if r.exists())
        for module in sorted(folder.glob("*.py")):
            if (
                module.name != "__init__.py"
                and f"`{module.name}`" not in text
                and (f"`{folder.name}/{module.name}`" not in text)
            ):
                missing.append(str(module.relative_to(PACKAGE)))
    assert missing == []
