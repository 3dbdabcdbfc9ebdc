"""Who runs a ``spojit`` command, and on which workspace: the preamble every command shares.

``SPOJIT_TOKEN`` names the acting member; without it the local operator, who holds the
database, acts as admin. A member acts on their own workspace only (naming another is
``Forbidden``); the operator on the one named by ``--workspace`` / ``SPOJIT_WORKSPACE``, else
the default (``default_workspace.py``).

``open_context(workspace)`` is what nearly every command starts with. ``open_caller()`` is the
same without choosing a workspace yet, for the few that decide first whether they need one
(``spojit deployments`` lists every workspace's, a first ``spojit estimate`` works on none).
The ``Engine`` is imported inside ``open_engine`` so ``spojit --help`` stays fast.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from spojit_engine.cli.default_workspace import default_workspace_id

if TYPE_CHECKING:
    from spojit_engine.accounts import MemberRecord
    from spojit_engine.engine import Engine


def open_engine() -> Engine:
    """The engine of the settings, for commands that act as the local operator only."""
    from spojit_engine.engine import Engine

    return Engine()


@dataclass(frozen=True)
class Caller:
    """The engine, and the member who acts on it (None: the local operator, as admin)."""

    engine: Engine
    actor: MemberRecord | None

    @property
    def actor_id(self) -> str | None:
        """Who the engine records as acting (None: the operator)."""
        return self.actor.id if self.actor is not None else None

    @property
    def own_only(self) -> str | None:
        """The member whose rows alone a read shows: a member sees only their own consumption
        and runs; an admin or the operator sees everyone's (None)."""
        return self.actor.id if self.actor is not None and not self.actor.is_admin else None

    def workspace_id_of(self, name: str | None) -> str:
        """The workspace to act on: the actor's, the named one, or the default."""
        from spojit_engine.errors import Forbidden

        actor = self.actor
        if actor is not None:
            if name and self.engine.workspace_id(name) != actor.workspace_id:
                raise Forbidden(f"{actor.email} is not a member of workspace {name}.")
            return str(actor.workspace_id)
        if name:
            return str(self.engine.workspace_id(name))
        return default_workspace_id(self.engine)

    def in_workspace(self, name: str | None) -> CommandContext:
        """This caller acting on the workspace ``name`` resolves to."""
        return CommandContext(self.engine, self.actor, self.workspace_id_of(name))


@dataclass(frozen=True)
class CommandContext(Caller):
    """A caller and the workspace the command acts on."""

    workspace_id: str


def open_caller() -> Caller:
    """The engine of the settings and the member ``SPOJIT_TOKEN`` names (None: the operator)."""
    engine = open_engine()
    token = os.environ.get("SPOJIT_TOKEN")
    return Caller(engine, engine.authenticate(token) if token else None)


def open_context(workspace: str | None) -> CommandContext:
    """Open the engine, find who acts and resolve the workspace they act on."""
    return open_caller().in_workspace(workspace)
