"""PostgreSQL: ``spojit_debit``, a debit in one server-side call (one round trip per debit): one
statement in autocommit, so BEGIN, the debit, its usage records and COMMIT are one message.

The same rules as ``Ledger.debit`` (metering/ledger/operations.py, reservations.py): lock the
workspace row; hand back to the Python path (an SQLSTATE of class SP) whatever it alone decides — a
workspace due for maintenance, a key already used (replay or conflict), a refusal, an unknown
workspace; draw ``min(amount, open part - keep)`` from the run's reservation; refuse unless ``amount
<= available + take``; pay in the burn order of ``metering/core/burn.py`` — ORDER BY priority,
(expires_at IS NULL), expires_at, effective_at, id — with the same pair checks (a grant never leaves
[0, amount], a reservation never pays more than it has open). SQLite has no stored procedures and
keeps the Python path.

Revision ID: 0008_pg_debit
Revises: 0007_runs
"""

from alembic import op

revision = "0008_pg_debit"
down_revision = "0007_runs"
branch_labels = None
depends_on = None

FUNCTION = """
CREATE OR REPLACE FUNCTION spojit_debit(
    p_workspace_id varchar, p_key varchar, p_amount bigint, p_now timestamp,
    p_reservation_key varchar, p_keep bigint, p_workflow varchar, p_node_type varchar,
    p_member_id varchar, p_test_run boolean, p_node_call varchar, p_records jsonb
) RETURNS TABLE (entry_id integer, held_delta bigint, reservation_id integer)
LANGUAGE plpgsql AS $$
DECLARE
    w record;
    g record;
    res_id integer;
    res_open bigint;
    take bigint := 0;
    live bigint;
    left_ucr bigint := p_amount;
    part bigint;
    e_id integer;
BEGIN
    SELECT held_ucr, overdraft_ucr, next_due_at INTO w
        FROM workspaces WHERE id = p_workspace_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'spojit: unknown workspace' USING ERRCODE = 'SP004';
    END IF;
    IF p_now >= w.next_due_at THEN
        RAISE EXCEPTION 'spojit: maintenance due' USING ERRCODE = 'SP001';
    END IF;
    IF EXISTS (SELECT 1 FROM entries WHERE key = p_key) THEN
        RAISE EXCEPTION 'spojit: key used' USING ERRCODE = 'SP002';
    END IF;
    IF p_reservation_key IS NOT NULL THEN
        SELECT id, amount_ucr - COALESCE(settled_ucr, 0) INTO res_id, res_open FROM holds
            WHERE key = p_reservation_key AND workspace_id = p_workspace_id AND state = 'held';
        IF FOUND THEN
            take := GREATEST(0, LEAST(p_amount, res_open - p_keep));
        END IF;
    END IF;
    SELECT COALESCE(SUM(remaining_ucr), 0) INTO live FROM grants
        WHERE workspace_id = p_workspace_id AND remaining_ucr > 0 AND effective_at <= p_now
          AND (expires_at IS NULL OR p_now < expires_at);
    IF p_amount > live - w.held_ucr - w.overdraft_ucr + take THEN
        RAISE EXCEPTION 'spojit: refused' USING ERRCODE = 'SP003';
    END IF;
    INSERT INTO entries (workspace_id, key, kind, amount_ucr, held_ucr, grant_id, hold_id,
                         workflow, node_type, member_id, test_run, node_call, reason, created_at)
        VALUES (p_workspace_id, p_key, 'debit', -p_amount, -take, NULL, res_id, p_workflow,
                p_node_type, p_member_id, p_test_run, p_node_call, NULL, p_now)
        RETURNING id INTO e_id;
    FOR g IN SELECT id, remaining_ucr FROM grants
            WHERE workspace_id = p_workspace_id AND remaining_ucr > 0 AND effective_at <= p_now
              AND (expires_at IS NULL OR p_now < expires_at)
            ORDER BY priority, (expires_at IS NULL), expires_at, effective_at, id
    LOOP
        EXIT WHEN left_ucr = 0;
        part := LEAST(g.remaining_ucr, left_ucr);
        INSERT INTO postings (entry_id, grant_id, amount_ucr) VALUES (e_id, g.id, -part);
        UPDATE grants SET remaining_ucr = remaining_ucr - part
            WHERE id = g.id AND remaining_ucr - part >= 0 AND remaining_ucr - part <= amount_ucr;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'SP009',
                MESSAGE = 'spojit: grant ' || g.id || ' would leave its range';
        END IF;
        left_ucr := left_ucr - part;
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
    -- The call's usage records (JSON objects named as the table's columns), in the same commit.
    IF p_records IS NOT NULL THEN
        INSERT INTO usage_records
            SELECT u.* FROM jsonb_array_elements(p_records) AS r,
                LATERAL jsonb_populate_record(NULL::usage_records, r || jsonb_build_object(
                    'id', nextval(pg_get_serial_sequence('usage_records', 'id')))) AS u
            ON CONFLICT (key) DO NOTHING;
    END IF;
    RETURN QUERY SELECT e_id, -take, res_id;
END
$$;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "DROP FUNCTION IF EXISTS spojit_debit(varchar, varchar, bigint, timestamp, varchar,"
            " bigint, varchar, varchar, varchar, boolean, varchar, jsonb)"
        )
