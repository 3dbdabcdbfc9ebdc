"""What is due for one workspace right now, read from the ledger (never under its write lock):
the alerts of every rule, written to the outbox in one transaction (a key already there is a
no-op, so two processes evaluating at once write each alert once)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.engine import Engine as SAEngine

from spojit_engine.db import read_transaction, write_transaction
from spojit_engine.display import credits_exact, credits_text
from spojit_engine.metering.ledger.operations import Ledger
from spojit_engine.metering.reads.reports import BalanceRecord, read_balance, read_fresh
from spojit_engine.metering.store import schema
from spojit_engine.money import ucr_to_credits
from spojit_engine.notify.decide import (
    Alert,
    StopOf,
    WorkspaceStop,
    crossed_percents,
    is_out,
    is_regression,
    out_episode,
)
from spojit_engine.notify.outbox import write_alert
from spojit_engine.notify.rules import RuleRecord
from spojit_engine.notify.schema import notification_outbox


def evaluate_workspace(
    ledger: Ledger,
    rules: list[RuleRecord],
    now: datetime,
    stop_of: StopOf | None = None,
    running: frozenset[str] = frozenset(),
) -> int:
    """Write every alert now due for ``rules`` (one workspace's); how many were new.
    ``stop_of`` says whether the credit guard has paused the workspace; the flow runs in
    ``running`` have not ended, so their cost is not final and their rules wait."""
    if not rules:
        return 0
    workspace_id = rules[0].workspace_id
    balance = read_fresh(ledger, workspace_id, lambda c, t: read_balance(c, workspace_id, t))
    stop = stop_of(workspace_id) if stop_of is not None else None
    due: list[tuple[RuleRecord, Alert]] = []
    with read_transaction(ledger.engine) as conn:
        for rule in rules:
            found = (
                _threshold_alerts(conn, rule, balance, stop)
                if rule.kind == "thresholds"
                else _run_alerts(conn, rule, balance, running)
            )
            due += [(rule, alert) for alert in found]
    if not due:
        return 0
    with write_transaction(ledger.engine) as conn:
        return sum(write_alert(conn, rule, alert, now) for rule, alert in due)


def _card(balance: BalanceRecord) -> dict[str, Any]:
    return {
        "workspace": balance.workspace_name,
        "workspace_id": balance.workspace_id,
        "consumed": credits_exact(ucr_to_credits(balance.consumed_ucr)),
        "remaining": credits_exact(ucr_to_credits(balance.remaining_ucr)),
        "period_start": balance.period_start.isoformat(),
        "resets_at": balance.resets_at.isoformat(),
    }


def _threshold_alerts(
    conn: Connection, rule: RuleRecord, b: BalanceRecord, stop: WorkspaceStop | None
) -> list[Alert]:
    period = f"{rule.id}:{b.period_start.isoformat()}"
    name, card = b.workspace_name, _card(b)
    consumed, total = b.consumed_ucr, b.consumed_ucr + max(b.remaining_ucr, 0)
    used = f"{credits_text(ucr_to_credits(consumed))} of {credits_text(ucr_to_credits(total))}"
    resets = f"{b.resets_at:%Y-%m-%d %H:%M} UTC"
    alerts = [
        Alert(f"{period}:usage_{p}", f"usage_{p}", f"{name}: {p}% of this period's credits used",
              f"Workspace {name} has used {p}% of this period's credits ({used}); the allowance "
              f"resets {resets}.", card)
        for p in crossed_percents(consumed, b.remaining_ucr)
    ]  # fmt: skip
    return alerts + _out_or_resumed(conn, rule, b, stop)


def _out_or_resumed(
    conn: Connection, rule: RuleRecord, b: BalanceRecord, stop: WorkspaceStop | None
) -> list[Alert]:
    """Out of credits when the guard paused the workspace or nothing is left, unless the last
    such alert is still open; resumed once after it, when the guard let go and credits are back."""
    o = notification_outbox.c
    last = conn.execute(
        select(o.id, o.key, o.event)
        .where(o.rule_id == rule.id, o.event.in_(("out_of_credits", "resumed")))
        .order_by(o.id.desc()).limit(1)
    ).first()  # fmt: skip
    name, card, period = b.workspace_name, _card(b), f"{rule.id}:{b.period_start.isoformat()}"
    resets = f"{b.resets_at:%Y-%m-%d %H:%M} UTC"
    if last is not None and last.event == "out_of_credits":
        if stop is not None or b.remaining_ucr <= 0:
            return []  # the same episode: already told
        left = credits_text(ucr_to_credits(b.remaining_ucr))
        return [Alert(f"{last.key}:resumed", "resumed", f"{name} has credits again",
                      f"Workspace {name} has credits again ({left} remaining); paused runs "
                      "resume.", card)]  # fmt: skip
    if stop is None and not is_out(b.consumed_ucr, b.remaining_ucr):
        return []
    key = out_episode(period, stop, last.id if last is not None else None)
    text = (f"Workspace {name} is out of credits: scheduled and webhook runs pause until a "
            f"top-up or the reset on {resets}.")  # fmt: skip
    if stop is not None:
        text = (f"The credit guard paused the scheduled and webhook runs of workspace {name} at "
                f"{stop.since:%Y-%m-%d %H:%M} UTC: {stop.reason}")  # fmt: skip
        card = {**card, "paused_at": stop.since.isoformat(), "reason": stop.reason}
    return [Alert(key, "out_of_credits", f"{name} is out of credits", text, card)]


def workspaces_of_runs(sa: SAEngine, flow_run_ids: set[str]) -> set[str]:
    """The workspaces that the flow runs billed."""
    if not flow_run_ids:
        return set()
    u = schema.usage_records.c
    query = select(u.workspace_id).where(u.flow_run_id.in_(sorted(flow_run_ids))).distinct()
    with read_transaction(sa) as conn:
        return set(conn.execute(query).scalars())


def _run_alerts(
    conn: Connection, rule: RuleRecord, b: BalanceRecord, running: frozenset[str]
) -> list[Alert]:
    """The workflow's latest live run that has ended (its cost is final), against the rule's
    limit or its earlier runs."""
    u = schema.usage_records.c
    scope = [u.workspace_id == rule.workspace_id, u.workflow == rule.workflow,
             u.test_run.is_(False), u.flow_run_id.is_not(None)]  # fmt: skip
    window = (rule.runs or 0) + 1
    latest = conn.execute(
        select(u.flow_run_id, func.sum(u.credits_ucr))
        .where(*scope)
        .group_by(u.flow_run_id)
        .order_by(func.max(u.id).desc())
        .limit(window + len(running))
    ).all()
    runs = [run for run in latest if run[0] not in running][:window]
    if not runs:
        return []
    run_id, run_ucr = runs[0][0], int(runs[0][1])
    credits = ucr_to_credits(run_ucr)
    details = {**_card(b), "workflow": rule.workflow, "flow_run_id": run_id,
               "credits": credits_exact(credits)}  # fmt: skip
    if rule.kind == "run_above" and rule.limit_ucr is not None and run_ucr > rule.limit_ucr:
        limit = ucr_to_credits(rule.limit_ucr)
        sentence = (
            f"Run {run_id} of {rule.workflow} in {b.workspace_name} has cost "
            f"{credits_text(credits)} credits, above the limit of {credits_text(limit)}."
        )
        return [Alert(f"{rule.id}:{run_id}", "run_above_limit",
                      f"{rule.workflow}: a run cost {credits_text(credits)} credits", sentence,
                      {**details, "limit": credits_exact(limit)})]  # fmt: skip
    previous = [int(total) for _, total in runs[1:]]
    regressed = (
        rule.kind == "regression"
        and rule.factor is not None
        and rule.runs is not None
        and is_regression(run_ucr, previous, factor=rule.factor, runs=rule.runs)
    )
    if regressed:
        return [Alert(f"{rule.id}:{run_id}", "run_regression",
                          f"{rule.workflow}: a run cost more than {rule.factor}x usual",
                          f"Run {run_id} of {rule.workflow} in {b.workspace_name} has cost "
                          f"{credits_text(credits)} credits, more than {rule.factor} x the "
                          f"median of its last {rule.runs} live runs.",
                          {**details, "factor": str(rule.factor), "runs": rule.runs})]  # fmt: skip
    return []
