"""``verify``: prove each materialised number equals the entries it is made of.

For a workspace, all of these must hold (else ``LedgerCorrupt`` names the first that does not):
  credits_ucr   == sum(entries.amount_ucr)
  held_ucr      == sum(entries.held_ucr) == sum(open part of holds still HELD)
                   (a hold's open part is its amount; a run reservation's is its amount less
                   what it has drawn, ``settled_ucr``)
  overdraft_ucr == -sum(postings to the overdraft account, grant_id NULL)
  credits_ucr   == sum(grants.remaining_ucr) - overdraft_ucr
  every grant:     remaining_ucr == sum(its postings), 0 <= remaining_ucr <= amount_ucr
  every entry:     amount_ucr == sum(its postings)
  the daily usage rollups == the entries and usage records they sum (metering/reads/rollup.py)
"""

from __future__ import annotations

from sqlalchemy import Connection, func, select

from spojit_engine.errors import LedgerCorrupt, UnknownWorkspace
from spojit_engine.metering.reads.rollup_verify import verify_rollups
from spojit_engine.metering.store import schema


def verify_workspace(conn: Connection, workspace_id: str) -> None:
    _verify_balance(conn, workspace_id)
    _verify_grants(conn, workspace_id)
    _verify_entries(conn, workspace_id)
    verify_rollups(conn, workspace_id)


def _verify_balance(conn: Connection, workspace_id: str) -> None:
    """The workspace row's credits, held and overdraft against the entries, holds and grants."""
    w, e, p, g, h = (
        t.c
        for t in (schema.workspaces, schema.entries, schema.postings, schema.grants, schema.holds)
    )
    account = conn.execute(
        select(w.credits_ucr, w.held_ucr, w.overdraft_ucr).where(w.id == workspace_id)
    ).one_or_none()
    if account is None:
        raise UnknownWorkspace(workspace_id)

    def total(query: object) -> int:
        return int(conn.execute(query).scalar() or 0)  # type: ignore[call-overload]

    in_ws = e.workspace_id == workspace_id
    open_holds = h.amount_ucr - func.coalesce(h.settled_ucr, 0)
    overdraft_postings = (
        select(func.sum(p.amount_ucr))
        .join_from(schema.postings, schema.entries, p.entry_id == e.id)
        .where(in_ws, p.workspace_id == workspace_id, p.grant_id.is_(None))  # one partition
    )
    grants_left = select(func.sum(g.remaining_ucr)).where(g.workspace_id == workspace_id)
    checks = {
        "credits == sum(entries.amount)": (
            account.credits_ucr,
            total(select(func.sum(e.amount_ucr)).where(in_ws)),
        ),
        "held == sum(entries.held)": (
            account.held_ucr,
            total(select(func.sum(e.held_ucr)).where(in_ws)),
        ),
        "held == sum(open holds)": (
            account.held_ucr,
            total(
                select(func.sum(open_holds)).where(
                    h.workspace_id == workspace_id, h.state == "held"
                )
            ),
        ),
        "overdraft == -sum(overdraft postings)": (
            account.overdraft_ucr,
            -total(overdraft_postings),
        ),
        "credits == sum(grants.remaining) - overdraft": (
            account.credits_ucr,
            total(grants_left) - account.overdraft_ucr,
        ),
    }
    for name, (materialised, derived) in checks.items():
        if materialised != derived:
            raise LedgerCorrupt(
                f"Workspace {workspace_id} fails {name}: materialised {materialised} µcr, "
                f"entries say {derived} µcr."
            )


def _verify_grants(conn: Connection, workspace_id: str) -> None:
    """Each grant: what it has left equals its postings, within ``[0, amount]``."""
    g, p = schema.grants.c, schema.postings.c
    grant_postings = (
        select(
            g.id,
            g.remaining_ucr,
            g.amount_ucr,
            func.coalesce(func.sum(p.amount_ucr), 0).label("posted"),
        )
        .join_from(schema.grants, schema.postings, p.grant_id == g.id, isouter=True)
        .where(g.workspace_id == workspace_id)
        .group_by(g.id, g.remaining_ucr, g.amount_ucr)
    )
    for grant_id, remaining, amount, posted in conn.execute(grant_postings):
        if remaining != posted or not 0 <= remaining <= amount:
            raise LedgerCorrupt(
                f"Grant {grant_id} of workspace {workspace_id} has {remaining} µcr remaining "
                f"of {amount}, but its postings add up to {posted}."
            )


def _verify_entries(conn: Connection, workspace_id: str) -> None:
    """Each entry moves exactly what its postings add up to."""
    e, p = schema.entries.c, schema.postings.c
    entry_postings = (
        select(e.id, e.amount_ucr, func.coalesce(func.sum(p.amount_ucr), 0))
        .join_from(
            schema.entries,
            schema.postings,
            (p.entry_id == e.id) & (p.workspace_id == workspace_id),  # one partition
            isouter=True,
        )
        .where(e.workspace_id == workspace_id)
        .group_by(e.id, e.amount_ucr)
        .having(e.amount_ucr != func.coalesce(func.sum(p.amount_ucr), 0))
        .limit(1)
    )
    broken = conn.execute(entry_postings).first()
    if broken is not None:
        raise LedgerCorrupt(
            f"Entry {broken[0]} of workspace {workspace_id} moves {broken[1]} µcr "
            f"but its postings add up to {broken[2]}."
        )
