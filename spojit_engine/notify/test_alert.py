"""``spojit notify test``: one test alert through a rule's target, now, via the outbox."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from sqlalchemy import select

from spojit_engine.db import read_transaction, write_transaction
from spojit_engine.notify.decide import Alert
from spojit_engine.notify.outbox import OutboxRow, write_alert
from spojit_engine.notify.rules import get_rule
from spojit_engine.notify.schema import notification_outbox

if TYPE_CHECKING:
    from spojit_engine.engine import Engine


def send_test(engine: Engine, workspace_id: str, rule_id: str) -> OutboxRow:
    rule = get_rule(engine.sa_engine, workspace_id, rule_id)
    name = engine.balance(workspace_id).workspace
    alert = Alert(
        key=f"{rule.id}:test:{secrets.token_hex(6)}",
        event="test",
        subject=f"{name}: a test notification",
        text=f"A test of notification {rule.id} ({rule.kind}) for workspace {name}.",
        details={"workspace": name, "workspace_id": workspace_id},
    )
    with write_transaction(engine.sa_engine) as conn:
        write_alert(conn, rule, alert, engine.ledger.clock())
    engine.notifier.deliver_due()
    o = notification_outbox.c
    with read_transaction(engine.sa_engine) as conn:
        return OutboxRow(*conn.execute(select(notification_outbox).where(o.key == alert.key)).one())
