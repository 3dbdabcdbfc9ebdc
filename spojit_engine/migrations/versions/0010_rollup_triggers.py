"""The daily usage rollups kept by the database itself: triggers on ``entries`` and
``usage_records``, so every path that writes them (``LedgerTx.post``, ``record_usage``, the usage
writes inside ledger transactions, group commit, and PostgreSQL's one-call ``spojit_debit``)
keeps ``usage_daily``, ``usage_models_daily`` and ``usage_runs`` exact in the same transaction,
with no Python upsert to forget. Each rule is written once below (``RULES``) and rendered for
SQLite (a trigger with a body) and PostgreSQL (a trigger function and its trigger); only the day
of a timestamp differs between the dialects (``_DAY``). The rules (metering/reads/rollup.py):

- a usage entry adds its credits to its (day, workflow, node type, member, test run) row, and a
  call when it is its node call's first usage entry (or of no node call);
- a usage record adds its credits and one call to its (day, member, models) row; an update
  moves them (a rewrite or a settled LLM call changes credits and models), and a row left with
  no call is removed;
- a usage record of a flow run keeps the run's (and its member's) earliest record time.

A day starts at the workspace's reset time of day (its anchor's time, whole seconds). Entries
and usage records are never deleted, so there are no delete triggers. The upgrade rebuilds the
rollups from their rows, which repairs what the paths that did not maintain them left behind.

Revision ID: 0010_rollup_triggers
Revises: 0009_operations
"""

from dataclasses import dataclass

from alembic import op

revision = "0010_rollup_triggers"
down_revision = "0009_operations"
branch_labels = None
depends_on = None

# The day (a DATE) of timestamp {at} in workspace {ws}: the timestamp less the anchor's time of
# day. SQLite cuts both to whole seconds (as Days.sql does); its times are naive UTC text.
_ANCHOR_SECONDS = {
    "sqlite": (
        "(SELECT CAST(strftime('%H', anchor_at) AS INTEGER) * 3600"
        " + CAST(strftime('%M', anchor_at) AS INTEGER) * 60"
        " + CAST(strftime('%S', anchor_at) AS INTEGER) FROM workspaces WHERE id = {ws})"
    ),
    "postgresql": (
        "(SELECT floor(extract(epoch FROM anchor_at::time)) FROM workspaces WHERE id = {ws})"
    ),
}
_DAY = {
    "sqlite": "date(substr({at}, 1, 19), '-' || {seconds} || ' seconds')",
    "postgresql": "CAST({at} - make_interval(secs => {seconds}) AS date)",
}

_KINDS = "'debit', 'settle'"  # the entry kinds that are usage (consumption)


def _models_add(row: str, sign: str) -> str:
    """Add (sign '+') or take back (sign '-') one usage record's credits and call."""
    return (
        "INSERT INTO usage_models_daily (workspace_id, day, member_id, models, credits_ucr, calls)"
        f" VALUES ({row}.workspace_id, {{day:{row}.created_at:{row}.workspace_id}},"
        f" COALESCE({row}.member_id, ''), COALESCE({row}.models, ''), {sign}{row}.credits_ucr,"
        f" {sign}1) ON CONFLICT (workspace_id, day, member_id, models) DO UPDATE SET"
        " credits_ucr = usage_models_daily.credits_ucr + excluded.credits_ucr,"
        " calls = usage_models_daily.calls + excluded.calls"
    )


def _run_start(member: str, when: str) -> str:
    """The run's earliest record time, for the whole run (member '') or a member's part."""
    return (
        "INSERT INTO usage_runs (workspace_id, member_id, flow_run_id, started_at)"
        f" SELECT NEW.workspace_id, {member}, NEW.flow_run_id, NEW.created_at WHERE {when}"
        " ON CONFLICT (workspace_id, member_id, flow_run_id) DO UPDATE SET started_at ="
        " CASE WHEN excluded.started_at < usage_runs.started_at THEN excluded.started_at"
        " ELSE usage_runs.started_at END"
    )


@dataclass(frozen=True)
class Rule:
    name: str
    event: str  # INSERT, UPDATE
    table: str
    when: str | None
    statements: tuple[str, ...]


RULES = (
    Rule("spojit_rollup_usage_daily", "INSERT", "entries", f"NEW.kind IN ({_KINDS})", (
        "INSERT INTO usage_daily (workspace_id, day, workflow, node_type, member_id, test_run,"
        " credits_ucr, calls) VALUES (NEW.workspace_id, {day:NEW.created_at:NEW.workspace_id},"
        " COALESCE(NEW.workflow, ''), COALESCE(NEW.node_type, ''), COALESCE(NEW.member_id, ''),"
        " NEW.test_run, -NEW.amount_ucr, CASE WHEN NEW.node_call IS NULL OR NOT EXISTS"
        f" (SELECT 1 FROM entries WHERE node_call = NEW.node_call AND kind IN ({_KINDS})"
        " AND id < NEW.id) THEN 1 ELSE 0 END) ON CONFLICT (workspace_id, day, workflow,"
        " node_type, member_id, test_run) DO UPDATE SET"
        " credits_ucr = usage_daily.credits_ucr + excluded.credits_ucr,"
        " calls = usage_daily.calls + excluded.calls",
    )),
    Rule("spojit_rollup_models_insert", "INSERT", "usage_records", None, (
        _models_add("NEW", "+"),
    )),
    Rule("spojit_rollup_models_update", "UPDATE", "usage_records", None, (
        _models_add("OLD", "-"),
        _models_add("NEW", "+"),
        "DELETE FROM usage_models_daily WHERE workspace_id = OLD.workspace_id"
        " AND day = {day:OLD.created_at:OLD.workspace_id}"
        " AND member_id = COALESCE(OLD.member_id, '') AND models = COALESCE(OLD.models, '')"
        " AND calls = 0",
    )),
    Rule("spojit_rollup_runs", "INSERT", "usage_records", "NEW.flow_run_id IS NOT NULL", (
        _run_start("''", "TRUE"),
        _run_start("NEW.member_id", "NEW.member_id IS NOT NULL"),
    )),
)  # fmt: skip


def _render(statement: str, dialect: str) -> str:
    """Fill each ``{day:<timestamp>:<workspace id>}`` with the dialect's day expression."""
    out, rest = [], statement
    while "{day:" in rest:
        head, _, tail = rest.partition("{day:")
        spec, _, rest = tail.partition("}")
        at, ws = spec.split(":")
        seconds = _ANCHOR_SECONDS[dialect].format(ws=ws)
        out += [head, _DAY[dialect].format(at=at, seconds=seconds)]
    return "".join(out) + rest


def create_statements(dialect: str) -> list[str]:
    """The DDL that installs every rule in ``dialect`` (sqlite or postgresql)."""
    ddl = []
    for rule in RULES:
        body = [_render(s, dialect) for s in rule.statements]
        if dialect == "sqlite":
            when = f" WHEN {rule.when}" if rule.when else ""
            ddl.append(
                f"CREATE TRIGGER {rule.name} AFTER {rule.event} ON {rule.table} FOR EACH ROW"
                f"{when} BEGIN {'; '.join(body)}; END"
            )
            continue
        ddl.append(
            f"CREATE OR REPLACE FUNCTION {rule.name}() RETURNS trigger LANGUAGE plpgsql AS $$"
            f" BEGIN {'; '.join(body)}; RETURN NULL; END $$"
        )
        when = f" WHEN ({rule.when})" if rule.when else ""
        ddl.append(
            f"CREATE TRIGGER {rule.name} AFTER {rule.event} ON {rule.table} FOR EACH ROW"
            f"{when} EXECUTE FUNCTION {rule.name}()"
        )
    return ddl


# The backfill: every rollup recomputed from its rows by the rules above, frozen here as this
# revision's SQL (a migration never imports live code, which moves on after it).
BACKFILL = (
    "DELETE FROM usage_daily",
    "DELETE FROM usage_models_daily",
    "DELETE FROM usage_runs",
    "INSERT INTO usage_daily (workspace_id, day, workflow, node_type, member_id, test_run,"
    " credits_ucr, calls) SELECT e.workspace_id, {day:e.created_at:e.workspace_id},"
    " COALESCE(e.workflow, ''), COALESCE(e.node_type, ''), COALESCE(e.member_id, ''), e.test_run,"
    " SUM(-e.amount_ucr), SUM(CASE WHEN e.node_call IS NULL OR NOT EXISTS (SELECT 1 FROM entries"
    f" AS earlier WHERE earlier.node_call = e.node_call AND earlier.kind IN ({_KINDS})"
    " AND earlier.id < e.id) THEN 1 ELSE 0 END) FROM entries AS e"
    f" WHERE e.kind IN ({_KINDS}) GROUP BY 1, 2, 3, 4, 5, 6",
    "INSERT INTO usage_models_daily (workspace_id, day, member_id, models, credits_ucr, calls)"
    " SELECT u.workspace_id, {day:u.created_at:u.workspace_id}, COALESCE(u.member_id, ''),"
    " COALESCE(u.models, ''), SUM(u.credits_ucr), COUNT(*) FROM usage_records AS u"
    " GROUP BY 1, 2, 3, 4",
    "INSERT INTO usage_runs (workspace_id, member_id, flow_run_id, started_at)"
    " SELECT workspace_id, '', flow_run_id, MIN(created_at) FROM usage_records"
    " WHERE flow_run_id IS NOT NULL GROUP BY workspace_id, flow_run_id",
    "INSERT INTO usage_runs (workspace_id, member_id, flow_run_id, started_at)"
    " SELECT workspace_id, member_id, flow_run_id, MIN(created_at) FROM usage_records"
    " WHERE flow_run_id IS NOT NULL AND member_id IS NOT NULL"
    " GROUP BY workspace_id, member_id, flow_run_id",
)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in create_statements(dialect):
        op.execute(statement)
    for statement in BACKFILL:
        op.execute(_render(statement, dialect))


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for rule in RULES:
        on = f" ON {rule.table}" if postgresql else ""
        op.execute(f"DROP TRIGGER IF EXISTS {rule.name}{on}")
        if postgresql:
            op.execute(f"DROP FUNCTION IF EXISTS {rule.name}()")
