"""``spojit member add|list|remove|rotate``: a workspace's members (admins only; the local
operator acts as admin). A member may rotate their own token. A removed or rotated token is
refused from the next command on; history keeps naming a removed member."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from spojit_engine.cli.context import open_context
from spojit_engine.cli.options import JsonOpt, WorkspaceOpt, one_sentence_errors
from spojit_engine.cli.render import (
    add_row,
    console,
    new_table,
    print_json,
    print_secret,
    say,
    text_column,
)
from spojit_engine.errors import InvalidInput

if TYPE_CHECKING:
    from spojit_engine.accounts import MemberRecord

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
        print_json(_member_json(member) | {"token": member.token})
        return
    say("Added {email} as {role} ({id}); token, shown once:", email=member.email,
        role=member.role, id=member.id)  # fmt: skip
    print_secret(member.token)


def _member_json(member: MemberRecord) -> dict[str, Any]:
    return {
        "id": member.id,
        "workspace_id": member.workspace_id,
        "email": member.email,
        "role": member.role,
        "added_at": member.added_at,
        "removed_at": member.removed_at,
    }


@app.command("list")
@one_sentence_errors
def member_list(
    removed: Annotated[bool, typer.Option("--removed", help="Include removed members.")] = False,
    workspace: WorkspaceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """The workspace's members with role and when they were added (admins only)."""
    ctx = open_context(workspace)
    ctx.engine.require_admin(ctx.workspace_id, ctx.actor_id, "list members")
    members = ctx.engine.members(ctx.workspace_id, removed=removed)
    if json_out:
        print_json([_member_json(m) for m in members])
        return
    table = new_table()
    for header in ("email", "role", "added (UTC)", "id", *(["removed (UTC)"] if removed else [])):
        text_column(table, header)
    for m in members:
        removed_at = [f"{m.removed_at:%Y-%m-%d %H:%M}" if m.removed_at else ""] if removed else []
        add_row(table, m.email, m.role, f"{m.added_at:%Y-%m-%d %H:%M}", m.id, *removed_at)
    console.print(table)


@app.command("remove")
@one_sentence_errors
def member_remove(
    member: Annotated[str, typer.Argument(help="The member's email or id.")],
    workspace: WorkspaceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Remove a member (admins only): their token and browser sessions are refused at once;
    their runs and grants keep naming them."""
    ctx = open_context(workspace)
    removed = ctx.engine.remove_member(ctx.workspace_id, member, by=ctx.actor_id)
    if json_out:
        print_json(_member_json(removed))
        return
    say("Removed {email} ({id}); their token is refused from now on.", email=removed.email,
        id=removed.id)  # fmt: skip


@app.command("rotate")
@one_sentence_errors
def member_rotate(
    member: Annotated[
        str | None, typer.Argument(help="The member's email or id; default: yourself.")
    ] = None,
    workspace: WorkspaceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """A new token for a member (your own, or anyone's as an admin); the old one is refused at
    once. Prints the new token once."""
    ctx = open_context(workspace)
    who = member or ctx.actor_id
    if who is None:
        raise InvalidInput("Name the member whose token to rotate: spojit member rotate EMAIL.")
    rotated = ctx.engine.rotate_token(ctx.workspace_id, who, by=ctx.actor_id)
    if json_out:
        print_json(_member_json(rotated) | {"token": rotated.token})
        return
    say("New token for {email} ({id}), shown once; the old one is refused from now on:",
        email=rotated.email, id=rotated.id)  # fmt: skip
    print_secret(rotated.token)
