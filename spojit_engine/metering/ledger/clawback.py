"""Clawback: take credits back that were granted for money that went back (a refund, a dispute).

The rule, in words: a clawback of ``amount`` takes what is left of the named grant first; the rest
(credits of that grant the workspace already spent) is taken from the workspace's other spendable
credits in burn order, as a debit would, within what is available (credits reserved by holds are
not touched); only what even those cannot cover becomes an overdraft, which the next grant pays
first. So a customer who spent refunded credits pays them back from what they have now, and carries
a debt only when they have nothing. One ``clawback`` entry, posted by ``LedgerTx.post`` (the one
writer of money); its key is UNIQUE like every other, and a replay returns the first entry.
"""

from __future__ import annotations

from sqlalchemy import select

from spojit_engine.errors import InvalidInput, NotFound
from spojit_engine.metering.core.burn import allocate, spendable
from spojit_engine.metering.core.records import EntryRecord
from spojit_engine.metering.ledger.operations import Ledger
from spojit_engine.metering.ledger.posting import LedgerTx, lock_account
from spojit_engine.metering.ledger.replay import find_entry, replayed_entry
from spojit_engine.metering.store import schema
from spojit_engine.money import MAX_AMOUNT_UCR

CLAWBACK_KIND = "clawback"


def claw_back(
    tx: LedgerTx, *, grant_id: int, amount_ucr: int, key: str, reason: str | None = None
) -> EntryRecord:
    """Post one clawback of ``amount_ucr`` against ``grant_id`` in a locked transaction."""
    if not 0 < amount_ucr <= MAX_AMOUNT_UCR:
        raise InvalidInput(f"A clawback of {amount_ucr} µcr is out of range.")
    # Re-read the blocks under the lock this transaction holds: an earlier post in the same
    # transaction (a grant that just landed) is not in ``tx.blocks``.
    _, blocks = lock_account(tx.conn, tx.account.id)
    own = next((b for b in blocks if b.id == grant_id), None)
    if own is None and not _grant_belongs(tx, grant_id):
        raise NotFound(f"Grant {grant_id} is not a grant of workspace {tx.account.id}.")
    take_own = min(amount_ucr, own.remaining_ucr) if own is not None else 0
    live = spendable(blocks, tx.now)
    available = sum(b.remaining_ucr for b in live) - tx.account.held_ucr - tx.account.overdraft_ucr
    if own is not None and own in live:
        available -= take_own
    others = [b for b in live if b.id != grant_id]
    allocation = allocate(others, amount_ucr - take_own, budget_ucr=available)
    postings: list[tuple[int | None, int]] = []
    if take_own:
        postings.append((grant_id, -take_own))
    postings.extend((g, -take) for g, take in allocation.takes)
    if allocation.shortfall_ucr:
        postings.append((None, -allocation.shortfall_ucr))
    return tx.post(
        kind=CLAWBACK_KIND,
        key=key,
        amount_ucr=-amount_ucr,
        postings=postings,
        grant_id=grant_id,
        reason=reason,
    )


def _grant_belongs(tx: LedgerTx, grant_id: int) -> bool:
    g = schema.grants.c
    found = tx.conn.execute(
        select(g.id).where(g.id == grant_id, g.workspace_id == tx.account.id)
    ).scalar()
    return found is not None


def claw_back_grant(
    ledger: Ledger,
    workspace_id: str,
    *,
    grant_key: str,
    amount_ucr: int,
    key: str,
    reason: str | None = None,
) -> EntryRecord:
    """``claw_back`` in its own transaction, naming the grant by its key; idempotent by ``key``."""
    with ledger.locked(workspace_id) as tx:
        row = find_entry(tx.conn, key)
        if row is not None:
            return replayed_entry(tx.conn, row, workspace_id, CLAWBACK_KIND, -amount_ucr)
        g = schema.grants.c
        grant_id = tx.conn.execute(
            select(g.id).where(g.key == grant_key, g.workspace_id == workspace_id)
        ).scalar()
        if grant_id is None:
            raise NotFound(f"Workspace {workspace_id} has no grant with key {grant_key!r}.")
        return claw_back(tx, grant_id=int(grant_id), amount_ucr=amount_ucr, key=key, reason=reason)
