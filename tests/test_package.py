"""The package's public face, its schema revision, and the supply-chain tripwire."""

from __future__ import annotations

import os
import site
import subprocess
import sys
from pathlib import Path

import spojit_engine
from spojit_engine.db import MIGRATIONS_DIR, SCHEMA_REVISION


def test_public_names_are_pinned() -> None:
    assert spojit_engine.__all__ == [
        "AdminRequired", "Condition", "Conflict", "Connector", "Engine", "Forbidden",
        "IdempotencyConflict", "IllegalTransition", "InsufficientCredits", "InvalidInput",
        "Knowledge", "LedgerCorrupt", "LedgerUnavailable", "Loop", "NotFound", "Parallel",
        "Response", "SpojitError", "Transform", "Trigger", "Unauthorized", "Variable",
        "Workflow", "metered",
    ]  # fmt: skip
    assert spojit_engine.__all__ == sorted(spojit_engine.__all__, key=lambda n: (n[0].islower(), n))
    for name in spojit_engine.__all__:
        assert getattr(spojit_engine, name) is not None


def test_a_process_that_imports_only_the_nodes_finds_its_ledger(tmp_path: Path) -> None:
    """A Prefect worker runs a flow file that imports the nodes, never the facade: its node
    calls still bill the Engine of its settings (the package registers the default host)."""
    code = (
        "from spojit_engine.nodes import Workflow\n"
        "from spojit_engine.metering.meter.runtime import current_runtime\n"
        "print(type(current_runtime().engine).__name__)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOJIT_")}
    env |= {"SPOJIT_HOME": str(tmp_path), "SPOJIT_DATABASE_URL": f"sqlite:///{tmp_path}/l.db"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert (done.returncode, done.stdout.strip()) == (0, "Engine"), done.stderr[-2000:]


def test_schema_revision_is_alembic_head() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert ScriptDirectory.from_config(config).get_heads() == [SCHEMA_REVISION]


def test_no_known_supply_chain_implant_is_installed() -> None:
    """litellm 1.82.7/1.82.8/1.107.0 shipped credential stealers as .pth files (DEPENDENCIES.md)."""
    dirs = {Path(p) for p in [*site.getsitepackages(), site.getusersitepackages()]}
    implants = [
        d / name for d in dirs for name in ("litellm_init.pth", "cook.pth") if (d / name).exists()
    ]
    stray = [d / "sitecustomize.py" for d in dirs if (d / "sitecustomize.py").exists()]
    assert not implants and not stray, f"remove and reinstall: {implants + stray}"
    from importlib.metadata import version

    assert version("litellm") == "1.106.2"
    assert sys.version_info >= (3, 11)


def test_importing_the_package_loads_neither_prefect_nor_litellm() -> None:
    import subprocess

    code = (
        "import sys, spojit_engine, spojit_engine.cli; "
        "print(sorted(m for m in ('prefect', 'litellm', 'stripe') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
