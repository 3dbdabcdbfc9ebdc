"""The default workspace: the one a command acts on when nobody names one, and commands a person
can paste.

Which workspace a command acts on, first match wins: the member's own (``SPOJIT_TOKEN``);
``--workspace`` / ``SPOJIT_WORKSPACE``; the one ``spojit workspace use NAME`` remembered (a file
``workspace`` under ``SPOJIT_HOME``); the only workspace there is. ``context.py`` applies the
first two; this module the last two. ``hint`` writes a command with ``--workspace NAME`` whenever
that resolution would pick another workspace than the one meant, and starts it the way this
process was started (``spojit_command``).
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spojit_engine.engine import Engine

DEFAULT_FILE = "workspace"


def default_path() -> Path:
    """The file that remembers the default workspace's name."""
    from spojit_engine.settings import get_settings

    return get_settings().home / DEFAULT_FILE


def remembered() -> str | None:
    """The workspace ``spojit workspace use`` remembered, or None."""
    try:
        name = default_path().read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return name or None


def remember(name: str) -> None:
    """Make ``name`` the default workspace."""
    path = default_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(name + "\n", encoding="utf-8")


def default_workspace_id(engine: Engine) -> str:
    """The workspace id a command without ``--workspace`` acts on (no member token)."""
    from spojit_engine.errors import InvalidInput, UnknownWorkspace

    name = remembered()
    if name is not None:
        try:
            return str(engine.workspace_id(name))
        except UnknownWorkspace:
            raise InvalidInput(
                f"The default workspace {name!r} ({default_path()}) is not in this database; "
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


def spojit_command() -> str:
    """``spojit`` as a person can type it again: ``spojit`` when that is the one on PATH, else
    the path of the running script (``.venv/bin/spojit`` after the README's first command,
    which activates no environment), relative to here when it is below here."""
    script = Path(sys.argv[0]).absolute()
    if script.name != "spojit":  # not the console script (python -m, a test): the plain name
        return "spojit"
    on_path = shutil.which("spojit")
    if on_path is not None and Path(on_path).absolute() == script:
        return "spojit"
    shown = script.relative_to(Path.cwd()) if script.is_relative_to(Path.cwd()) else script
    return shlex.quote(str(shown))


def hint(engine: Engine, command: str, workspace_id: str, *, member: bool = False) -> str:
    """``command`` (``spojit …``) as a person can run it for ``workspace_id``: started as this
    process was (``spojit_command``), the flag added unless the command alone would act on that
    workspace anyway (a member's token always does)."""
    from spojit_engine.errors import SpojitError

    command = spojit_command() + command.removeprefix("spojit")
    if member:
        return command
    named = os.environ.get("SPOJIT_WORKSPACE")
    try:
        chosen = engine.workspace_id(named) if named else default_workspace_id(engine)
    except SpojitError:
        chosen = None
    if chosen == workspace_id:
        return command
    name = next(w.name for w in engine.workspaces() if w.id == workspace_id)
    return f"{command} --workspace {name}"
