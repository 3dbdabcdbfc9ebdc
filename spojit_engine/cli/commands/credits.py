"""``spojit credits grant|list`` and ``spojit ledger verify``: credits without Stripe (a
promotion, a correction), each grant recording who made it and why; the workspace's credit
blocks; and the proof that every balance equals the sum of its entries.

Grants and the list are for admins (``SPOJIT_TOKEN`` of an admin, or the local operator who
holds the database); ``ledger verify`` is the operator's."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

import typer

from spojit_engine.cli.context import open_context, open_engine
from spojit_engine.cli.options import JsonOpt, WorkspaceOpt, credits_input, one_sentence_errors
from spojit_engine.cli.render import (
    add_row,
    console,
    new_table,
    number_column,
    print_json,
    resumed_text,
    text_column,
    to_jsonable,
)

REASON_LENGTH_MAX = 500  # characters of a grant's reason
GRANT_KINDS = ("promo", "adjustment")

app = typer.Typer()
credits_app = typer.Typer(help="Credits: grant without Stripe, list the blocks.")
ledger_app = typer.Typer(help="The credit ledger.", no_args_is_help=True)
app.add_typer(credits_app, name="credits", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")


def expiry_of(day: str | None) -> datetime | None:
    """``--expires DATE``: the credits last through that UTC day (``display.expiry_of_day``)."""
    from spojit_engine.display import expiry_of_day
    from spojit_engine.errors import InvalidInput

    if day is None:
        return None
    try:
        parsed = date.fromisoformat(day)
    except ValueError:
        raise InvalidInput(f"--expires must be a date like 2027-01-31, not {day!r}.") from None
    return expiry_of_day(parsed)


def check_grant_request(reason: str, kind: str) -> str:
    """The reason, stripped; ``InvalidInput`` for an empty or too long one or another kind."""
    from spojit_engine.errors import InvalidInput

    if kind not in GRANT_KINDS:
        raise InvalidInput(f"--kind must be promo or adjustment, not {kind!r}.")
    reason = " ".join(reason.split())
    if not 0 < len(reason) <= REASON_LENGTH_MAX or not reason.isprintable():
        raise InvalidInput(f"--reason must say why in 1-{REASON_LENGTH_MAX} characters.")
    return reason


@credits_app.command("grant")
@one_sentence_errors
def grant(
    amount: Annotated[str, typer.Argument(help="Credits to add, e.g. 50, 12.5 or 1,000.")],
    reason: Annotated[str, typer.Option(help="Why (kept with the grant).")],
    kind: Annotated[str, typer.Option(help="promo (burns first) or adjustment.")] = "promo",
    expires: Annotated[
        str | None, typer.Option(help="Last UTC day the credits may be spent (YYYY-MM-DD).")
    ] = None,
    workspace: WorkspaceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Grant credits without Stripe (admins): says how many landed and what the guard resumed."""
    import uuid

    why = check_grant_request(reason, kind)
    expires_at = expiry_of(expires)
    ctx = open_context(workspace)
    with ctx.engine.watch_resumes() as watch:
        granted = ctx.engine.grant(
            ctx.workspace_id,
            credits_input(amount),
            kind=kind,
            key=f"cli-grant:{uuid.uuid4().hex}",
            expires_at=expires_at,
            reason=why,
            by=ctx.actor_id,
        )
    balance = ctx.engine.balance(ctx.workspace_id)
    if json_out:
        print_json(
            {
                "grant": to_jsonable(granted),
                "remaining": balance.remaining,
                "resumed": watch.resumed,
                "resume_pending": watch.pending,
            }
        )
        return
    from spojit_engine.display import credits_text, expiry_text

    until = f", {expiry_text(expires_at)}" if expires_at else ""
    console.print(
        f"Added {credits_text(granted.amount)} credits ({kind}{until}) to workspace "
        f"{balance.workspace}: {why}. Remaining now {credits_text(balance.remaining)}.",
        highlight=False,
        markup=False,
    )
    console.print(resumed_text(watch.resumed, watch.pending), highlight=False, markup=False)


@credits_app.command("list")
@one_sentence_errors
def list_grants(workspace: WorkspaceOpt = None, json_out: JsonOpt = False) -> None:
    """The workspace's credit blocks, in burn order: kind, amount, remaining, expiry, who, why."""
    from spojit_engine.errors import Forbidden

    ctx = open_context(workspace)
    if ctx.actor is not None and not ctx.actor.is_admin:
        raise Forbidden(f"Only a workspace admin may list grants; {ctx.actor.email} is a member.")
    blocks = ctx.engine.grants(ctx.workspace_id)
    who = grantor_names(ctx.engine, blocks)
    if json_out:
        rows = [to_jsonable(g) for g in blocks]
        for row in rows:
            row["granted_by_name"] = who.get(row["granted_by"], row["granted_by"])
        print_json(rows)
        return
    console.print(blocks_table(blocks, who))


def grantor_names(engine: Any, blocks: list[Any]) -> dict[str, str]:
    """Member ids among the grantors, as emails (operator, stripe, plan stay as they are)."""
    from spojit_engine.errors import NotFound

    names = {}
    for member_id in {g.granted_by for g in blocks if g.granted_by}:
        try:
            names[member_id] = engine.member(member_id).email
        except NotFound:
            continue
    return names


def blocks_table(blocks: list[Any], who: dict[str, str]) -> Any:
    """The credit blocks in burn order: priority, then the soonest expiry."""
    from spojit_engine.display import credits_column, expiry_text

    table = new_table("Credit blocks (burn order: priority, then soonest expiry)")
    text_column(table, "kind")
    for column in ("amount", "remaining", "prio"):
        number_column(table, column)
    for column in ("expires", "who", "why"):
        text_column(table, column)
    ordered = sorted(
        blocks, key=lambda g: (g.priority, g.expires_at is None, g.expires_at or g.effective_at)
    )
    amounts = credits_column([g.amount for g in ordered])
    remaining = credits_column([g.remaining for g in ordered])
    for g, amount, left in zip(ordered, amounts, remaining, strict=True):
        add_row(
            table, g.kind, amount, left, str(g.priority), expiry_text(g.expires_at),
            who.get(g.granted_by or "", g.granted_by or "-"), g.reason or "-",
        )  # fmt: skip
    return table


@ledger_app.command("verify")
@one_sentence_errors
def ledger_verify(workspace: WorkspaceOpt = None, json_out: JsonOpt = False) -> None:
    """Prove every materialised balance equals the sum of its entries (exit 1 if not)."""
    engine = open_engine()
    ws_id = engine.workspace_id(workspace) if workspace else None
    checked = engine.verify(ws_id)
    if json_out:
        print_json({"ok": True, "workspaces_verified": checked})
    else:
        console.print(
            f"Ledger OK: {checked} workspace(s) verified, every balance equals its entries."
        )
