"""Notification rules: add, list, remove — validated once here, stored in ``notification_rules``."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Connection, select
from sqlalchemy.engine import Engine as SAEngine

from spojit_engine.db import read_transaction, write_transaction
from spojit_engine.errors import InvalidInput, NotFound
from spojit_engine.metering.store.schema import WORKFLOW_LENGTH_MAX
from spojit_engine.notify.schema import (
    CHANNELS,
    TARGET_LENGTH_MAX,
    notification_outbox,
    notification_rules,
)
from spojit_engine.notify.targets import check_webhook_target
from spojit_engine.text import check_line

FACTOR_MAX = Decimal(1000)  # a regression of more than 1000x the median is not a regression rule
FACTOR_PLACES = 3  # the column keeps three decimal places


class UnknownNotification(NotFound):
    code = "unknown_notification"

    def __init__(self, rule_id: str) -> None:
        super().__init__(f"No notification rule {rule_id!r} in this workspace.")
        self.rule_id = rule_id


@dataclass(frozen=True, slots=True)
class RuleRecord:
    id: str
    workspace_id: str
    kind: str  # thresholds, run_above, regression
    workflow: str | None
    limit_ucr: int | None
    factor: Decimal | None
    runs: int | None
    channel: str  # webhook, block
    target: str
    created_at: datetime


def regression_factor(value: Decimal | int | str | None) -> Decimal | None:
    """A regression rule's factor: a number above 1 and at most ``FACTOR_MAX``, with at most
    ``FACTOR_PLACES`` decimal places (``Infinity``, ``NaN`` and ``1e9`` are refused here, the same
    on both databases, rather than by PostgreSQL's column)."""
    if value is None:
        return None
    try:
        factor = Decimal(str(value).strip())
    except (ArithmeticError, ValueError):
        raise InvalidInput(f"The factor must be a number, not {value!r}.") from None
    if not factor.is_finite() or not 1 < factor <= FACTOR_MAX:
        raise InvalidInput(f"The factor must be a number above 1 and at most {FACTOR_MAX}.")
    if factor != round(factor, FACTOR_PLACES):
        raise InvalidInput(f"The factor has at most {FACTOR_PLACES} decimal places.")
    return factor


def check_rule(
    *,
    kind: str,
    channel: str,
    target: str,
    workflow: str | None,
    limit_ucr: int | None,
    factor: Decimal | None,
    runs: int | None,
    runs_max: int,
    allow_private: bool,
) -> None:
    """Raise ``InvalidInput`` (one sentence) unless the rule makes sense."""
    if channel not in CHANNELS:
        raise InvalidInput(f"A notification goes to a webhook or a block, not {channel!r}.")
    check_line(target, what="The notification's target", chars_max=TARGET_LENGTH_MAX)
    if channel == "webhook" and not target.startswith(("http://", "https://")):
        raise InvalidInput(f"A webhook must be an http(s) URL, not {target!r}.")
    if channel == "block" and (target.count("/") != 1 or not all(target.split("/"))):
        raise InvalidInput(
            f"A Prefect block is named TYPE/NAME (e.g. slack-webhook/alerts), not {target!r}."
        )
    if channel == "webhook":
        check_webhook_target(target, allow_private=allow_private, resolve_required=False)
    if workflow is not None:
        check_line(workflow, what="The workflow", chars_max=WORKFLOW_LENGTH_MAX)
    if kind == "thresholds":
        if workflow is not None:
            raise InvalidInput("Workspace thresholds are for the whole workspace, not a workflow.")
    elif kind == "run_above":
        if not workflow or limit_ucr is None or limit_ucr <= 0:
            raise InvalidInput("A per-run limit needs a workflow and credits above zero.")
    elif kind == "regression":
        if not workflow or factor is None or factor <= 1:
            raise InvalidInput("A regression rule needs a workflow and a factor above 1.")
        if runs is None or not 1 <= runs <= runs_max:
            raise InvalidInput(f"A regression rule compares with 1-{runs_max} earlier runs.")
    else:
        raise InvalidInput(f"Unknown notification kind {kind!r}.")


def add_rule(engine: SAEngine, workspace_id: str, *, now: datetime, **fields: object) -> RuleRecord:
    """Store a checked rule (``fields``: RuleRecord's, less id, workspace and time)."""
    rule_id = f"ntf_{secrets.token_hex(6)}"
    values = {"id": rule_id, "workspace_id": workspace_id, "created_at": now, **fields}
    with write_transaction(engine) as conn:
        conn.execute(notification_rules.insert().values(**values))
    return RuleRecord(**values)  # type: ignore[arg-type]


def list_rules(engine: SAEngine, workspace_id: str) -> list[RuleRecord]:
    r = notification_rules.c
    query = select(*(getattr(r, f) for f in RuleRecord.__dataclass_fields__))
    with read_transaction(engine) as conn:
        rows = conn.execute(
            query.where(r.workspace_id == workspace_id).order_by(r.created_at, r.id)
        )
        return [RuleRecord(*row) for row in rows]


def remove_rule(engine: SAEngine, workspace_id: str, rule_id: str) -> None:
    """Remove a rule and, in the same transaction, its alerts never delivered (pending, being
    sent, or failed): nobody asks for them any more, and they would name a rule that no longer
    exists. Alerts already sent stay as history."""
    r = notification_rules.c
    with write_transaction(engine) as conn:
        gone = conn.execute(
            notification_rules.delete().where(r.id == rule_id, r.workspace_id == workspace_id)
        )
        if gone.rowcount == 1:
            drop_undelivered(conn, rule_id)
    if gone.rowcount != 1:
        raise UnknownNotification(rule_id)


def drop_undelivered(conn: Connection, rule_id: str) -> int:
    """Delete a removed rule's alerts that were never delivered; how many."""
    o = notification_outbox.c
    return int(
        conn.execute(
            notification_outbox.delete().where(
                o.rule_id == rule_id, o.state.in_(("pending", "sending", "failed"))
            )
        ).rowcount
    )


def get_rule(engine: SAEngine, workspace_id: str, rule_id: str) -> RuleRecord:
    for rule in list_rules(engine, workspace_id):
        if rule.id == rule_id:
            return rule
    raise UnknownNotification(rule_id)
