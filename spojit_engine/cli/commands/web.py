"""``spojit serve`` (the JSON API, the Stripe and workflow webhooks, the billing and executions
pages) and ``spojit login-link`` (a one-time link that signs a member in to those pages).

Who may ask for a link: the local operator (who holds the database) for anyone; with
``SPOJIT_TOKEN`` a member for themselves, an admin for any member of their workspace. The link
opens ``SPOJIT_PUBLIC_URL/login/<token>``; only its hash is stored, and it works once, for
``--ttl``. FastAPI and uvicorn are imported inside ``serve``, so ``spojit usage`` stays fast."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from spojit_engine.cli.context import open_context, open_engine
from spojit_engine.cli.options import JsonOpt, WorkspaceOpt, one_sentence_errors
from spojit_engine.cli.render import console, print_json, say

app = typer.Typer()


@app.command()
@one_sentence_errors
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
) -> None:
    """Serve the JSON API, the Stripe webhook and the billing and executions pages."""
    import uvicorn

    from spojit_engine.db import masked
    from spojit_engine.web.app import create_app

    engine = open_engine()
    settings = engine.settings
    console.print(
        f"Serving http://{host}:{port}  (API /api/v1, docs /docs, pages /billing and "
        f"/executions, Stripe webhook /webhooks/stripe; database {masked(engine.database_url)})",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        "Sign in to the pages with a one-time link: spojit login-link (links open "
        f"{settings.public_url}; set SPOJIT_PUBLIC_URL if that is not this address).",
        highlight=False,
        soft_wrap=True,
    )
    if "public_url" not in settings.model_fields_set:
        console.print(
            f"Links (webhook URLs, Stripe's return) use {settings.public_url}; set "
            "SPOJIT_PUBLIC_URL to the address people and Stripe reach this server at.",
            highlight=False,
            soft_wrap=True,
        )
    every = settings.guard_reconcile_interval_seconds
    console.print(
        f"The credit guard's reconciler runs every {every:g}s (pending resumes, queues).",
        highlight=False,
    )
    uvicorn.run(create_app(engine, reconcile=True), host=host, port=port, log_level="info")


@app.command("login-link")
@one_sentence_errors
def login_link(
    member: Annotated[
        str | None,
        typer.Option(help="The member's email (default: you, or the workspace's first admin)."),
    ] = None,
    ttl: Annotated[
        int | None,
        typer.Option(help="Minutes the link stays valid (default SPOJIT_LOGIN_LINK_TTL_MINUTES)."),
    ] = None,
    workspace: WorkspaceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Print a one-time sign-in link to the billing and executions pages."""
    from spojit_engine.errors import AdminRequired

    ctx = open_context(workspace)
    actor = ctx.actor
    if actor is not None:
        if member is None:
            member = actor.id
        elif not actor.is_admin and member.strip().lower() != actor.email:
            raise AdminRequired("make a sign-in link for another member", actor.email)
    link = ctx.engine.login_link(
        ctx.workspace_id, member_id=member, ttl=None if ttl is None else timedelta(minutes=ttl)
    )
    if json_out:
        print_json({"url": link.url, "expires_at": link.expires_at, "member": link.email})
        return
    say("Sign-in link for {email} (one use, until {until} UTC):", email=link.email,
        until=f"{link.expires_at:%Y-%m-%d %H:%M}")  # fmt: skip
    console.print(link.url, markup=False, highlight=False, soft_wrap=True)
