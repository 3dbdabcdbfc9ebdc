"""What every ``spojit`` command shares: the ``--workspace`` and ``--json`` options, the error
decorator, and resolving the engine, who acts and on which workspace. Command modules import
from here, never from ``app.py`` (which imports them to register their commands)."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from spojit_engine.cli.render import err_console

if TYPE_CHECKING:
    from spojit_engine.accounts import MemberRecord
    from spojit_engine.engine import Engine

F = TypeVar("F", bound=Callable[..., Any])

WorkspaceOpt = Annotated[
    str | None,
    typer.Option(
        "--workspace",
        "-w",
        help="Workspace name or id (default: `spojit workspace use`, else the only one).",
        envvar="SPOJIT_WORKSPACE",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
FlowArg = Annotated[
    str,
    typer.Argument(
        help="An example (lead_enrichment, support_triage, nightly_digest), a .py file, "
        "or module:attr.",
        show_default=False,
    ),
]


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


def open_engine() -> Engine:
    """The engine of the settings (imported here, so ``spojit --help`` stays fast)."""
    from spojit_engine.engine import Engine

    return Engine()


def acting_member(engine: Engine) -> MemberRecord | None:
    """The member named by SPOJIT_TOKEN, or None for the local operator."""
    token = os.environ.get("SPOJIT_TOKEN")
    return engine.authenticate(token) if token else None


def resolve_workspace(engine: Engine, name: str | None, actor: MemberRecord | None) -> str:
    """The workspace to act on: the actor's, the named one, or the default (workspace_cmds)."""
    from spojit_engine.errors import Forbidden

    if actor is not None:
        if name and engine.workspace_id(name) != actor.workspace_id:
            raise Forbidden(f"{actor.email} is not a member of workspace {name}.")
        return str(actor.workspace_id)
    if name:
        return str(engine.workspace_id(name))
    from spojit_engine.cli.workspace_cmds import default_workspace

    return default_workspace(engine)
