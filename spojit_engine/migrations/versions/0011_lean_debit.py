"""PostgreSQL's debit does less work per call: grants update in place, and ``spojit_debit`` runs
fewer statements and keeps ``usage_daily`` itself.

1. Grants are indexed by workspace only. While ``remaining_ucr`` sat in
   ``ix_grants_workspace_remaining``, no debit could update a grant in place (HOT): each added an
   index entry, and the burn-order reads (bitmap scans, which never mark entries dead) walked all
   of them until a VACUUM. With autovacuum off, as on the project's server, ~40k debits took the
   scan from 2 entries to ~19,000 (3 ms) and the server CPU per debit from ~620 to ~1,830 µs.
   Without it the update is HOT and the reads filter the few grants a workspace holds. (SQLite
   gains too: an update no longer rewrites an index entry.)
2. ``spojit_debit`` (0008) is rewritten with the same rules and results, in fewer statements,
   each of which costs an executor start on the server: the spendable grants are read once, in
   burn order, as arrays (0008 read them twice: a sum, then a loop); no key look-up before the
   insert (a used key fails the insert with the UNIQUE violation ``pg_debit`` already hands to
   the Python path, which decides replays and conflicts exactly as before); the result is
   returned without a query.
3. The debit applies the ``usage_daily`` rule of 0010 to its own entry, rendered from the very
   same rule text, and marks the insert (a transaction-local setting, on for that one statement)
   so the row trigger skips it: no trigger queue, call and second look-up of the anchor on the
   debit path. Every other writer still goes through the trigger; ``verify`` proves the rollup
   either way.
4. ``spojit_debit`` and the rollup trigger functions always use their statements' generic plans.
   The rollup upsert was planned afresh on every call (~70 µs of the ~400 µs a debit cost the
   server): when an entry has no node call, the custom plan folds the first-call test away, so
   the plan cache never found the generic plan (which keeps the test) as cheap and never
   switched to it.

Revision ID: 0011_lean_debit
Revises: 0010_rollup_triggers
"""

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

from alembic import op

revision = "0011_lean_debit"
down_revision = "0010_rollup_triggers"
branch_labels = None
depends_on = None

# On (transaction-local) only while spojit_debit inserts an entry whose rollup it posts itself.
POSTED = "current_setting('spojit.rollup_posted', true) IS DISTINCT FROM 'on'"
_SET_POSTED = "_flag := set_config('spojit.rollup_posted', '{value}', true);"

FUNCTION = """
CREATE OR REPLACE FUNCTION spojit_debit(
    p_workspace_id varchar, p_key varchar, p_amount bigint, p_now timestamp,
    p_reservation_key varchar, p_keep bigint, p_workflow varchar, p_node_type varchar,
    p_member_id varchar, p_test_run boolean, p_node_call varchar, p_records jsonb
) RETURNS TABLE (entry_id integer, held_delta bigint, reservation_id integer)
LANGUAGE plpgsql {generic} AS $$
DECLARE
    w record;
    res_id integer;
    res_open bigint;
    take bigint := 0;
    live bigint;
    ids integer[];
    lefts bigint[];
    left_ucr bigint := p_amount;
    part bigint;
    i integer := 1;
    new_entry entries;
    _flag text;
BEGIN
    SELECT held_ucr, overdraft_ucr, next_due_at INTO w
        FROM workspaces WHERE id = p_workspace_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'spojit: unknown workspace' USING ERRCODE = 'SP004';
    END IF;
    IF p_now >= w.next_due_at THEN
        RAISE EXCEPTION 'spojit: maintenance due' USING ERRCODE = 'SP001';
    END IF;
    IF p_reservation_key IS NOT NULL THEN
        SELECT id, amount_ucr - COALESCE(settled_ucr, 0) INTO res_id, res_open FROM holds
            WHERE key = p_reservation_key AND workspace_id = p_workspace_id AND state = 'held';
        IF FOUND THEN
            take := GREATEST(0, LEAST(p_amount, res_open - p_keep));
        END IF;
    END IF;
    -- The spendable grants in burn order (metering/core/burn.py), and their sum.
    SELECT array_agg(id ORDER BY {burn_order}), array_agg(remaining_ucr ORDER BY {burn_order}),
           COALESCE(SUM(remaining_ucr), 0) INTO ids, lefts, live
        FROM grants
        WHERE workspace_id = p_workspace_id AND remaining_ucr > 0 AND effective_at <= p_now
          AND (expires_at IS NULL OR p_now < expires_at);
    IF p_amount > live - w.held_ucr - w.overdraft_ucr + take THEN
        RAISE EXCEPTION 'spojit: refused' USING ERRCODE = 'SP003';
    END IF;
    {posted_on}
    INSERT INTO entries (workspace_id, key, kind, amount_ucr, held_ucr, grant_id, hold_id,
                         workflow, node_type, member_id, test_run, node_call, reason, created_at)
        VALUES (p_workspace_id, p_key, 'debit', -p_amount, -take, NULL, res_id, p_workflow,
                p_node_type, p_member_id, p_test_run, p_node_call, NULL, p_now)
        RETURNING * INTO new_entry;
    {posted_off}
    WHILE left_ucr > 0 AND i <= COALESCE(array_length(ids, 1), 0) LOOP
        part := LEAST(lefts[i], left_ucr);
        INSERT INTO postings (entry_id, grant_id, amount_ucr) VALUES (new_entry.id, ids[i], -part);
        UPDATE grants SET remaining_ucr = remaining_ucr - part
            WHERE id = ids[i] AND remaining_ucr - part >= 0 AND remaining_ucr - part <= amount_ucr;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'SP009',
                MESSAGE = 'spojit: grant ' || ids[i] || ' would leave its range';
        END IF;
        left_ucr := left_ucr - part;
        i := i + 1;
    END LOOP;
    IF left_ucr <> 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'SP009', MESSAGE = 'spojit: not paid in full: ' || p_key;
    END IF;
    IF take > 0 THEN
        UPDATE holds SET settled_ucr = COALESCE(settled_ucr, 0) + take
            WHERE id = res_id AND state = 'held' AND amount_ucr - COALESCE(settled_ucr, 0) >= take;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'SP009',
                MESSAGE = 'spojit: reservation ' || res_id || ' cannot pay';
        END IF;
    END IF;
    UPDATE workspaces SET credits_ucr = credits_ucr - p_amount, held_ucr = held_ucr - take
        WHERE id = p_workspace_id;
    -- The usage_daily rule of 0010's trigger, applied to this entry.
    IF {daily_when} THEN
        {daily_upsert};
    END IF;
    -- The call's usage records (JSON objects named as the table's columns), in the same commit.
    IF p_records IS NOT NULL THEN
        INSERT INTO usage_records
            SELECT u.* FROM jsonb_array_elements(p_records) AS r,
                LATERAL jsonb_populate_record(NULL::usage_records, r || jsonb_build_object(
                    'id', nextval(pg_get_serial_sequence('usage_records', 'id')))) AS u
            ON CONFLICT (key) DO NOTHING;
    END IF;
    entry_id := new_entry.id;
    held_delta := -take;
    reservation_id := res_id;
    RETURN NEXT;
END
$$;
"""
_BURN_ORDER = "priority, (expires_at IS NULL), expires_at, effective_at, id"
GENERIC = "SET plan_cache_mode = force_generic_plan"


def _sibling(stem: str) -> ModuleType:
    """An earlier migration of this directory, for the rule texts it installed."""
    spec = importlib.util.spec_from_file_location(stem, Path(__file__).with_name(f"{stem}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _daily_trigger(rollups: ModuleType, when: str) -> list[str]:
    """Re-create 0010's usage_daily trigger with the condition ``when``."""
    rule = _daily_rule(rollups)
    return [
        f"DROP TRIGGER {rule.name} ON {rule.table}",
        f"CREATE TRIGGER {rule.name} AFTER {rule.event} ON {rule.table} FOR EACH ROW"
        f" WHEN ({when}) EXECUTE FUNCTION {rule.name}()",
    ]


def _daily_rule(rollups: ModuleType) -> Any:
    (rule,) = [r for r in rollups.RULES if r.name == "spojit_rollup_usage_daily"]
    return rule


def function_sql() -> str:
    """``spojit_debit`` as this migration installs it (the rollup rule rendered from 0010)."""
    rollups = _sibling("0010_rollup_triggers")
    rule = _daily_rule(rollups)
    (upsert,) = rule.statements
    return FUNCTION.format(
        generic=GENERIC,
        burn_order=_BURN_ORDER,
        posted_on=_SET_POSTED.format(value="on"),
        posted_off=_SET_POSTED.format(value=""),
        daily_when=rule.when.replace("NEW.", "new_entry."),
        daily_upsert=rollups._render(upsert, "postgresql").replace("NEW.", "new_entry."),
    )


def upgrade() -> None:
    op.drop_index("ix_grants_workspace_remaining", table_name="grants")
    op.create_index("ix_grants_workspace", "grants", ["workspace_id"])
    if op.get_bind().dialect.name != "postgresql":
        return
    rollups = _sibling("0010_rollup_triggers")
    when = _daily_rule(rollups).when
    for statement in _daily_trigger(rollups, f"({when}) AND {POSTED}"):
        op.execute(statement)
    op.execute(function_sql())
    for rule in rollups.RULES:
        op.execute(f"ALTER FUNCTION {rule.name}() {GENERIC}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        rollups = _sibling("0010_rollup_triggers")
        op.execute(_sibling("0008_pg_debit").FUNCTION)
        for rule in rollups.RULES:
            op.execute(f"ALTER FUNCTION {rule.name}() RESET plan_cache_mode")
        for statement in _daily_trigger(rollups, _daily_rule(rollups).when):
            op.execute(statement)
    op.drop_index("ix_grants_workspace", table_name="grants")
    op.create_index(
        "ix_grants_workspace_remaining", "grants", ["workspace_id", "remaining_ucr"], unique=False
    )
