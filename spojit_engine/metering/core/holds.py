"""Hold states and their one transition function (two-phase, as TigerBeetle's pending transfers).

HELD -> SETTLED | RELEASED | EXPIRED
EXPIRED -> SETTLED   a late settle: the LLM call happened, so its cost is still recorded
"""

from __future__ import annotations

from enum import StrEnum

from spojit_engine.errors import IllegalTransition


class HoldState(StrEnum):
    HELD = "held"
    SETTLED = "settled"
    RELEASED = "released"
    EXPIRED = "expired"


_ALLOWED: dict[HoldState, frozenset[HoldState]] = {
    HoldState.HELD: frozenset({HoldState.SETTLED, HoldState.RELEASED, HoldState.EXPIRED}),
    HoldState.EXPIRED: frozenset({HoldState.SETTLED}),
    HoldState.SETTLED: frozenset(),
    HoldState.RELEASED: frozenset(),
}


def transition(hold_id: int, current: HoldState, wanted: HoldState) -> HoldState:
    """``wanted`` if the move is legal, else ``IllegalTransition`` naming both states."""
    if wanted not in _ALLOWED[current]:
        raise IllegalTransition(f"Hold {hold_id}", current.value, wanted.value)
    return wanted
