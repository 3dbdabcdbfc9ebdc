"""The suite never touches a user's data: with an operator's ``SPOJIT_HOME``,
``SPOJIT_DATABASE_URL`` and Prefect settings exported (as the operator's guide has people do), the
tests still run in their own home and databases, and that populated home is left byte for byte."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from spojit_engine import Engine
from spojit_engine.settings import get_settings

ROOT = Path(__file__).resolve().parents[1]


def test_the_default_home_is_the_suites_own() -> None:
    """Run directly and inside the test below: whatever was exported, the default home and database
    are the suite's, and writing to them is safe."""
    settings = get_settings()
    assert (
        settings.home.is_relative_to(ROOT / ".pytest_cache") and settings.home.name == "spojit_home"
    )
    assert settings.database_url is None and "PREFECT_API_URL" not in os.environ
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = Engine(settings.resolved_database_url())
    try:
        engine.create_workspace(f"isolation-{os.getpid()}")
    finally:
        engine.close()


def _fingerprint(home: Path) -> dict[str, str]:
    return {
        str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(home.rglob("*"))
        if p.is_file()
    }


@pytest.mark.slow
def test_a_populated_home_in_the_environment_is_left_unchanged(tmp_path: Path) -> None:
    home = tmp_path / "operators_home"
    home.mkdir()
    url = f"sqlite:///{home / 'spojit.db'}"
    operator = Engine(url)
    ws = operator.create_workspace("demo")
    operator.grant(
        ws.id, Decimal("25"), kind="promo", key="g1", reason="history the tests must not see"
    )
    operator.debit(
        ws.id, Decimal("1.5"), key="d1", workflow="lead_enrichment", node_type="Transform"
    )
    operator.close()
    before = _fingerprint(home)

    exported = {
        "SPOJIT_HOME": str(home),
        "SPOJIT_DATABASE_URL": url,
        "PREFECT_API_URL": "http://127.0.0.1:9/api",
        "PREFECT_HOME": str(home / "prefect"),
    }
    chosen = [
        f"{__file__}::test_the_default_home_is_the_suites_own",
        "tests/estimates/test_estimate_flows.py::test_spojit_estimate_prints_json_and_refuses_bad_input",
    ]
    inner = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *chosen],
        cwd=ROOT,
        env={**os.environ, **exported},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert inner.returncode == 0, inner.stdout[-3000:] + inner.stderr[-2000:]
    assert "2 passed" in inner.stdout
    assert _fingerprint(home) == before
