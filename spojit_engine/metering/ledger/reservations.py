"""Run reservations: one hold per flow run (key ``reserve:{flow_run_id}``) that the run's node
charges draw from, so a run admitted for its estimate cannot be starved by another run halfway.

The rules, in words (the state machine test models exactly these):
- A reservation is a hold: it takes ``amount`` from what is available, or is refused with
  ``InsufficientCredits`` and writes nothing. Its ``settled_ucr`` counts what has been drawn.
- A charge of a run with an open reservation (a debit, or an LLM call's hold) takes
  ``take = min(amount, amount_open)`` from the reservation and the rest from the free balance: it
  is admitted when ``amount <= available + take``, else refused whole. A debit's take becomes
  spent credits (held falls by ``take``, the grants pay in burn order); a hold's take moves into
  the new hold (held rises only by ``amount - take``).
- Closing gives the open rest back (state SETTLED when something was drawn, else RELEASED); a
  reservation that timed out is voided by the sweeper the same way (state EXPIRED), what was
  drawn stays spent. Either way the open part is what leaves ``held``.
- A hold carved from a reservation settles like any hold: what it does not use is free again (it
  does not go back to the reservation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import update

from spojit_engine.errors import InvalidInput, LedgerCorrupt
from spojit_engine.metering.core.burn import Block, allocate
from spojit_engine.metering.core.holds import HoldState, transition
from spojit_engine.metering.core.records import EntryRecord, HoldRecord, Usage
from spojit_engine.metering.ledger.posting import LedgerTx
from spojit_engine.metering.store import schema
from spojit_engine.metering.store.statements import statements_for

RESERVATION_PREFIX = "reserve:"


def reservation_key(flow_run_id: str) -> str:
    """The key of a flow run's reservation (one per run)."""
    if not flow_run_id:
        raise InvalidInput("A run reservation needs a flow run id.")
    return f"{RESERVATION_PREFIX}{flow_run_id}"


def is_reservation(key: str) -> bool:
    return key.startswith(RESERVATION_PREFIX)


@dataclass(frozen=True, slots=True)
class Draw:
    """What a charge takes from its run's open reservation (``take`` may be 0)."""

    reservation_id: int | None
    take_ucr: int


NO_DRAW = Draw(None, 0)


def plan_draw(tx: LedgerTx, flow_run_id: str | None, amount_ucr: int, keep_ucr: int = 0) -> Draw:
    """How much of ``amount_ucr`` the run's open reservation in this workspace can pay, leaving
    ``keep_ucr`` of it untouched (credits a process has promised to charges not yet committed)."""
    if flow_run_id is None:
        return NO_DRAW
    sql = statements_for(tx.conn)
    row = sql.run(
        tx.conn,
        "open_reservation",
        {"key": reservation_key(flow_run_id), "workspace_id": tx.account.id},
    ).fetchone()
    if row is None:
        return NO_DRAW
    return Draw(int(row[0]), max(0, min(amount_ucr, int(row[1]) - keep_ucr)))


def apply_draw(tx: LedgerTx, draw: Draw) -> None:
    """Count ``draw`` as drawn from its reservation (inside the charge's transaction)."""
    if draw.reservation_id is None or draw.take_ucr == 0:
        return
    sql = statements_for(tx.conn)
    cursor = sql.run(
        tx.conn, "draw_reservation", {"id": draw.reservation_id, "take": draw.take_ucr}
    )
    if cursor.rowcount != 1:
        raise LedgerCorrupt(f"Reservation {draw.reservation_id} cannot pay {draw.take_ucr} µcr.")


def post_draw(
    tx: LedgerTx,
    blocks: list[Block],
    draw: Draw,
    *,
    key: str,
    amount_ucr: int,
    usage: Usage,
    budget_ucr: int | None = None,
    taken: dict[int, int] | None = None,
) -> EntryRecord:
    """Post an admitted debit: ``draw`` of it from the reservation, all of it from the grants in
    burn order (``blocks``, spendable) within ``budget_ucr``; what is left unpaid is an overdraft
    (only a committed batch gets there: its calls have already run). ``taken`` learns what each
    grant paid, for a caller that posts several debits in one transaction."""
    taken = {} if taken is None else taken
    allocation = allocate(blocks, amount_ucr, budget_ucr=budget_ucr)
    postings: list[tuple[int | None, int]] = [(g, -take) for g, take in allocation.takes]
    if allocation.shortfall_ucr:
        postings.append((None, -allocation.shortfall_ucr))
    apply_draw(tx, draw)
    for grant_id, take in allocation.takes:
        taken[grant_id] = taken.get(grant_id, 0) + take
    return tx.post(
        kind="debit",
        key=key,
        amount_ucr=-amount_ucr,
        postings=postings,
        held_ucr=-draw.take_ucr,
        hold_id=draw.reservation_id,
        usage=usage,
    )


def found_open(hold: HoldRecord) -> int:
    return hold.amount_ucr - (hold.settled_ucr or 0)


def open_ucr(hold: Any) -> int:
    """What a held hold still reserves: all of it, less what a reservation has drawn."""
    return int(hold.amount_ucr) - int(hold.settled_ucr or 0)


def close_reservation_in(tx: LedgerTx, hold: Any) -> HoldRecord:
    """Close the reservation row ``hold`` (locked by ``tx``): its open rest leaves ``held``.
    A reservation already closed or voided is returned as it is."""
    state = HoldState(hold.state)
    if state == HoldState.HELD:
        drawn = int(hold.settled_ucr or 0)
        state = transition(hold.id, state, HoldState.SETTLED if drawn else HoldState.RELEASED)
        tx.conn.execute(
            update(schema.holds).where(schema.holds.c.id == hold.id).values(state=state.value)
        )
        tx.post(
            kind="release",
            key=f"hold:{hold.id}:release",
            amount_ucr=0,
            held_ucr=-open_ucr(hold),
            hold_id=hold.id,
        )
    return HoldRecord(
        id=hold.id,
        workspace_id=hold.workspace_id,
        key=hold.key,
        amount_ucr=hold.amount_ucr,
        state=state.value,
        expires_at=hold.expires_at,
        settled_ucr=hold.settled_ucr,
    )
