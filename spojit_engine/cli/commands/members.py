"""``spojit member add EMAIL``: a workspace's members (admins only; the local operator acts as
admin)."""

from __future__ import annotations

from typing import Annotated

import typer

from spojit_engine.cli.context import open_context
from spojit_engine.cli.options import JsonOpt, WorkspaceOpt, one_sentence_errors
from spojit_engine.cli.render import print_json, print_secret, say

app = typer.Typer(name="member", help="Workspace members.", no_args_is_help=True)


@app.command("add")
@one_sentence_errors
def member_add(
    email: str,
    role: Annotated[str, typer.Option(help="admin or member.")] = "member",
    workspace: WorkspaceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Add a member (admins only); prints the new member's token once."""
    ctx = open_context(workspace)
    member = ctx.engine.add_member(ctx.workspace_id, email, role=role, by=ctx.actor_id)
    if json_out:
        print_json(
            {
                "id": member.id,
                "workspace_id": ctx.workspace_id,
                "email": member.email,
                "role": member.role,
                "token": member.token,
            }
        )
        return
    say("Added {email} as {role} ({id}); token, shown once:", email=member.email,
        role=member.role, id=member.id)  # fmt: skip
    print_secret(member.token)
