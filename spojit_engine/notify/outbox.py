"""The outbox: an alert is written once (its key UNIQUE; a second writer's insert is ignored),
then claimed by one sender with a compare-and-set and a lease, delivered, and marked sent — or
retried with exponential backoff until ``attempts_max``, then marked failed. A sender that died
mid-delivery leaves its row to be claimed again when the lease ends."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, or_, select, update
from sqlalchemy.engine import Engine as SAEngine

from spojit_engine.db import read_transaction, write_transaction
from spojit_engine.notify.decide import Alert
from spojit_engine.notify.rules import RuleRecord
from spojit_engine.notify.schema import notification_outbox

o = notification_outbox.c


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    key: str
    rule_id: str
    workspace_id: str
    event: str
    payload: str
    state: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None

    @property
    def message(self) -> dict[str, Any]:
        return dict(json.loads(self.payload))


def write_alert(conn: Connection, rule: RuleRecord, alert: Alert, now: datetime) -> bool:
    """Put ``alert`` in the outbox; False when its key is already there (sent once, by anyone)."""
    payload = {"event": alert.event, "subject": alert.subject, "text": alert.text,
               "rule_id": rule.id, **alert.details}  # fmt: skip
    values = {
        "key": alert.key, "rule_id": rule.id, "workspace_id": rule.workspace_id,
        "event": alert.event, "payload": json.dumps(payload, sort_keys=True, default=str),
        "state": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now,
    }  # fmt: skip
    if conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert  # type: ignore[assignment]
    done = conn.execute(
        insert(notification_outbox).values(**values).on_conflict_do_nothing(index_elements=["key"])
    )
    return done.rowcount == 1


def claim_due(engine: SAEngine, now: datetime, *, limit: int, lease: timedelta) -> list[OutboxRow]:
    """Rows due for delivery that this sender won (pending, or a dead sender's lease over)."""
    due = (
        select(o.id, o.state, o.next_attempt_at)
        .where(or_(o.state == "pending", o.state == "sending"), o.next_attempt_at <= now)
        .order_by(o.next_attempt_at, o.id)
        .limit(limit)
    )
    with read_transaction(engine) as conn:
        candidates = conn.execute(due).all()
    won = []
    for row_id, state, next_at in candidates:
        with write_transaction(engine) as conn:
            claimed = conn.execute(
                update(notification_outbox)
                .where(o.id == row_id, o.state == state, o.next_attempt_at == next_at)
                .values(state="sending", attempts=o.attempts + 1, next_attempt_at=now + lease)
            )
            if claimed.rowcount == 1:
                won.append(row_id)
    if not won:
        return []
    with read_transaction(engine) as conn:
        rows = conn.execute(select(notification_outbox).where(o.id.in_(won)).order_by(o.id))
        return [OutboxRow(*row) for row in rows]


def mark_sent(engine: SAEngine, row_id: int, now: datetime) -> None:
    with write_transaction(engine) as conn:
        conn.execute(
            update(notification_outbox)
            .where(o.id == row_id)
            .values(state="sent", sent_at=now, last_error=None)
        )


def mark_failed(
    engine: SAEngine, row: OutboxRow, error: str, now: datetime, *, attempts_max: int,
    backoff: timedelta,
) -> bool:  # fmt: skip
    """Retry later (backoff doubling per attempt), or give up after ``attempts_max``; True
    when it will be retried."""
    final = row.attempts >= attempts_max
    retry_at = now + backoff * (2 ** max(row.attempts - 1, 0))
    with write_transaction(engine) as conn:
        conn.execute(
            update(notification_outbox)
            .where(o.id == row.id)
            .values(
                state="failed" if final else "pending",
                next_attempt_at=retry_at,
                last_error=error[:1000],
            )
        )
    return not final


def recent(engine: SAEngine, workspace_id: str, *, limit: int) -> list[OutboxRow]:
    """The workspace's latest alerts, newest first (what `spojit notify list` shows)."""
    query = (
        select(notification_outbox)
        .where(o.workspace_id == workspace_id)
        .order_by(o.id.desc())
        .limit(limit)
    )
    with read_transaction(engine) as conn:
        return [OutboxRow(*row) for row in conn.execute(query)]
