"""Imports point one way: every module of the package imports only from its own layer or the
layers below (observers and protocols carry calls back up). Read from the source with ``ast``,
lazy imports and ``TYPE_CHECKING`` ones included — a type-only import up is a dependency too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "spojit_engine"

# From the bottom. A module's layer is its longest matching prefix here.
LAYERS: dict[str, int] = {
    "spojit_engine.settings": 0,
    "spojit_engine.clock": 0,
    "spojit_engine.display": 0,
    "spojit_engine.errors": 0,
    "spojit_engine.db": 0,
    "spojit_engine.jsonbody": 0,
    "spojit_engine.metering": 1,
    "spojit_engine.accounts": 1,
    "spojit_engine.llm": 1,
    "spojit_engine.guards": 2,
    "spojit_engine.billing": 2,
    "spojit_engine.notify": 2,  # alerts on what the ledger committed
    "spojit_engine.signin": 2,  # one-time links and browser sessions over accounts
    "spojit_engine.migrations": 2,  # Alembic's env reads every table's metadata
    "spojit_engine.engine": 3,
    "spojit_engine.estimate": 3,  # the facade's estimates, over nodes' planner
    "spojit_engine.results": 3,
    "spojit_engine.nodes": 3,
    "spojit_engine.web": 4,
    "spojit_engine.cli": 5,  # the outermost shell: `spojit serve` starts the web app
    "spojit_engine": 6,  # the package's public face re-exports from every layer
}
# Peers on one layer that must not lean on each other either.
APART = {
    (a, b)
    for a in ("spojit_engine.guards", "spojit_engine.billing", "spojit_engine.notify")
    for b in ("spojit_engine.guards", "spojit_engine.billing", "spojit_engine.notify")
    if a != b
}


def layer_of(module: str) -> tuple[str, int]:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return best, LAYERS[best]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every spojit_engine import in the file, ``from x import y`` as x.y
    when y is a submodule."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                is_module = (PACKAGE.parent / Path(*sub.split("."))).with_suffix(".py").exists()
                found.append((node.lineno, sub if is_module else node.module))
    return [(line, m) for line, m in found if m.split(".")[0] == "spojit_engine"]


def violations() -> list[str]:
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = module_name(path)
        group, rank = layer_of(here)
        for line, target in imports_of(path):
            their_group, their_rank = layer_of(target)
            if their_rank > rank or (group, their_group) in APART:
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} {here} -> {target}")
    return bad


def test_no_module_imports_a_layer_above_it() -> None:
    assert violations() == []


def test_cli_command_modules_do_not_import_the_app() -> None:
    """cli/app.py registers the command modules; they take shared options from cli/options.py."""
    bad = [
        f"{p.name}:{line}"
        for p in sorted((PACKAGE / "cli").glob("*.py"))
        if p.name not in ("app.py", "__init__.py")
        for line, target in imports_of(p)
        if target == "spojit_engine.cli.app"
    ]
    assert bad == []


@pytest.mark.parametrize(
    ("module", "target", "expected"),
    [
        ("spojit_engine.metering.ledger", "spojit_engine.engine", True),
        ("spojit_engine.guards.guard", "spojit_engine.engine", True),
        ("spojit_engine.guards.guard", "spojit_engine.billing.orders", True),
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
