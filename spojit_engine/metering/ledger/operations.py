"""The ledger's operations, one write transaction each, on µcr integers.

Every operation: lock the workspace row; bring it up to date if time has moved past its next due
moment (in its own transaction, so a refused debit does not undo a renewal); check, then post.
Idempotency: the UNIQUE key on entries (and grants, holds) is the arbiter. A replayed key returns
the first result; the same key for another operation or amount raises ``IdempotencyConflict``.
Refusals (``InsufficientCredits``) write nothing, so retrying a refused key is a fresh attempt.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Connection, select
from sqlalchemy.engine import Engine as SAEngine
from sqlalchemy.exc import IntegrityError

from spojit_engine.db import read_transaction, write_transaction
from spojit_engine.errors import InsufficientCredits, InvalidInput, LedgerCorrupt
from spojit_engine.metering.core.burn import Block
from spojit_engine.metering.core.catalog import Catalog
from spojit_engine.metering.core.periods import term_end
from spojit_engine.metering.core.records import (
    DEFAULT_PRIORITY,
    EntryRecord,
    GrantRecord,
    Usage,
)
from spojit_engine.metering.ledger.fast.base import DebitRequest, FastDebit
from spojit_engine.metering.ledger.fast.postgres import PgDebit
from spojit_engine.metering.ledger.fast.sqlite import SqliteDebit
from spojit_engine.metering.ledger.hold_ops import HoldOperations
from spojit_engine.metering.ledger.maintenance import grant_block, maintain
from spojit_engine.metering.ledger.observers import LedgerObservers, Spend
from spojit_engine.metering.ledger.posting import LedgerTx, spend_budget
from spojit_engine.metering.ledger.replay import (
    find_entry,
    replayed_entry,
    replayed_grant,
)
from spojit_engine.metering.ledger.reservations import plan_draw, post_draw
from spojit_engine.metering.store import schema
from spojit_engine.metering.store.retry import retry_unavailable
from spojit_engine.metering.store.usage import UsageRow
from spojit_engine.metering.store.usage_writes import insert_rows
from spojit_engine.money import ucr_to_credits

T = TypeVar("T")


class Ledger(HoldOperations):
    """Credits in, credits out, for every workspace in one database (holds, settles and run
    reservations: ``hold_ops.py``)."""

    def __init__(
        self,
        engine: SAEngine,
        catalog: Catalog,
        *,
        clock: Callable[[], datetime],
        catch_up_max: int,
        holds_batch_max: int,
    ) -> None:
        self.engine = engine
        self.catalog = catalog
        self.clock = clock
        self._catch_up_max = catch_up_max
        self._holds_batch_max = holds_batch_max
        self.observers = LedgerObservers()
        # The common debit without SQLAlchemy's transaction around it (one call on PostgreSQL)
        self.fast_debit: FastDebit = (
            PgDebit(engine) if engine.dialect.name == "postgresql" else SqliteDebit(engine)
        )

    @contextmanager
    def locked(self, workspace_id: str) -> Iterator[LedgerTx]:
        """A write transaction holding the workspace's lock, the workspace brought up to date.
        Once credits it added (a grant, a renewal) or took (a debit, a settle) have committed,
        the observers hear of it."""
        now = self.clock()
        added = spent = False  # by a transaction that has committed
        try:
            with write_transaction(self.engine) as conn:
                tx = LedgerTx.open(conn, workspace_id, now)
                due = now >= tx.account.next_due_at
                before = (tx.account.period_start, tx.account.credits_ucr)
                if due:
                    maintain(
                        tx,
                        self.catalog,
                        catch_up_max=self._catch_up_max,
                        holds_batch_max=self._holds_batch_max,
                    )
                else:
                    yield tx
                adds, takes = _adds_credits(before, tx), tx.account.credits_ucr < before[1]
            added, spent = adds, takes
            if due:
                with write_transaction(self.engine) as conn:
                    tx = LedgerTx.open(conn, workspace_id, now)
                    before = (tx.account.period_start, tx.account.credits_ucr)
                    yield tx
                    adds, takes = _adds_credits(before, tx), tx.account.credits_ucr < before[1]
                added, spent = added or adds, spent or takes
        finally:
            if added:
                self.observers.credits_added(workspace_id)
            if spent:
                self.observers.spent(workspace_id)

    @retry_unavailable
    def bring_up_to_date(self, workspace_id: str) -> None:
        """Run whatever is due (renewals, expiries) now; a no-op when nothing is."""
        with self.locked(workspace_id):
            pass

    def _once(
        self, key: str, attempt: Callable[[], T], replay: Callable[[Connection], T | None]
    ) -> T:
        """Run ``attempt``; if its key was taken meanwhile (UNIQUE violation), return the replay."""
        try:
            return attempt()
        except IntegrityError as exc:
            with read_transaction(self.engine) as conn:
                found = replay(conn)
            if found is None:
                raise LedgerCorrupt(f"Operation {key!r} broke a database constraint.") from exc
            return found

    # -- grants --------------------------------------------------------------------------------

    @retry_unavailable
    def grant(
        self,
        workspace_id: str,
        *,
        amount_ucr: int,
        kind: str,
        key: str,
        expires_at: datetime | None = None,
        priority: int | None = None,
        effective_at: datetime | None = None,
        reason: str | None = None,
        granted_by: str = "operator",
    ) -> GrantRecord:
        """Add a block of credits; a top-up expires at the end of the plan term by default."""
        if kind not in DEFAULT_PRIORITY or kind == "allowance":
            raise InvalidInput(
                f"Grant kind {kind!r} is not one of topup, promo, adjustment "
                "(allowances come from the plan)."
            )

        def attempt() -> GrantRecord:
            with self.locked(workspace_id) as tx:
                effective = effective_at or tx.now
                expires = expires_at
                if expires is None and kind == "topup":
                    term_months = self.catalog.plan(tx.account.plan_id).term_months
                    expires = term_end(tx.account.anchor_at, term_months, effective)
                if expires is not None and expires <= effective:
                    # A used key answers first (its replay, or IdempotencyConflict): a retry
                    # after an explicit expires_at has passed is still the same grant.
                    found = replayed_grant(tx.conn, key, workspace_id, kind, amount_ucr)
                    if found is not None:
                        return found
                    raise InvalidInput("A grant must expire after it takes effect.")
                return grant_block(
                    tx,
                    key=key,
                    kind=kind,
                    amount_ucr=amount_ucr,
                    priority=DEFAULT_PRIORITY[kind] if priority is None else priority,
                    effective_at=effective,
                    expires_at=expires,
                    granted_by=granted_by,
                    reason=reason,
                )

        return self._once(
            key, attempt, lambda conn: replayed_grant(conn, key, workspace_id, kind, amount_ucr)
        )

    # -- debits and holds ----------------------------------------------------------------------

    @retry_unavailable
    def debit(
        self,
        workspace_id: str,
        *,
        amount_ucr: int,
        key: str,
        usage: Usage,
        run_id: str | None = None,
        keep_ucr: int = 0,
        records: Sequence[UsageRow] = (),
    ) -> EntryRecord:
        """Take credits now, in burn order; refused whole when the available credits fall short.
        A charge of run ``run_id`` draws from the run's open reservation first, leaving
        ``keep_ucr`` of it (promised to charges this process has not committed yet; see
        reservations.py). ``records`` (usage records) are written in the same transaction.
        When no spend limit applies, the common case takes the fast path (one server-side call
        on PostgreSQL, pg_debit.py; sqlite_debit.py); whatever it hands back is decided here as
        always."""
        if not self.observers.limits_apply(workspace_id, usage):
            entry = self.fast_debit.debit(
                DebitRequest(workspace_id, key, amount_ucr, self.clock(), usage, run_id,
                             keep_ucr, records)
            )  # fmt: skip
            if entry is not None:
                if not entry.replayed:  # committed: heard as ``locked`` would have told it
                    self.observers.spent(workspace_id)
                return entry

        def replay(conn: Connection) -> EntryRecord | None:
            row = find_entry(conn, key)
            return (
                None
                if row is None
                else replayed_entry(conn, row, workspace_id, "debit", -amount_ucr)
            )

        def attempt() -> EntryRecord:
            with self.locked(workspace_id) as tx:
                draw = plan_draw(tx, run_id, amount_ucr, keep_ucr)
                spend = Spend("debit", key, amount_ucr, usage)
                blocks = self._admit(tx, spend, replay, reserved_ucr=draw.take_ucr)
                if isinstance(blocks, EntryRecord):
                    return blocks
                entry = post_draw(tx, blocks, draw, key=key, amount_ucr=amount_ucr, usage=usage)
                insert_rows(tx.conn, records)
                return entry

        return self._once(key, attempt, replay)

    def _admit(
        self,
        tx: LedgerTx,
        spend: Spend,
        replay: Callable[[Connection], T | None],
        *,
        reserved_ucr: int = 0,
    ) -> list[Block] | T:
        """The spendable blocks when the spend is covered and no spend limit refuses it; else
        the replay of the key, if any; else the refusal (``InsufficientCredits``, or the
        limit's). Covered: ``posting.spend_budget``."""
        blocks, available = spend_budget(tx, reserved_ucr)
        refusal = None
        if spend.amount_ucr <= available:
            refusal = self.observers.limit_refusal(tx, spend)
            if refusal is None:
                return blocks
        found = replay(tx.conn)
        if found is not None:
            return found
        raise refusal or InsufficientCredits(
            tx.account.name,
            ucr_to_credits(spend.amount_ucr),
            ucr_to_credits(max(available, 0)),
            resets_at=tx.account.period_end,
        )

    # -- time ----------------------------------------------------------------------------------

    def maintain_due(self, limit: int) -> list[str]:
        """Bring every workspace whose next due moment has passed up to date (the sweeper)."""
        now = self.clock()
        with read_transaction(self.engine) as conn:
            due = list(
                conn.execute(
                    select(schema.workspaces.c.id)
                    .where(schema.workspaces.c.next_due_at <= now)
                    .order_by(schema.workspaces.c.next_due_at)
                    .limit(limit)
                ).scalars()
            )
        for workspace_id in due:
            self.bring_up_to_date(workspace_id)
        return due


def _adds_credits(before: tuple[datetime, int], tx: LedgerTx) -> bool:
    """Did the transaction renew the period or raise the balance (a grant)?"""
    return tx.account.period_start != before[0] or tx.account.credits_ucr > before[1]
