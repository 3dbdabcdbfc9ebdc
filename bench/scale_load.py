"""Bulk loading for ``bench/simulate_scale.py``: workspaces and their history straight in SQL
(``generate_series``), secondary indexes dropped during a load and rebuilt after, triggers off
(``session_replication_role = replica``: the foreign-key checks, and also the rollup triggers of
migration 0010, so the loader writes what they would: each key in ``ledger_keys`` and each day's
usage in ``usage_daily``), every posting applied to its grant and to the materialised balance so
``verify`` holds. Also the EXPLAIN of the hot path's reads."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

GRANT_UCR = 10**15  # each workspace's loaded grant: far more than any history spends
HISTORY_DEBIT_UCR = 1_000  # each loaded debit: 0.001 credit
LOAD_CHUNK_ROWS = 1_000_000  # entries per INSERT … SELECT

# Typed placeholders: psycopg sends a small Python int as smallint, which generate_series refuses.
SPAN = "%(first)s::int, %(last)s::int"
ROWS = "generate_series(1, %(rows)s::int)"
BASE = "%(base)s::bigint"
DEBIT = "%(d)s::bigint"
CREATED = "%(start)s::timestamp + make_interval(secs => n %% 86400)"  # a history debit's time


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ws_id(i: str) -> str:
    """SQL for the id of workspace number ``i`` (1-based)."""
    return f"'sim' || lpad(({i})::text, 8, '0')"


# -- loading --------------------------------------------------------------------------------------


class Loader:
    """Grows the scratch database's workspaces and history in SQL."""

    def __init__(self, dsn: str) -> None:
        import psycopg

        self.conn = psycopg.connect(dsn, autocommit=True)
        self.conn.execute("SET session_replication_role = replica")  # no FK triggers
        self.conn.execute("SET synchronous_commit = off")
        self.conn.execute("SET maintenance_work_mem = '512MB'")
        self.workspaces = 0
        self.entries = 0
        now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
        self.start = now - timedelta(days=1)
        self.end = now + timedelta(days=27)

    def scalar(self, sql: str, params: Any = None) -> Any:
        row = self.conn.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def grow(self, workspaces: int, entries: int) -> float:
        """Reach ``workspaces`` and ``entries``; returns the seconds it took."""
        began = time.perf_counter()
        dropped = self._drop_secondary_indexes()
        if workspaces > self.workspaces:
            self._add_workspaces(self.workspaces + 1, workspaces)
            self.workspaces = workspaces
        while self.entries < entries:
            rows = min(LOAD_CHUNK_ROWS, entries - self.entries)
            self._add_history(rows)
            log(f"  loaded {self.entries:,} entries")
        for sql in dropped:
            self.conn.execute(sql)
        for table in ("entries", "postings", "ledger_keys", "usage_daily", "grants", "workspaces"):
            self.conn.execute(f"VACUUM ANALYZE {table}")
        return time.perf_counter() - began

    def _add_workspaces(self, first: int, last: int) -> None:
        p = {"first": first, "last": last, "start": self.start, "end": self.end, "g": GRANT_UCR}
        base = self.scalar("SELECT coalesce(max(id), 0) FROM entries")
        self.conn.execute(
            "INSERT INTO workspaces (id, name, plan_id, anchor_at, period_start, period_end,"
            " next_due_at, credits_ucr, held_ucr, overdraft_ucr, created_at)"
            f" SELECT {ws_id('i')}, 'sim-' || i, 'free', %(start)s, %(start)s, %(end)s, %(end)s,"
            f" %(g)s, 0, 0, %(start)s FROM generate_series({SPAN}) i",
            p,
        )
        self.conn.execute(
            "INSERT INTO grants (id, workspace_id, key, kind, amount_ucr, remaining_ucr, priority,"
            " effective_at, expires_at, created_at)"
            f" SELECT i, {ws_id('i')}, 'sim:grant:' || i, 'adjustment', %(g)s, %(g)s, 20,"
            f" %(start)s, NULL, %(start)s FROM generate_series({SPAN}) i",
            p,
        )
        self.conn.execute(
            "INSERT INTO entries (id, workspace_id, key, kind, amount_ucr, held_ucr, grant_id,"
            " test_run, reason, created_at)"
            f" SELECT {BASE} + i, {ws_id('i')}, 'sim:grant:' || i, 'grant', %(g)s, 0, i, false,"
            f" 'simulated', %(start)s FROM generate_series({SPAN}) i",
            p | {"base": base},
        )
        self.conn.execute(
            "INSERT INTO postings (entry_id, workspace_id, grant_id, amount_ucr)"
            f" SELECT {BASE} + i, {ws_id('i')}, i, %(g)s FROM generate_series({SPAN}) i",
            p | {"base": base},
        )
        self.conn.execute(
            "INSERT INTO ledger_keys (key, workspace_id)"
            f" SELECT 'sim:grant:' || i, {ws_id('i')} FROM generate_series({SPAN}) i",
            p,
        )
        self.entries += last - first + 1
        self._reset_sequences()

    def _add_history(self, rows: int) -> None:
        """``rows`` debits round-robin over the workspaces, then the grants and balances."""
        base = self.scalar("SELECT coalesce(max(id), 0) FROM entries")
        p = {"base": base, "rows": rows, "w": self.workspaces, "d": HISTORY_DEBIT_UCR,
             "start": self.start}  # fmt: skip
        ws = f"(({BASE} + n) %% %(w)s::int) + 1"
        with self.conn.transaction():
            self.conn.execute(
                "INSERT INTO entries (id, workspace_id, key, kind, amount_ucr, held_ucr,"
                " workflow, node_type, test_run, node_call, created_at)"
                f" SELECT {BASE} + n, {ws_id(ws)}, 'sim:h:' || ({BASE} + n), 'debit', -{DEBIT},"
                f" 0, 'simulated', 'transform.map', false, 'sim:h:' || ({BASE} + n),"
                f" {CREATED} FROM {ROWS} n",
                p,
            )
            self.conn.execute(
                "INSERT INTO postings (entry_id, workspace_id, grant_id, amount_ucr)"
                f" SELECT {BASE} + n, {ws_id(ws)}, {ws}, -{DEBIT} FROM {ROWS} n",
                p,
            )
            self.conn.execute(
                "INSERT INTO ledger_keys (key, workspace_id)"
                f" SELECT 'sim:h:' || ({BASE} + n), {ws_id(ws)} FROM {ROWS} n",
                p,
            )
            self._add_daily_usage(p, ws)
            spent = f"SELECT {ws} AS g, count(*) * {DEBIT} AS ucr FROM {ROWS} n GROUP BY 1"
            self.conn.execute(
                f"UPDATE grants SET remaining_ucr = remaining_ucr - s.ucr FROM ({spent}) s"
                " WHERE grants.id = s.g",
                p,
            )
            self.conn.execute(
                f"UPDATE workspaces SET credits_ucr = credits_ucr - s.ucr FROM ({spent}) s"
                f" WHERE workspaces.id = {ws_id('s.g')}",
                p,
            )
        self.entries += rows
        self._reset_sequences()

    def _add_daily_usage(self, p: dict[str, Any], ws: str) -> None:
        """The usage_daily rows the rollup trigger would have written for this chunk: each
        history debit is its own node call (one call) on the day its workspace's reset time
        (the anchor's, ``start``) begins."""
        day = (f"CAST({CREATED} - make_interval(secs =>"
               " floor(extract(epoch FROM %(start)s::timestamp::time))) AS date)")  # fmt: skip
        self.conn.execute(
            "INSERT INTO usage_daily (workspace_id, day, workflow, node_type, member_id,"
            " test_run, credits_ucr, calls)"
            f" SELECT {ws_id(ws)}, {day}, 'simulated', 'transform.map', '', false,"
            f" count(*) * {DEBIT}, count(*) FROM {ROWS} n GROUP BY 1, 2"
            " ON CONFLICT (workspace_id, day, workflow, node_type, member_id, test_run)"
            " DO UPDATE SET credits_ucr = usage_daily.credits_ucr + excluded.credits_ucr,"
            " calls = usage_daily.calls + excluded.calls",
            p,
        )

    def _reset_sequences(self) -> None:
        for table in ("entries", "postings", "grants"):
            self.conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                f" (SELECT coalesce(max(id), 1) FROM {table}))"
            )

    def _drop_secondary_indexes(self) -> list[str]:
        """Drop entries' and postings' non-primary indexes; returns the SQL that rebuilds them."""
        rebuild = []
        constraints = self.conn.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)"
            " FROM pg_constraint WHERE contype = 'u'"
            " AND conrelid IN ('entries'::regclass, 'postings'::regclass)"
        ).fetchall()
        for table, name, definition in constraints:
            self.conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
            rebuild.append(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        indexes = self.conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ('entries', 'postings')"
            " AND indexname NOT LIKE '%%pkey'"
        ).fetchall()
        for name, definition in indexes:
            self.conn.execute(f'DROP INDEX "{name}"')
            # A partitioned table's index reads "ON ONLY entries": as written, it would build
            # no partition's index. Without ONLY it builds all of them.
            rebuild.append(definition.replace(" ON ONLY ", " ON "))
        return rebuild

    def explain(self) -> list[tuple[str, str]]:
        """(statement, the plan's scan lines) for the hot path's reads and the sweeper's."""
        w = "sim00000001"
        queries = {
            "lock workspace": f"SELECT * FROM workspaces WHERE id = '{w}' FOR UPDATE",
            "load grants": "SELECT id FROM grants"
            f" WHERE workspace_id = '{w}' AND remaining_ucr > 0",
            "key used?": "SELECT 1 FROM ledger_keys WHERE key = 'sim:h:5'",
            "replay by key": "SELECT id FROM entries"
            f" WHERE workspace_id = '{w}' AND key = 'sim:h:5'",
            "node call's first": "SELECT 1 FROM entries"
            f" WHERE workspace_id = '{w}' AND node_call = 'sim:h:5'",
            "move grant": "UPDATE grants SET remaining_ucr = remaining_ucr - 1 WHERE id = 1"
            " AND remaining_ucr - 1 >= 0",
            "update balance": f"UPDATE workspaces SET credits_ucr = credits_ucr WHERE id = '{w}'",
            "hold's workspace": "SELECT workspace_id FROM holds WHERE id = 1",
            "verify: entries": f"SELECT sum(amount_ucr) FROM entries WHERE workspace_id = '{w}'",
            "verify: postings": "SELECT sum(p.amount_ucr) FROM postings p JOIN entries e ON"
            f" p.entry_id = e.id WHERE e.workspace_id = '{w}' AND p.workspace_id = '{w}'"
            " AND p.grant_id IS NULL",
            "sweeper: due": "SELECT id FROM workspaces WHERE next_due_at <= now()"
            " ORDER BY next_due_at LIMIT 500",
        }
        plans = []
        for name, sql in queries.items():
            rows = self.conn.execute(f"EXPLAIN (COSTS OFF) {sql}").fetchall()
            scans = [r[0].strip(" ->") for r in rows if "Scan" in r[0]]
            plans.append((name, "; ".join(scans) or rows[0][0]))
        return plans
