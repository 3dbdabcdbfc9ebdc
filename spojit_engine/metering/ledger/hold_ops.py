"""The ledger's two-phase operations (TigerBeetle's pending transfers): holds, settles, releases
and run reservations. A mixin of ``Ledger``, which supplies the workspace lock (``locked``),
admission (``_admit``) and idempotent retries (``_once``); see ledger.py's docstring.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select, update

from spojit_engine.db import read_transaction
from spojit_engine.errors import InvalidInput, LedgerCorrupt, UnknownHold
from spojit_engine.metering.core.burn import allocate, spendable
from spojit_engine.metering.core.holds import HoldState, transition
from spojit_engine.metering.core.records import EntryRecord, HoldRecord, Usage
from spojit_engine.metering.ledger.observers import Spend
from spojit_engine.metering.ledger.posting import available_ucr
from spojit_engine.metering.ledger.replay import (
    find_entry,
    find_hold,
    replayed_entry,
    replayed_hold,
)
from spojit_engine.metering.ledger.reservations import (
    RESERVATION_PREFIX,
    apply_draw,
    close_reservation_in,
    found_open,
    is_reservation,
    plan_draw,
)
from spojit_engine.metering.store import schema
from spojit_engine.metering.store.retry import retry_unavailable
from spojit_engine.metering.store.statements import statements_for

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager

    from sqlalchemy.engine import Engine as SAEngine

    from spojit_engine.metering.ledger.posting import LedgerTx, Then


class HoldOperations:
    """Holds, settles, releases and run reservations (``Ledger`` supplies what is declared
    here)."""

    if TYPE_CHECKING:
        engine: SAEngine

        def locked(self, workspace_id: str) -> AbstractContextManager[LedgerTx]: ...

        def _admit(self, tx: LedgerTx, spend: Spend, replay: Callable[[Connection], Any],
                   *, reserved_ucr: int = 0) -> Any: ...  # fmt: skip

        def _once(self, key: str, attempt: Callable[[], Any],
                  replay: Callable[[Connection], Any]) -> Any: ...  # fmt: skip

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
                hold_id = _insert_hold(tx, key, amount_ucr, expires_at, usage)
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

    @retry_unavailable
    def settle(
        self,
        hold_id: int,
        *,
        actual_ucr: int,
        then: Then | None = None,
        workspace_id: str | None = None,
    ) -> EntryRecord:
        """Post the actual cost of a held step and free the rest of the hold.

        The step already happened, so its cost is recorded even when it exceeds what is left
        (the excess is an overdraft the next grant pays first) or the hold had timed out.
        ``then`` writes more in the same transaction (not on a replay). ``workspace_id``: the
        hold's, when the caller knows it (a meter does), saves looking it up.
        """
        key = f"hold:{hold_id}:settle"
        with self.locked(workspace_id or self._hold_workspace(hold_id)) as tx:
            hold, usage = _load_hold(tx.conn, hold_id)
            if hold.workspace_id != tx.account.id:
                raise UnknownHold(hold_id)
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
            statements_for(tx.conn).run(
                tx.conn,
                "set_hold_state",
                {"id": hold_id, "state": HoldState.SETTLED.value, "settled_ucr": actual_ucr},
            )
            entry = tx.post(
                kind="settle",
                key=key,
                amount_ucr=-actual_ucr,
                postings=postings,
                held_ucr=-frees_ucr,
                hold_id=hold_id,
                usage=usage,
            )
            if then is not None:
                then(tx)
            return entry

    @retry_unavailable
    def release(self, hold_id: int) -> HoldRecord:
        """Give a hold's credits back untouched (the step did not run); twice is a no-op.
        Releasing a run reservation closes it (what was drawn stays spent)."""
        with self.locked(self._hold_workspace(hold_id)) as tx:
            hold, _ = _load_hold(tx.conn, hold_id)
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

    @retry_unavailable
    def reservation_open(self, key: str) -> int | None:
        """What the reservation ``key`` has open now; None when it is not open (a run's first
        node call asks: retried, as that call's charge is)."""
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


def _insert_hold(tx: LedgerTx, key: str, amount_ucr: int, expires_at: datetime,
                 usage: Usage) -> int:  # fmt: skip
    """The hold's row, HELD until ``expires_at``; its id."""
    sql = statements_for(tx.conn)
    inserted = sql.run(tx.conn, "insert_hold", {
        "workspace_id": tx.account.id, "key": key, "amount_ucr": amount_ucr,
        "state": HoldState.HELD.value, "expires_at": sql.time_param(expires_at),
        "workflow": usage.workflow, "node_type": usage.node_type, "member_id": usage.member_id,
        "test_run": sql.bool_param(usage.test_run), "node_call": usage.node_call,
        "created_at": sql.time_param(tx.now),
    })  # fmt: skip
    return sql.inserted_id(inserted)


def _load_hold(conn: Connection, hold_id: int) -> tuple[HoldRecord, Usage]:
    """A hold's row, read under its workspace's lock, and whom it bills."""
    sql = statements_for(conn)
    row = sql.run(conn, "load_hold", {"id": hold_id}).fetchone()
    if row is None:
        raise UnknownHold(hold_id)
    hold = HoldRecord(row[0], row[1], row[2], row[3], row[4], sql.time_value(row[5]), row[6])
    return hold, Usage(row[7], row[8], row[9], bool(row[10]), row[11])
