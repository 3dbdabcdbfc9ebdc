"""The one writer of money: ``LedgerTx.post`` appends an entry with its postings and moves the
grants and the materialised balance by exactly those postings, inside the caller's transaction
and under the workspace's lock.

Pair checks (TigerBeetle style): an entry's amount equals the sum of its postings; a grant update
only applies if it keeps ``remaining_ucr`` in ``[0, amount_ucr]`` (and the database CHECK says the
same); held and overdraft never go below zero; the balance never leaves a signed 64-bit column.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, CursorResult, func, select, update

from spojit_engine.errors import LedgerCorrupt, UnknownWorkspace
from spojit_engine.metering.core.burn import Block, spendable
from spojit_engine.metering.core.records import Account, EntryRecord, Usage
from spojit_engine.metering.store import schema
from spojit_engine.metering.store.statements import ACCOUNT_COLUMNS, Statements, statements_for
from spojit_engine.money import INT64_MAX

_NO_USAGE = Usage()


def inserted_id(result: CursorResult[Any]) -> int:
    """The primary key an INSERT produced."""
    key = result.inserted_primary_key
    if key is None or key[0] is None:
        raise LedgerCorrupt("An insert produced no primary key.")
    return int(key[0])


def lock_account(conn: Connection, workspace_id: str) -> tuple[Account, list[Block]]:
    """The workspace row under a write lock (FOR UPDATE; SQLite holds BEGIN IMMEDIATE already),
    then every grant that still has credits, whatever its times, read after the lock."""
    sql = statements_for(conn)
    if sql.sqlite:  # one statement: the workspace row on each of its grants' rows
        rows: Any = sql.run(conn, "lock_account_blocks", {"id": workspace_id}).fetchall()
        row = rows[0] if rows else None
        first = len(ACCOUNT_COLUMNS)  # where a grant's columns start (None: no grant)
        grants = [r[first:] for r in rows if r[first] is not None]
    else:
        row = sql.run(conn, "lock_account", {"id": workspace_id}).fetchone()
        grants = sql.run(conn, "load_blocks", {"workspace_id": workspace_id}).fetchall()
    if row is None:
        raise UnknownWorkspace(workspace_id)
    t = sql.time_value
    account = Account(
        row[0], row[1], row[2], row[3], t(row[4]), t(row[5]), t(row[6]), t(row[7]),
        row[8], row[9], row[10],
    )  # fmt: skip
    blocks = [Block(g[0], g[1], t(g[2]), sql.optional_time_value(g[3]), g[4]) for g in grants]
    return account, blocks


class LedgerTx:
    """One locked workspace inside one write transaction."""

    def __init__(
        self, conn: Connection, account: Account, now: datetime, blocks: list[Block]
    ) -> None:
        self.conn = conn
        self.account = account
        self.now = now
        self.blocks = blocks  # the grants with credits left, as locked (before this tx posts)

    @classmethod
    def open(cls, conn: Connection, workspace_id: str, now: datetime) -> LedgerTx:
        """Lock the workspace in ``conn``'s transaction."""
        account, blocks = lock_account(conn, workspace_id)
        return cls(conn, account, now, blocks)

    def post(
        self,
        *,
        kind: str,
        key: str,
        amount_ucr: int,
        postings: Sequence[tuple[int | None, int]] = (),
        held_ucr: int = 0,
        grant_id: int | None = None,
        hold_id: int | None = None,
        usage: Usage = _NO_USAGE,
        reason: str | None = None,
        next_due_at: datetime | None = None,
    ) -> EntryRecord:
        """Append one entry and apply it; ``postings`` are (grant id or None for overdraft, µcr)."""
        before = self.account
        after = self._checked_after(key, amount_ucr, postings, held_ucr, next_due_at)
        sql = statements_for(self.conn)
        entry = {
            "workspace_id": before.id,
            "key": key,
            "kind": kind,
            "amount_ucr": amount_ucr,
            "held_ucr": held_ucr,
            "grant_id": grant_id,
            "hold_id": hold_id,
            "workflow": usage.workflow,
            "node_type": usage.node_type,
            "member_id": usage.member_id,
            "test_run": sql.bool_param(usage.test_run),
            "node_call": usage.node_call,
            "reason": reason,
            "created_at": sql.time_param(self.now),
        }
        entry_id = self._write(sql, entry, postings, after)
        self.account = after
        return EntryRecord(
            id=entry_id,
            workspace_id=before.id,
            key=key,
            kind=kind,
            amount_ucr=amount_ucr,
            held_ucr=held_ucr,
            overdraft_ucr=after.overdraft_ucr - before.overdraft_ucr,
            created_at=self.now,
        )

    def _checked_after(
        self,
        key: str,
        amount_ucr: int,
        postings: Sequence[tuple[int | None, int]],
        held_ucr: int,
        next_due_at: datetime | None,
    ) -> Account:
        """The workspace row once the entry is applied, or ``LedgerCorrupt`` when a pair check
        fails: the entry is its postings' sum; held and overdraft stay >= 0; credits fit int64."""
        if sum(amount for _, amount in postings) != amount_ucr:
            raise LedgerCorrupt(f"Entry {key!r} does not equal the sum of its postings.")
        account = self.account
        new_credits = account.credits_ucr + amount_ucr
        new_held = account.held_ucr + held_ucr
        new_overdraft = account.overdraft_ucr - sum(a for g, a in postings if g is None)
        if new_held < 0 or new_overdraft < 0 or not -INT64_MAX <= new_credits <= INT64_MAX:
            raise LedgerCorrupt(
                f"Entry {key!r} would leave workspace {account.id} with held {new_held}, "
                f"overdraft {new_overdraft}, credits {new_credits} µcr."
            )
        due = min(account.next_due_at, next_due_at) if next_due_at else account.next_due_at
        return replace(account, credits_ucr=new_credits, held_ucr=new_held,
                       overdraft_ucr=new_overdraft, next_due_at=due)  # fmt: skip

    def _write(
        self,
        sql: Statements,
        entry: dict[str, Any],
        postings: Sequence[tuple[int | None, int]],
        after: Account,
    ) -> int:
        """The entry, its postings, the grants they move and the balance, as one batch; returns
        the entry's id. A grant update that would leave ``[0, amount]`` matches no row."""
        with sql.batch(self.conn):
            inserted = sql.run(self.conn, "insert_entry", entry)
            entry_id = sql.inserted_id(inserted) if sql.sqlite else None  # PG: once it has ended
            for grant, amount in postings:
                posting = {"entry_id": entry_id, "workspace_id": after.id, "grant_id": grant,
                           "amount_ucr": amount}  # fmt: skip
                sql.run(self.conn, "insert_posting", posting)
            moves = [
                (g, sql.run(self.conn, "move_grant", {"id": g, "delta": d}))
                for g, d in postings
                if g is not None and d != 0
            ]
            balance = {"id": after.id, "credits_ucr": after.credits_ucr, "held_ucr": after.held_ucr,
                       "overdraft_ucr": after.overdraft_ucr,
                       "next_due_at": sql.time_param(after.next_due_at)}  # fmt: skip
            sql.run(self.conn, "update_balance", balance)
        for grant, cursor in moves:
            if cursor.rowcount != 1:
                raise LedgerCorrupt(
                    f"Grant {grant} of workspace {after.id} would leave its range [0, amount]."
                )
        return entry_id if entry_id is not None else sql.inserted_id(inserted)

    def set_account(self, **values: Any) -> None:
        """Change non-money fields of the workspace row (plan, period, due time)."""
        self.conn.execute(
            update(schema.workspaces)
            .where(schema.workspaces.c.id == self.account.id)
            .values(**values)
        )
        self.account = replace(self.account, **values)

    def recompute_next_due(self) -> None:
        """The next moment something must happen: a grant or hold expires, or the period ends."""
        g, h = schema.grants.c, schema.holds.c
        grant_due = self.conn.execute(
            select(func.min(g.expires_at)).where(
                g.workspace_id == self.account.id, g.remaining_ucr > 0, g.expires_at.is_not(None)
            )
        ).scalar()
        hold_due = self.conn.execute(
            select(func.min(h.expires_at)).where(
                h.workspace_id == self.account.id, h.state == "held"
            )
        ).scalar()
        candidates = [self.account.period_end, grant_due, hold_due]
        self.set_account(next_due_at=min(c for c in candidates if c is not None))


Then = Callable[[LedgerTx], None]  # more writes inside an operation's transaction


def available_ucr(blocks: list[Block], tx: LedgerTx) -> int:
    """What a new debit or hold may take: spendable grants less holds and unpaid overdraft."""
    return sum(b.remaining_ucr for b in blocks) - tx.account.held_ucr - tx.account.overdraft_ucr


def spend_budget(tx: LedgerTx, reserved_ucr: int = 0) -> tuple[list[Block], int]:
    """The blocks a new debit may draw from now, and what it may take: what is available plus
    what the run's reservation pays of it (``reserved_ucr``). A spend is covered when its amount
    is at most that: the one admission rule of debits and holds (``Ledger._admit``) and of the
    fast SQLite debit (``sqlite_debit.py``)."""
    blocks = spendable(tx.blocks, tx.now)
    return blocks, available_ucr(blocks, tx) + reserved_ucr
