"""``spojit init`` (the database, a workspace and its first admin) and ``spojit workspace
use|list`` (the default workspace every command acts on; see ``cli/default_workspace.py``).
Both act as the local operator, who holds the database: no ``SPOJIT_TOKEN`` is read."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from spojit_engine.cli.context import open_engine
from spojit_engine.cli.default_workspace import default_workspace_id, remember, remembered
from spojit_engine.cli.options import JsonOpt, one_sentence_errors
from spojit_engine.cli.render import (
    add_row,
    console,
    new_table,
    print_command,
    print_json,
    print_secret,
    say,
    text_column,
)

if TYPE_CHECKING:
    from spojit_engine.engine import Engine

app = typer.Typer()
workspace_app = typer.Typer(help="Workspaces, and the default one.", no_args_is_help=True)
app.add_typer(workspace_app, name="workspace")


@app.command()
@one_sentence_errors
def init(
    workspace: Annotated[
        str | None,
        typer.Option(
            "--workspace", "-w", help="Workspace name (default: the one there is, else default)."
        ),
    ] = None,
    plan: Annotated[str, typer.Option(help="Plan id (see the catalog).")] = "free",
    admin: Annotated[str, typer.Option(help="The first admin's email.")] = "admin@example.com",
    json_out: JsonOpt = False,
) -> None:
    """Create the database, a workspace and its first admin (prints the admin's token once).

    Idempotent: without --workspace, a database that has a workspace already (``spojit demo``
    made one) reports the one commands act on and creates nothing; a named workspace that exists
    is reported too. A workspace made beside others becomes the default unless one was chosen
    (``spojit workspace use``), so ``spojit member add`` acts on it without asking which."""
    from spojit_engine.errors import AlreadyExists

    engine = open_engine()
    if workspace is None and engine.workspaces():
        _report_existing(engine, default_workspace_id(engine), json_out)
        return
    becomes_default = bool(engine.workspaces()) and remembered() is None
    try:
        ws = engine.create_workspace(workspace or "default", plan=plan)
    except AlreadyExists:
        _report_existing(engine, engine.workspace_id(workspace or "default"), json_out)
        return
    member = engine.add_member(ws.id, admin, role="admin")
    if becomes_default:
        remember(ws.name)
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
    say("Created workspace [bold]{name}[/] ({id}) on plan {plan}.", name=ws.name, id=ws.id,
        plan=ws.plan)  # fmt: skip
    if becomes_default:
        say("Commands now act on it unless --workspace names another "
            "(`spojit workspace use NAME` changes that).")  # fmt: skip
    say("Admin {email} ({id}); token, shown once:", email=member.email, id=member.id)
    print_secret(member.token)
    _print_database(engine)


def _report_existing(engine: Engine, workspace_id: str, json_out: bool) -> None:
    """``spojit init`` on a workspace that exists: which one, its admins; nothing changes."""
    found = next(w for w in engine.workspaces() if w.id == workspace_id)
    admins = [m.email for m in engine.members(workspace_id) if m.is_admin]
    if json_out:
        print_json({"workspace_id": found.id, "workspace": found.name, "plan": found.plan,
                    "created": False, "admins": admins})  # fmt: skip
        return
    say("Workspace [bold]{name}[/] ({id}) already exists; nothing changed. Its admins: "
        "{admins}; `spojit member add EMAIL --role admin` adds one.", name=found.name,
        id=found.id, admins=", ".join(admins) or "none")  # fmt: skip
    _print_database(engine)


def _print_database(engine: Engine) -> None:
    """Where the ledger is (its password masked), whole on one line."""
    from spojit_engine.db import masked

    print_command(f"Database: {masked(engine.database_url)}", indent="")


@workspace_app.command("use")
@one_sentence_errors
def use(name: Annotated[str, typer.Argument(help="A workspace name or id.")]) -> None:
    """Make NAME the workspace commands act on when no --workspace is given."""
    engine = open_engine()
    workspace_id = engine.workspace_id(name)
    found = next(w for w in engine.workspaces() if w.id == workspace_id)
    remember(found.name)
    say("Commands now act on workspace [bold]{name}[/] ({id}) unless --workspace or "
        "SPOJIT_WORKSPACE names another.", name=found.name, id=found.id)  # fmt: skip


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
    table = new_table("Workspaces")
    for column in ("", "name", "id", "plan"):
        text_column(table, column)
    for w in workspaces:
        add_row(table, "*" if w.name == default else "", w.name, w.id, w.plan)
    console.print(table)
    if default is None:
        console.print("No default yet: `spojit workspace use NAME` sets one.")
