"""Read commands import only what they use: ``spojit usage --json`` reads the card with the bare
driver (no SQLAlchemy, Prefect, LiteLLM or FastAPI) and gives the full path's answer exactly; the
full path answers whenever the quick one cannot (something due, an unknown or ambiguous name)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from spojit_engine import Engine
from spojit_engine.clock import utcnow
from spojit_engine.metering.reads.quick_read import quick_balance
from spojit_engine.results import Balance

_PROBE = """
import sys
from spojit_engine.cli import app
try:
    app(["usage", "--json"])
except SystemExit as done:
    assert not done.code, done.code
heavy = ("litellm", "prefect", "fastapi", "sqlalchemy", "sqlmodel", "alembic")
print(json.dumps(sorted(m for m in heavy if m in sys.modules)), file=sys.stderr)
"""


def test_usage_json_imports_no_heavy_library(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOJIT_")}
    env["SPOJIT_HOME"] = str(tmp_path)
    spojit = str(Path(sys.executable).with_name("spojit"))
    init = subprocess.run([spojit, "init", "--workspace", "acme"], env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert init.returncode == 0, init.stderr
    probe = subprocess.run([sys.executable, "-c", "import json\n" + _PROBE], env=env,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    assert json.loads(probe.stderr.strip().splitlines()[-1]) == []
    card = json.loads(probe.stdout)
    assert (card["workspace"], card["remaining"], card["consumed"]) == ("acme", "100.000000",
                                                                         "0.000000")  # fmt: skip


def test_the_quick_card_is_the_full_paths_card(engine: Engine, database_url: str) -> None:
    ws = engine.create_workspace("acme", plan="free").id
    engine.grant(ws, Decimal("50"), kind="topup", key="t1")
    engine.grant(ws, Decimal("5"), kind="promo", key="p1", expires_at=utcnow() + timedelta(days=2))
    engine.debit(ws, Decimal("7.25"), key="d1", workflow="leads")
    hold = engine.hold(ws, Decimal("3"), key="h1")
    engine.settle(hold.id, Decimal("1.5"))
    engine.hold(ws, Decimal("2"), key="h2")  # still open: held
    engine.reserve_run(ws, Decimal("4"), flow_run_id="run-1")
    engine.debit(ws, Decimal("1"), key="d2", flow_run_id="run-1")
    now = utcnow()
    for name in (None, "acme", ws):
        quick = quick_balance(database_url, name, now)
        assert quick is not None
        assert Balance.of(quick) == engine.balance(ws)
    # Time for a renewal: only the full path may answer (it renews first).
    assert quick_balance(database_url, "acme", engine.balance(ws).resets_at) is None
    engine.create_workspace("beta", plan="free")
    assert quick_balance(database_url, None, now) is None  # which one? the full path asks
    assert quick_balance(database_url, "nope", now) is None  # the full path says unknown
