"""``spojit init`` (the database, a workspace and its first admin) and ``spojit workspace
use|list`` (the default workspace every command acts on; see ``cli/default_workspace.py``).
Both act as the local operator, who holds the database: no ``SPOJIT_TOKEN`` is read."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from spojit_engine.cli.context import open_engine
from spojit_engine.cli.default_workspace import remember, remembered
from spojit_engine.cli.options import JsonOpt, one_sentence_errors
from spojit_engine.cli.render import console, print_json, print_secret

app = typer.Typer()
workspace_app = typer.Typer(help="Workspaces, and the default one.", no_args_is_help=True)
app.add_typer(workspace_app, name="workspace")


@app.command()
@one_sentence_errors
def init(
    workspace: Annotated[
        str, typer.Option("--workspace", "-w", help="Workspace name.")
    ] = "default",
    plan: Annotated[str, typer.Option(help="Plan id (see the catalog).")] = "free",
    admin: Annotated[str, typer.Option(help="The first admin's email.")] = "admin@example.com",
    json_out: JsonOpt = False,
) -> None:
    """Create the database, a workspace and its first admin (prints the admin's token once)."""
    from spojit_engine.errors import AlreadyExists

    engine = open_engine()
    try:
        ws = engine.create_workspace(workspace, plan=plan)
    except AlreadyExists:
        found = engine.workspace_id(workspace)
        if json_out:
            print_json({"workspace_id": found, "workspace": workspace, "created": False})
        else:
            console.print(
                f"Workspace [bold]{workspace}[/] ({found}) already exists; nothing changed."
            )
        return
    member = engine.add_member(ws.id, admin, role="admin")
    if json_out:
        print_json(
            {
                "workspace_id": ws.id,
                "workspace": ws.name,
                "plan": ws.plan,
                "created": True,
                "admin": {"id": member.id, "email": member.email, "token": member.token},
            }
        )
        return
    console.print(f"Created workspace [bold]{ws.name}[/] ({ws.id}) on plan {ws.plan}.")
    console.print(f"Admin {member.email} ({member.id}); token, shown once:")
    print_secret(member.token)
    console.print(f"Database: {engine.database_url}", highlight=False)


@workspace_app.command("use")
@one_sentence_errors
def use(name: Annotated[str, typer.Argument(help="A workspace name or id.")]) -> None:
    """Make NAME the workspace commands act on when no --workspace is given."""
    engine = open_engine()
    workspace_id = engine.workspace_id(name)
    found = next(w for w in engine.workspaces() if w.id == workspace_id)
    remember(found.name)
    console.print(
        f"Commands now act on workspace [bold]{escape(found.name)}[/] ({found.id}) unless "
        "--workspace or SPOJIT_WORKSPACE names another.",
        highlight=False,
    )


@workspace_app.command("list")
@one_sentence_errors
def list_workspaces(json_out: JsonOpt = False) -> None:
    """Every workspace, its plan, and which one is the default."""
    engine = open_engine()
    default = remembered()
    workspaces = engine.workspaces()
    if json_out:
        print_json(
            [
                {"id": w.id, "name": w.name, "plan": w.plan, "default": w.name == default}
                for w in workspaces
            ]
        )
        return
    table = Table(title="Workspaces")
    for column in ("", "name", "id", "plan"):
        table.add_column(column)
    for w in workspaces:
        table.add_row("*" if w.name == default else "", escape(w.name), w.id, w.plan)
    console.print(table)
    if default is None:
        console.print("No default yet: `spojit workspace use NAME` sets one.")
