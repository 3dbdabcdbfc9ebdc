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
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Row, select, update
from sqlalchemy.engine import Engine as SAEngine
from sqlalchemy.exc import IntegrityError

from spojit_engine.db import read_transaction, write_transaction
from spojit_engine.errors import InsufficientCredits, InvalidInput, LedgerCorrupt, UnknownHold
from spojit_engine.metering import schema
from spojit_engine.metering.burn import Block, allocate, spendable
from spojit_engine.metering.catalog import Catalog
from spojit_engine.metering.holds import HoldState, transition
from spojit_engine.metering.maintenance import grant_block, maintain
from spojit_engine.metering.money import ucr_to_credits
from spojit_engine.metering.observers import LedgerObservers, Spend
from spojit_engine.metering.periods import term_end
from spojit_engine.metering.pg_debit import PgDebit
from spojit_engine.metering.posting import LedgerTx
from spojit_engine.metering.records import (
    DEFAULT_PRIORITY,
    EntryRecord,
    GrantRecord,
    HoldRecord,
    Usage,
)
from spojit_engine.metering.replay import (
    find_entry,
    find_hold,
    replayed_entry,
    replayed_grant,
    replayed_hold,
)
from spojit_engine.metering.reservations import (
    RESERVATION_PREFIX,
    apply_draw,
    close_reservation_in,
    found_open,
    is_reservation,
    plan_draw,
    post_draw,
    reservation_key,
)
from spojit_engine.metering.retry import retry_unavailable
from spojit_engine.metering.statements import statements_for
from spojit_engine.metering.usage import UsageRow
from spojit_engine.metering.usage_writes import insert_rows

T = TypeVar("T")
Then = Callable[[LedgerTx], None]  # more writes inside an operation's transaction


class Ledger:
    """Credits in, credits out, for every workspace in one database."""

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
        self.pg_debit = PgDebit(engine) if engine.dialect.name == "postgresql" else None

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
        On PostgreSQL, when no spend limit applies, the whole debit is one server-side call
        (pg_debit.py); whatever that call hands back is decided here as always."""
        if self.pg_debit is not None and not self.observers.limits_apply(workspace_id, usage):
            entry = self.pg_debit.debit(
                workspace_id, key=key, amount_ucr=amount_ucr, now=self.clock(), usage=usage,
                reservation_key=None if run_id is None else reservation_key(run_id),
                keep_ucr=keep_ucr, records=records,
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

    @retry_unavailable
    def hold(
        self,
        workspace_id: str,
        *,
        amount_ucr: int,
        key: str,
        ttl: timedelta,
        usage: Usage,
        run_id: str | None = None,
        keep_ucr: int = 0,
    ) -> HoldRecord:
        """Reserve credits for a step whose cost is known only after it runs; a step of run
        ``run_id`` carves its hold out of the run's open reservation first (leaving
        ``keep_ucr`` of it, as ``debit`` does)."""
        if is_reservation(key):
            raise InvalidInput(f"Keys starting {RESERVATION_PREFIX!r} are for run reservations.")
        return self._hold(workspace_id, amount_ucr, key, ttl, usage, (run_id, keep_ucr))

    def reserve(
        self, workspace_id: str, *, amount_ucr: int, key: str, ttl: timedelta, usage: Usage
    ) -> HoldRecord:
        """Hold ``amount_ucr`` for a whole flow run (key ``reserve:{flow_run_id}``): its node
        charges draw from it; ``close_reservation`` gives back the rest, the sweeper voids it
        after ``ttl``. Refused with ``InsufficientCredits`` like any hold."""
        if not is_reservation(key):
            raise InvalidInput(f"A run reservation's key starts {RESERVATION_PREFIX!r}.")
        return self._hold(workspace_id, amount_ucr, key, ttl, usage, (None, 0))

    def _hold(
        self,
        workspace_id: str,
        amount_ucr: int,
        key: str,
        ttl: timedelta,
        usage: Usage,
        run: tuple[str | None, int],
    ) -> HoldRecord:
        if ttl <= timedelta(0):
            raise InvalidInput("A hold's ttl must be positive.")

        def replay(conn: Connection) -> HoldRecord | None:
            return replayed_hold(conn, key, workspace_id, amount_ucr)

        def attempt() -> HoldRecord:
            with self.locked(workspace_id) as tx:
                draw = plan_draw(tx, run[0], amount_ucr, run[1])
                spend = Spend("hold", key, amount_ucr, usage)
                admitted = self._admit(tx, spend, replay, reserved_ucr=draw.take_ucr)
                if isinstance(admitted, HoldRecord):
                    return admitted
                expires_at = tx.now + ttl
                sql = statements_for(tx.conn)
                hold_id = sql.run(
                    tx.conn,
                    "insert_hold",
                    {
                        "workspace_id": workspace_id,
                        "key": key,
                        "amount_ucr": amount_ucr,
                        "state": HoldState.HELD.value,
                        "expires_at": sql.time_param(expires_at),
                        "workflow": usage.workflow,
                        "node_type": usage.node_type,
                        "member_id": usage.member_id,
                        "test_run": sql.bool_param(usage.test_run),
                        "node_call": usage.node_call,
                        "created_at": sql.time_param(tx.now),
                    },
                ).fetchone()[0]
                apply_draw(tx, draw)
                tx.post(
                    kind="hold",
                    key=key,
                    amount_ucr=0,
                    held_ucr=amount_ucr - draw.take_ucr,
                    hold_id=hold_id,
                    usage=usage,
                    next_due_at=expires_at,
                )
                return HoldRecord(
                    id=hold_id,
                    workspace_id=workspace_id,
                    key=key,
                    amount_ucr=amount_ucr,
                    state=HoldState.HELD.value,
                    expires_at=expires_at,
                    settled_ucr=None,
                )

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
        limit's). Available = spendable grants - held - overdraft, plus what the run's
        reservation pays of this spend (``reserved_ucr``)."""
        blocks = spendable(tx.blocks, tx.now)
        available = available_ucr(blocks, tx) + reserved_ucr
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

    @retry_unavailable
    def settle(self, hold_id: int, *, actual_ucr: int, then: Then | None = None) -> EntryRecord:
        """Post the actual cost of a held step and free the rest of the hold.

        The step already happened, so its cost is recorded even when it exceeds what is left
        (the excess is an overdraft the next grant pays first) or the hold had timed out.
        ``then`` writes more in the same transaction (not on a replay).
        """
        key = f"hold:{hold_id}:settle"
        with self.locked(self._hold_workspace(hold_id)) as tx:
            hold = _load_hold(tx.conn, hold_id)
            if is_reservation(hold.key):
                raise InvalidInput(f"Hold {hold_id} is a run reservation: close it, not settle.")
            if hold.state == HoldState.SETTLED.value:
                row = find_entry(tx.conn, key)
                if row is None:
                    raise LedgerCorrupt(f"Hold {hold_id} is settled but has no settle entry.")
                return replayed_entry(tx.conn, row, hold.workspace_id, "settle", -actual_ucr)
            transition(hold_id, HoldState(hold.state), HoldState.SETTLED)
            frees_ucr = hold.amount_ucr if hold.state == HoldState.HELD.value else 0
            blocks = spendable(tx.blocks, tx.now)
            budget = available_ucr(blocks, tx) + frees_ucr
            allocation = allocate(blocks, actual_ucr, budget_ucr=budget)
            postings: list[tuple[int | None, int]] = [(g, -take) for g, take in allocation.takes]
            if allocation.shortfall_ucr:
                postings.append((None, -allocation.shortfall_ucr))
            tx.conn.execute(
                update(schema.holds)
                .where(schema.holds.c.id == hold_id)
                .values(state=HoldState.SETTLED.value, settled_ucr=actual_ucr)
            )
            entry = tx.post(
                kind="settle",
                key=key,
                amount_ucr=-actual_ucr,
                postings=postings,
                held_ucr=-frees_ucr,
                hold_id=hold_id,
                usage=Usage(
                    hold.workflow, hold.node_type, hold.member_id, hold.test_run, hold.node_call
                ),
            )
            if then is not None:
                then(tx)
            return entry

    @retry_unavailable
    def release(self, hold_id: int) -> HoldRecord:
        """Give a hold's credits back untouched (the step did not run); twice is a no-op.
        Releasing a run reservation closes it (what was drawn stays spent)."""
        with self.locked(self._hold_workspace(hold_id)) as tx:
            hold = _load_hold(tx.conn, hold_id)
            if is_reservation(hold.key):
                return close_reservation_in(tx, hold)
            if hold.state != HoldState.RELEASED.value:
                transition(hold_id, HoldState(hold.state), HoldState.RELEASED)
                tx.conn.execute(
                    update(schema.holds)
                    .where(schema.holds.c.id == hold_id)
                    .values(state=HoldState.RELEASED.value)
                )
                tx.post(
                    kind="release",
                    key=f"hold:{hold_id}:release",
                    amount_ucr=0,
                    held_ucr=-hold.amount_ucr,
                    hold_id=hold_id,
                )
            return HoldRecord(
                id=hold_id,
                workspace_id=hold.workspace_id,
                key=hold.key,
                amount_ucr=hold.amount_ucr,
                state=HoldState.RELEASED.value,
                expires_at=hold.expires_at,
                settled_ucr=None,
            )

    def reservation_open(self, key: str) -> int | None:
        """What the reservation ``key`` has open now; None when it is not open."""
        with read_transaction(self.engine) as conn:
            found = find_hold(conn, key)
        return None if found is None or found.state != HoldState.HELD.value else found_open(found)

    def close_reservation(self, key: str) -> HoldRecord | None:
        """Give back what a run reservation has left (idempotent); None when there is none."""
        with read_transaction(self.engine) as conn:
            found = find_hold(conn, key)
        return None if found is None else self.release(found.id)

    def _hold_workspace(self, hold_id: int) -> str:
        with read_transaction(self.engine) as conn:
            workspace_id = conn.execute(
                select(schema.holds.c.workspace_id).where(schema.holds.c.id == hold_id)
            ).scalar()
        if workspace_id is None:
            raise UnknownHold(hold_id)
        return str(workspace_id)

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


def available_ucr(blocks: list[Block], tx: LedgerTx) -> int:
    """What a new debit or hold may take: spendable grants less holds and unpaid overdraft."""
    return sum(b.remaining_ucr for b in blocks) - tx.account.held_ucr - tx.account.overdraft_ucr


def _load_hold(conn: Connection, hold_id: int) -> Row[Any]:
    return conn.execute(select(schema.holds).where(schema.holds.c.id == hold_id)).one()
