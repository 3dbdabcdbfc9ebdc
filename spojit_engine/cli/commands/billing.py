"""``spojit topup PACK`` and ``spojit plan set PLAN`` / ``spojit plan list``: buying credits and
changing plan (admins only; the local operator acts as admin), and the catalog.

Stripe is reached through the ``Engine`` inside the commands, so ``spojit usage`` stays fast."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import typer

from spojit_engine.cli.context import open_context, open_engine
from spojit_engine.cli.options import JsonOpt, WorkspaceOpt, one_sentence_errors
from spojit_engine.cli.render import (
    add_row,
    console,
    new_table,
    number_column,
    print_json,
    resumed_text,
    say,
    text_column,
)
from spojit_engine.display import credits_text

app = typer.Typer()
plan_app = typer.Typer(help="Plans: list them, change the workspace's plan.", no_args_is_help=True)
app.add_typer(plan_app, name="plan")


@app.command()
@one_sentence_errors
def topup(
    pack: Annotated[str, typer.Argument(help="A top-up pack id (see `spojit plan list`).")],
    workspace: WorkspaceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Buy a top-up pack: prints the Stripe Checkout URL to pay at (admins only)."""
    ctx = open_context(workspace)
    started = ctx.engine.topup(ctx.workspace_id, pack, by=ctx.actor_id)
    if json_out:
        print_json(started)
        return
    say("Order {order}: pay for pack [bold]{pack}[/] at", order=started.order_id, pack=pack)
    console.print(started.checkout_url, markup=False, highlight=False, soft_wrap=True)
    console.print("Credits land as soon as Stripe confirms the payment.", style="dim")


@plan_app.command("set")
@one_sentence_errors
def plan_set(
    plan: Annotated[str, typer.Argument(help="A plan id (see `spojit plan list`).")],
    workspace: WorkspaceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Change plan: an upgrade takes effect now, a downgrade at the next reset (admins)."""
    ctx = open_context(workspace)
    before = ctx.engine.balance(ctx.workspace_id).remaining
    with ctx.engine.watch_resumes() as watch:
        change = ctx.engine.set_plan(ctx.workspace_id, plan, by=ctx.actor_id)
    added = max(ctx.engine.balance(ctx.workspace_id).remaining - before, Decimal(0))
    if json_out:
        print_json(
            {
                "plan": change.plan_id,
                "pending_plan": change.pending_plan_id,
                "effective_at": change.effective_at,
                "credits_added": added,
                "resumed": watch.resumed,
                "resume_pending": watch.pending,
            }
        )
        return
    if change.pending_plan_id:
        when = change.effective_at.date().isoformat()
        console.print(
            f"Plan stays {change.plan_id} until the reset on {when}, "
            f"then becomes {change.pending_plan_id}.",
            highlight=False,
        )
    else:
        console.print(
            f"Plan is now {change.plan_id}: {credits_text(added)} credits added this period.",
            highlight=False,
        )
        console.print(resumed_text(watch.resumed, watch.pending), highlight=False)


@plan_app.command("list")
@one_sentence_errors
def plan_list(json_out: JsonOpt = False) -> None:
    """The plans and the top-up packs (larger packs cost less per credit)."""
    engine = open_engine()
    plans, packs = engine.plans(), engine.packs()
    if json_out:
        print_json(_catalog_json(plans, packs, engine.currency()))
        return
    console.print(_catalog_tables(plans, packs, engine.currency()))


def _catalog_json(plans: list[Any], packs: list[Any], currency: str) -> dict[str, Any]:
    from spojit_engine.money import ucr_to_credits

    return {
        "currency": currency,
        "plans": [
            {"id": p.id, "name": p.name, "allowance_credits": ucr_to_credits(p.allowance_ucr),
             "price_cents": p.price_cents, "term_months": p.term_months}
            for p in plans
        ],
        "packs": [
            {"id": k.id, "name": k.name, "credits": ucr_to_credits(k.credits_ucr),
             "price_cents": k.price_cents}
            for k in packs
        ],
    }  # fmt: skip


def _catalog_tables(plans: list[Any], packs: list[Any], currency: str) -> Any:
    """Plans and packs: their credits are catalog quantities (``500``), prices money."""
    from rich.console import Group

    from spojit_engine.display import credits_count, price_text
    from spojit_engine.money import ucr_to_credits

    plan_table = new_table("Plans", title_justify="left")
    text_column(plan_table, "plan")
    text_column(plan_table, "name")
    for column in ("credits / month", "price / month", "term"):
        number_column(plan_table, column)
    for p in plans:
        add_row(plan_table, p.id, p.name, credits_count(ucr_to_credits(p.allowance_ucr)),
                price_text(p.price_cents, currency), f"{p.term_months} months")  # fmt: skip
    pack_table = new_table("Top-up packs", title_justify="left")
    text_column(pack_table, "pack")
    text_column(pack_table, "name")
    for column in ("credits", "price", "per credit"):
        number_column(pack_table, column)
    for k in packs:
        credits = ucr_to_credits(k.credits_ucr)
        add_row(pack_table, k.id, k.name, credits_count(credits),
                price_text(k.price_cents, currency), f"{k.price_cents / credits:.2f}¢")  # fmt: skip
    return Group(plan_table, pack_table)
