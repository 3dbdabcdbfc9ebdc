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
    from spojit_engine.notify.service import Notifier


def send_test(notifier: Notifier, workspace_id: str, name: str, rule_id: str) -> OutboxRow:
    """Write one test alert of ``rule_id`` for workspace ``name`` and deliver what is due."""
    rule = get_rule(notifier.sa, workspace_id, rule_id)
    alert = Alert(
        key=f"{rule.id}:test:{secrets.token_hex(6)}",
        event="test",
        subject=f"{name}: a test notification",
        text=f"A test of notification {rule.id} ({rule.kind}) for workspace {name}.",
        details={"workspace": name, "workspace_id": workspace_id},
    )
    with write_transaction(notifier.sa) as conn:
        write_alert(conn, rule, alert, notifier.clock())
    notifier.deliver_due()
    o = notification_outbox.c
    with read_transaction(notifier.sa) as conn:
        return OutboxRow(*conn.execute(select(notification_outbox).where(o.key == alert.key)).one())
