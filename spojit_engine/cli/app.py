"""``spojit`` commands. Each resolves who is acting (``SPOJIT_TOKEN`` names a member; without it
the local operator, who holds the database, acts as admin), calls ``Engine`` once, and renders.
Errors are one sentence on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from spojit_engine.cli.render import (
    breakdown_table,
    console,
    err_console,
    print_json,
    usage_card,
)

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="spojit",
    help="Cost-aware workflow execution for Prefect: credits, usage and top-ups.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
member_app = typer.Typer(help="Workspace members.", no_args_is_help=True)
ledger_app = typer.Typer(help="The credit ledger.", no_args_is_help=True)
app.add_typer(member_app, name="member")
app.add_typer(ledger_app, name="ledger")

WorkspaceOpt = Annotated[
    str | None,
    typer.Option(
        "--workspace",
        "-w",
        help="Workspace name or id (default: the only one).",
        envvar="SPOJIT_WORKSPACE",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def one_sentence_errors(command: F) -> F:
    """Turn our errors (and bad settings) into one line on stderr and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from pydantic import ValidationError

        from spojit_engine.errors import SpojitError

        try:
            return command(*args, **kwargs)
        except SpojitError as exc:
            err_console.print(f"Error: {exc}", highlight=False, markup=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            err_console.print(
                f"Error: setting {where}: {first['msg']}.", markup=False, soft_wrap=True
            )
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _engine() -> Any:
    from spojit_engine.engine import Engine

    return Engine()


def _actor(engine: Any) -> Any:
    """The member named by SPOJIT_TOKEN, or None for the local operator."""
    token = os.environ.get("SPOJIT_TOKEN")
    return engine.authenticate(token) if token else None


def _workspace(engine: Any, name: str | None, actor: Any) -> str:
    """The workspace to act on: the actor's, the named one, or the only one there is."""
    from spojit_engine.errors import Forbidden, InvalidInput

    if actor is not None:
        if name and engine.workspace_id(name) != actor.workspace_id:
            raise Forbidden(f"{actor.email} is not a member of workspace {name}.")
        return str(actor.workspace_id)
    if name:
        return str(engine.workspace_id(name))
    workspaces = engine.workspaces()
    if len(workspaces) == 1:
        return str(workspaces[0].id)
    if not workspaces:
        raise InvalidInput("There is no workspace yet; run `spojit init` first.")
    raise InvalidInput("There are several workspaces; name one with --workspace.")


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

    engine = _engine()
    try:
        ws = engine.create_workspace(workspace, plan=plan)
    except AlreadyExists:
        found = engine.workspace_id(workspace)
        result = {"workspace_id": found, "workspace": workspace, "created": False}
        if json_out:
            print_json(result)
        else:
            console.print(
                f"Workspace [bold]{workspace}[/] ({found}) already exists; nothing changed."
            )
        return
    member = engine.add_member(ws.id, admin, role="admin")
    result = {
        "workspace_id": ws.id,
        "workspace": ws.name,
        "plan": ws.plan,
        "created": True,
        "admin": {"id": member.id, "email": member.email, "token": member.token},
    }
    if json_out:
        print_json(result)
        return
    console.print(f"Created workspace [bold]{ws.name}[/] ({ws.id}) on plan {ws.plan}.")
    console.print(f"Admin {member.email} ({member.id}); token, shown once:")
    console.print(member.token, markup=False, highlight=False)
    console.print(f"Database: {engine.database_url}", highlight=False)


@member_app.command("add")
@one_sentence_errors
def member_add(
    email: str,
    role: Annotated[str, typer.Option(help="admin or member.")] = "member",
    workspace: WorkspaceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Add a member (admins only); prints the new member's token once."""
    engine = _engine()
    actor = _actor(engine)
    ws_id = _workspace(engine, workspace, actor)
    member = engine.add_member(ws_id, email, role=role, by=actor.id if actor else None)
    if json_out:
        print_json(
            {
                "id": member.id,
                "workspace_id": ws_id,
                "email": member.email,
                "role": member.role,
                "token": member.token,
            }
        )
        return
    console.print(f"Added {member.email} as {member.role} ({member.id}); token, shown once:")
    console.print(member.token, markup=False, highlight=False)


@app.command()
@one_sentence_errors
def usage(
    workspace: WorkspaceOpt = None,
    breakdown: Annotated[bool, typer.Option("--breakdown", help="View breakdown too.")] = False,
    by: Annotated[
        str,
        typer.Option(
            help="Breakdown dimensions, comma-separated: workflow, node_type, member, test_run."
        ),
    ] = "workflow,node_type",
    json_out: JsonOpt = False,
) -> None:
    """Usage this period: consumed, remaining, the reset date (and the breakdown)."""
    engine = _engine()
    actor = _actor(engine)
    ws_id = _workspace(engine, workspace, actor)
    balance = engine.balance(ws_id)
    dims = tuple(d.strip() for d in by.split(",") if d.strip())
    rows = None
    if breakdown:
        # A member sees only their own consumption; an admin sees everyone's.
        only = actor.id if actor is not None and not actor.is_admin else None
        rows = engine.breakdown(ws_id, by=dims, member_id=only)
    if json_out:
        out: dict[str, Any] = {
            "workspace_id": balance.workspace_id,
            "workspace": balance.workspace,
            "plan": balance.plan,
            "pending_plan": balance.pending_plan,
            "consumed": balance.consumed,
            "remaining": balance.remaining,
            "allowance_remaining": balance.allowance_remaining,
            "topup_remaining": balance.topup_remaining,
            "other_remaining": balance.other_remaining,
            "held": balance.held,
            "overdraft": balance.overdraft,
            "period_start": balance.period_start,
            "resets_at": balance.resets_at,
        }
        if rows is not None:
            out["breakdown"] = rows
        print_json(out)
        return
    console.print(usage_card(balance))
    if rows is not None:
        console.print(breakdown_table(rows, dims))


@ledger_app.command("verify")
@one_sentence_errors
def ledger_verify(workspace: WorkspaceOpt = None, json_out: JsonOpt = False) -> None:
    """Prove every materialised balance equals the sum of its entries (exit 1 if not)."""
    engine = _engine()
    ws_id = engine.workspace_id(workspace) if workspace else None
    checked = engine.verify(ws_id)
    if json_out:
        print_json({"ok": True, "workspaces_verified": checked})
    else:
        console.print(
            f"Ledger OK: {checked} workspace(s) verified, every balance equals its entries."
        )
