"""Removing members under concurrency, on SQLite and PostgreSQL: admins removing each other at the
same moment never leave a workspace without an admin (the workspace row is locked first)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest

from spojit_engine import Engine
from spojit_engine.errors import Conflict, Unauthorized

ADMINS = 8
ROUNDS = 3  # a race: each round is another chance for an unlocked check to interleave


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_admins_removing_each_other_at_once_never_leave_the_workspace_without_one(
    engine: Engine, round_: int
) -> None:
    ws = engine.create_workspace(f"acme{round_}", plan="free").id
    admins = [engine.add_member(ws, f"a{i}@acme.io", role="admin") for i in range(ADMINS)]
    start = Barrier(ADMINS)

    def remove_next(i: int) -> str:
        """Admin i removes admin i+1 (the last removes the first): a ring of removals."""
        start.wait()
        target = admins[(i + 1) % ADMINS]
        try:
            engine.remove_member(ws, target.email, by=admins[i].id)
        except (Conflict, Unauthorized) as refused:  # the last admin; removed; remover removed
            return str(refused)
        return "removed"

    with ThreadPoolExecutor(ADMINS) as pool:
        outcomes = list(pool.map(remove_next, range(ADMINS)))
    left = [m for m in engine.members(ws) if m.is_admin]
    assert len(left) >= 1, outcomes
    assert outcomes.count("removed") == ADMINS - len(left), outcomes
    assert engine.verify(ws) == 1


def test_a_removed_admin_can_no_longer_act_and_is_added_back_as_the_same_member(
    engine: Engine,
) -> None:
    ws = engine.create_workspace("acme", plan="free").id
    ana = engine.add_member(ws, "ana@acme.io", role="admin")
    ben = engine.add_member(ws, "ben@acme.io", role="admin")
    engine.remove_member(ws, "ben@acme.io", by=ana.id)
    with pytest.raises(Unauthorized, match="was removed"):
        engine.rotate_token(ws, "ana@acme.io", by=ben.id)
    with pytest.raises(Unauthorized):
        engine.authenticate(str(ben.token))
    again = engine.add_member(ws, "BEN@acme.io", role="member", by=ana.id)
    assert (again.id, again.role, again.removed_at) == (ben.id, "member", None)
    assert engine.authenticate(str(again.token)).id == ben.id
