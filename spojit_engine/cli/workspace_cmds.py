"""``spojit workspace use|list`` and the default workspace every command acts on.

Which workspace a command acts on, first match wins: the member's own (``SPOJIT_TOKEN``);
``--workspace`` / ``SPOJIT_WORKSPACE``; the one ``spojit workspace use NAME`` remembered (a file
``workspace`` under ``SPOJIT_HOME``); the only workspace there is. ``hint`` writes a command a
person can paste: with ``--workspace NAME`` whenever that resolution would pick another one.

No ``from __future__ import annotations`` here: Typer reads the commands' annotations, which name
options imported inside ``register`` (as in billing_cmds).
"""

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from spojit_engine.cli.render import console, print_json

DEFAULT_FILE = "workspace"


def _default_path() -> Path:
    from spojit_engine.settings import get_settings

    return get_settings().home / DEFAULT_FILE


def remembered() -> str | None:
    """The workspace ``spojit workspace use`` remembered, or None."""
    try:
        name = _default_path().read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return name or None


def default_workspace(engine: Any) -> str:
    """The workspace id a command without ``--workspace`` acts on (no member token)."""
    from spojit_engine.errors import InvalidInput, UnknownWorkspace

    name = remembered()
    if name is not None:
        try:
            return str(engine.workspace_id(name))
        except UnknownWorkspace:
            raise InvalidInput(
                f"The default workspace {name!r} ({_default_path()}) is not in this database; "
                "choose one with `spojit workspace use NAME`."
            ) from None
    workspaces = engine.workspaces()
    if len(workspaces) == 1:
        return str(workspaces[0].id)
    if not workspaces:
        raise InvalidInput("There is no workspace yet; run `spojit init` first.")
    raise InvalidInput(
        "There are several workspaces; name one with --workspace, or make one the default with "
        "`spojit workspace use NAME`."
    )


def hint(engine: Any, command: str, workspace_id: str, *, member: bool = False) -> str:
    """``command`` as a person can run it for ``workspace_id``: the flag added unless the
    command alone would act on that workspace anyway (a member's token always does)."""
    import os

    from spojit_engine.errors import SpojitError

    if member:
        return command
    named = os.environ.get("SPOJIT_WORKSPACE")
    try:
        chosen = engine.workspace_id(named) if named else default_workspace(engine)
    except SpojitError:
        chosen = None
    if chosen == workspace_id:
        return command
    name = next(w.name for w in engine.workspaces() if w.id == workspace_id)
    return f"{command} --workspace {name}"


def register(app: typer.Typer) -> None:
    from spojit_engine.cli.options import JsonOpt, one_sentence_errors
    from spojit_engine.cli.options import open_engine as engine_factory

    workspace_app = typer.Typer(help="Workspaces, and the default one.", no_args_is_help=True)
    app.add_typer(workspace_app, name="workspace")

    @workspace_app.command("use")
    @one_sentence_errors
    def use(name: Annotated[str, typer.Argument(help="A workspace name or id.")]) -> None:
        """Make NAME the workspace commands act on when no --workspace is given."""
        engine = engine_factory()
        workspace_id = engine.workspace_id(name)
        found = next(w for w in engine.workspaces() if w.id == workspace_id)
        path = _default_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(found.name + "\n", encoding="utf-8")
        console.print(
            f"Commands now act on workspace [bold]{escape(found.name)}[/] ({found.id}) unless "
            "--workspace or SPOJIT_WORKSPACE names another.",
            highlight=False,
        )

    @workspace_app.command("list")
    @one_sentence_errors
    def list_(json_out: JsonOpt = False) -> None:
        """Every workspace, its plan, and which one is the default."""
        engine = engine_factory()
        default = remembered()
        workspaces = engine.workspaces()
        rows = [
            {"id": w.id, "name": w.name, "plan": w.plan, "default": w.name == default}
            for w in workspaces
        ]
        if json_out:
            print_json(rows)
            return
        table = Table(title="Workspaces")
        for column in ("", "name", "id", "plan"):
            table.add_column(column)
        for w in workspaces:
            table.add_row("*" if w.name == default else "", escape(w.name), w.id, w.plan)
        console.print(table)
        if default is None:
            console.print("No default yet: `spojit workspace use NAME` sets one.")
