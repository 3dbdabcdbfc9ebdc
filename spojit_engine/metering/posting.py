"""The one writer of money: ``LedgerTx.post`` appends an entry with its postings and moves the
grants and the materialised balance by exactly those postings, inside the caller's transaction
and under the workspace's lock.

Pair checks (TigerBeetle style): an entry's amount equals the sum of its postings; a grant update
only applies if it keeps ``remaining_ucr`` in ``[0, amount_ucr]`` (and the database CHECK says the
same); held and overdraft never go below zero; the balance never leaves a signed 64-bit column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, CursorResult, bindparam, func, select, update

from spojit_engine.errors import LedgerCorrupt, UnknownWorkspace
from spojit_engine.metering import schema
from spojit_engine.metering.burn import Block
from spojit_engine.metering.money import INT64_MAX
from spojit_engine.metering.records import Account, EntryRecord, Usage

_NO_USAGE = Usage()

_grant_move = (
    update(schema.grants)
    .where(schema.grants.c.id == bindparam("gid"))
    .where(schema.grants.c.remaining_ucr + bindparam("delta") >= 0)
    .where(schema.grants.c.remaining_ucr + bindparam("delta") <= schema.grants.c.amount_ucr)
    .values(remaining_ucr=schema.grants.c.remaining_ucr + bindparam("delta"))
)


def inserted_id(result: CursorResult[Any]) -> int:
    """The primary key an INSERT produced."""
    key = result.inserted_primary_key
    if key is None or key[0] is None:
        raise LedgerCorrupt("An insert produced no primary key.")
    return int(key[0])


def lock_account(conn: Connection, workspace_id: str) -> Account:
    """The workspace row under a write lock (FOR UPDATE; SQLite holds BEGIN IMMEDIATE already)."""
    w = schema.workspaces.c
    row = conn.execute(
        select(
            w.id,
            w.name,
            w.plan_id,
            w.pending_plan_id,
            w.anchor_at,
            w.period_start,
            w.period_end,
            w.next_due_at,
            w.credits_ucr,
            w.held_ucr,
            w.overdraft_ucr,
        )
        .where(w.id == workspace_id)
        .with_for_update()
    ).one_or_none()
    if row is None:
        raise UnknownWorkspace(workspace_id)
    return Account(*row)


def load_blocks(conn: Connection, workspace_id: str) -> list[Block]:
    """Every grant of the workspace that still has credits, whatever its times."""
    g = schema.grants.c
    rows = conn.execute(
        select(g.id, g.priority, g.effective_at, g.expires_at, g.remaining_ucr).where(
            g.workspace_id == workspace_id, g.remaining_ucr > 0
        )
    )
    return [Block(*row) for row in rows]


class LedgerTx:
    """One locked workspace inside one write transaction."""

    def __init__(self, conn: Connection, account: Account, now: datetime) -> None:
        self.conn = conn
        self.account = account
        self.now = now

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
        if sum(amount for _, amount in postings) != amount_ucr:
            raise LedgerCorrupt(f"Entry {key!r} does not equal the sum of its postings.")
        account = self.account
        overdraft_delta = -sum(amount for grant, amount in postings if grant is None)
        new_credits = account.credits_ucr + amount_ucr
        new_held = account.held_ucr + held_ucr
        new_overdraft = account.overdraft_ucr + overdraft_delta
        if new_held < 0 or new_overdraft < 0 or not -INT64_MAX <= new_credits <= INT64_MAX:
            raise LedgerCorrupt(
                f"Entry {key!r} would leave workspace {account.id} with held {new_held}, "
                f"overdraft {new_overdraft}, credits {new_credits} µcr."
            )
        entry_id = inserted_id(
            self.conn.execute(
                schema.entries.insert().values(
                    workspace_id=account.id,
                    key=key,
                    kind=kind,
                    amount_ucr=amount_ucr,
                    held_ucr=held_ucr,
                    grant_id=grant_id,
                    hold_id=hold_id,
                    workflow=usage.workflow,
                    node_type=usage.node_type,
                    member_id=usage.member_id,
                    test_run=usage.test_run,
                    reason=reason,
                    created_at=self.now,
                )
            )
        )
        if postings:
            self.conn.execute(
                schema.postings.insert(),
                [{"entry_id": entry_id, "grant_id": g, "amount_ucr": a} for g, a in postings],
            )
        self._move_grants([(g, a) for g, a in postings if g is not None and a != 0])
        due = min(account.next_due_at, next_due_at) if next_due_at else account.next_due_at
        self.conn.execute(
            update(schema.workspaces)
            .where(schema.workspaces.c.id == account.id)
            .values(
                credits_ucr=new_credits,
                held_ucr=new_held,
                overdraft_ucr=new_overdraft,
                next_due_at=due,
            )
        )
        self.account = replace(
            account,
            credits_ucr=new_credits,
            held_ucr=new_held,
            overdraft_ucr=new_overdraft,
            next_due_at=due,
        )
        return EntryRecord(
            id=entry_id,
            workspace_id=account.id,
            key=key,
            kind=kind,
            amount_ucr=amount_ucr,
            held_ucr=held_ucr,
            overdraft_ucr=overdraft_delta,
            created_at=self.now,
        )

    def _move_grants(self, moves: list[tuple[int, int]]) -> None:
        if not moves:
            return
        params: list[dict[str, Any]] = [{"gid": g, "delta": d} for g, d in moves]
        moved = self.conn.execute(_grant_move, params).rowcount
        if moved != len(moves):
            raise LedgerCorrupt(
                f"A grant of workspace {self.account.id} would leave its range [0, amount]."
            )

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
