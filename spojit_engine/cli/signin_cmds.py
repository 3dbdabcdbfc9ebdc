"""``spojit login-link``: a one-time link that signs a member in to the web pages.

Who may ask: the local operator (who holds the database) for anyone; with ``SPOJIT_TOKEN`` a
member for themselves, an admin for any member of their workspace. The link opens
``SPOJIT_PUBLIC_URL/login/<token>``; only its hash is stored, and it works once, for ``--ttl``.

No ``from __future__ import annotations`` here: Typer reads the annotations (see billing_cmds).
"""

from datetime import timedelta
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add ``login-link`` to ``app`` (called once, at the end of ``cli/app.py``)."""
    from spojit_engine.cli.options import JsonOpt, WorkspaceOpt, one_sentence_errors
    from spojit_engine.cli.options import acting_member as _actor
    from spojit_engine.cli.options import open_engine as _engine
    from spojit_engine.cli.options import resolve_workspace as _workspace
    from spojit_engine.cli.render import console, print_json

    @app.command("login-link")
    @one_sentence_errors
    def login_link(
        member: Annotated[
            str | None,
            typer.Option(help="The member's email (default: you, or the workspace's first admin)."),
        ] = None,
        ttl: Annotated[
            int | None,
            typer.Option(
                help="Minutes the link stays valid (default SPOJIT_LOGIN_LINK_TTL_MINUTES)."
            ),
        ] = None,
        workspace: WorkspaceOpt = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Print a one-time sign-in link to the billing and executions pages."""
        from spojit_engine.errors import AdminRequired

        engine = _engine()
        actor = _actor(engine)
        ws_id = _workspace(engine, workspace, actor)
        if actor is not None:
            if member is None:
                member = actor.id
            elif not actor.is_admin and member.strip().lower() != actor.email:
                raise AdminRequired("make a sign-in link for another member", actor.email)
        link = engine.login_link(
            ws_id, member_id=member, ttl=None if ttl is None else timedelta(minutes=ttl)
        )
        if json_out:
            print_json({"url": link.url, "expires_at": link.expires_at, "member": link.email})
            return
        console.print(f"Sign-in link for {link.email} (one use, until "
                      f"{link.expires_at:%Y-%m-%d %H:%M} UTC):", highlight=False)  # fmt: skip
        console.print(link.url, markup=False, highlight=False, soft_wrap=True)
