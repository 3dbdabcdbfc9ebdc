"""Idempotent replays: find what a key already did, and decide whether a new call matches it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from spojit_engine.errors import IdempotencyConflict
from spojit_engine.metering.core.records import EntryRecord, GrantRecord, HoldRecord
from spojit_engine.metering.store import schema
from spojit_engine.money import ucr_to_credits


def find_entry(conn: Connection, key: str) -> Any | None:
    """The entry row a key wrote, with the overdraft its postings moved."""
    return conn.execute(select(schema.entries).where(schema.entries.c.key == key)).one_or_none()


def _entry_overdraft_ucr(conn: Connection, entry_id: int) -> int:
    p = schema.postings.c
    rows = conn.execute(
        select(p.amount_ucr).where(p.entry_id == entry_id, p.grant_id.is_(None))
    ).scalars()
    return -sum(rows)


def replayed_entry(
    conn: Connection, row: Any, workspace_id: str, kind: str, amount_ucr: int
) -> EntryRecord:
    """The first result for this key, or ``IdempotencyConflict`` when the call differs."""
    if (row.workspace_id, row.kind, row.amount_ucr) != (workspace_id, kind, amount_ucr):
        raise IdempotencyConflict(row.key, describe_entry(row))
    return EntryRecord(
        id=row.id,
        workspace_id=row.workspace_id,
        key=row.key,
        kind=row.kind,
        amount_ucr=row.amount_ucr,
        held_ucr=row.held_ucr,
        overdraft_ucr=_entry_overdraft_ucr(conn, row.id),
        created_at=row.created_at,
        replayed=True,
    )


def describe_entry(row: Any) -> str:
    """How a conflicting key was first used, for the error message."""
    amount = ucr_to_credits(abs(row.amount_ucr) or abs(row.held_ucr))
    return f"for a {row.kind} of {amount} credits in workspace {row.workspace_id}"


def find_grant(conn: Connection, key: str) -> GrantRecord | None:
    query = select(*schema.GRANT_RECORD_COLUMNS).where(schema.grants.c.key == key)
    row = conn.execute(query).one_or_none()
    return None if row is None else GrantRecord(**row._mapping, replayed=True)


def replayed_grant(
    conn: Connection, key: str, workspace_id: str, kind: str, amount_ucr: int
) -> GrantRecord | None:
    """The first grant for this key; None when the key was never used."""
    found = find_grant(conn, key)
    if found is None:
        row = find_entry(conn, key)
        if row is not None:
            raise IdempotencyConflict(key, describe_entry(row))
        return None
    if (found.workspace_id, found.kind, found.amount_ucr) != (workspace_id, kind, amount_ucr):
        raise IdempotencyConflict(
            key,
            f"for a {found.kind} grant of {ucr_to_credits(found.amount_ucr)} credits "
            f"in workspace {found.workspace_id}",
        )
    return found


def find_hold(conn: Connection, key: str) -> HoldRecord | None:
    h = schema.holds.c
    row = conn.execute(
        select(
            h.id, h.workspace_id, h.key, h.amount_ucr, h.state, h.expires_at, h.settled_ucr
        ).where(h.key == key)
    ).one_or_none()
    return None if row is None else HoldRecord(*row, replayed=True)


def replayed_hold(
    conn: Connection, key: str, workspace_id: str, amount_ucr: int
) -> HoldRecord | None:
    """The first hold for this key; None when the key was never used."""
    found = find_hold(conn, key)
    if found is None:
        row = find_entry(conn, key)
        if row is not None:
            raise IdempotencyConflict(key, describe_entry(row))
        return None
    if (found.workspace_id, found.amount_ucr) != (workspace_id, amount_ucr):
        raise IdempotencyConflict(
            key,
            f"for a hold of {ucr_to_credits(found.amount_ucr)} credits "
            f"in workspace {found.workspace_id}",
        )
    return found
