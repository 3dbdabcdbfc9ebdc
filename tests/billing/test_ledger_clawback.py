"""The ledger's clawback primitive (``metering/ledger/clawback.py``) through ``Engine.claw_back``,
on SQLite and PostgreSQL: what is left of the grant first, then the workspace's other credits in
burn order (never credits held for running steps), then an overdraft the next grant pays first."""

from __future__ import annotations

from decimal import Decimal

import pytest

from spojit_engine import Engine, IdempotencyConflict, InvalidInput, NotFound

D = Decimal


def remaining_by_key(engine: Engine, workspace_id: str) -> dict[str, Decimal]:
    return {g.key.split(":")[0]: g.remaining for g in engine.grants(workspace_id)}


def test_a_clawback_takes_what_is_left_of_its_grant(engine: Engine) -> None:
    ws = engine.create_workspace("acme", plan="free")  # 100 allowance
    engine.grant(ws.id, D("500"), kind="topup", key="stripe:cs_1")
    entry = engine.claw_back(ws.id, D("150"), grant_key="stripe:cs_1", key="refund:1")
    assert (entry.kind, entry.amount, entry.overdraft) == ("clawback", D("-150"), D("0"))
    assert remaining_by_key(engine, ws.id) == {"allowance": D("100"), "stripe": D("350")}
    balance = engine.balance(ws.id)
    assert (balance.remaining, balance.consumed) == (D("450"), D("0"))  # not consumption
    engine.verify(ws.id)


def test_spent_credits_are_taken_from_other_credits_then_overdraft(engine: Engine) -> None:
    ws = engine.create_workspace("acme", plan="free")
    engine.grant(ws.id, D("50"), kind="topup", key="stripe:cs_1")
    engine.grant(ws.id, D("30"), kind="promo", key="promo:1")
    engine.debit(ws.id, D("170"), key="d1")  # promo 30, allowance 100, top-up 40: 10 left
    engine.grant(ws.id, D("20"), kind="adjustment", key="adj:1")
    hold = engine.hold(ws.id, D("15"), key="h1")  # 5 of the adjustment stay free
    entry = engine.claw_back(ws.id, D("50"), grant_key="stripe:cs_1", key="dispute:1")
    # 10 from the top-up's rest, 5 from the adjustment (15 of it is held), 35 unpaid.
    assert (entry.amount, entry.overdraft) == (D("-50"), D("35"))
    balance = engine.balance(ws.id)
    assert (balance.held, balance.overdraft, balance.remaining) == (D("15"), D("35"), D("-35"))
    engine.verify(ws.id)
    engine.settle(hold.id, D("15"))
    later = engine.grant(ws.id, D("100"), kind="topup", key="stripe:cs_2")
    assert later.remaining == D("50")  # the next grant pays the overdraft (35 + 15) first
    balance = engine.balance(ws.id)
    assert (balance.overdraft, balance.remaining) == (D("0"), D("65"))
    engine.verify(ws.id)


def test_a_clawback_key_replays_and_conflicts_like_every_key(engine: Engine) -> None:
    ws = engine.create_workspace("acme", plan="free")
    engine.grant(ws.id, D("500"), kind="topup", key="stripe:cs_1")
    first = engine.claw_back(ws.id, D("10"), grant_key="stripe:cs_1", key="refund:1")
    again = engine.claw_back(ws.id, D("10"), grant_key="stripe:cs_1", key="refund:1")
    assert (again.id, again.replayed, first.replayed) == (first.id, True, False)
    with pytest.raises(IdempotencyConflict):
        engine.claw_back(ws.id, D("11"), grant_key="stripe:cs_1", key="refund:1")
    with pytest.raises(IdempotencyConflict):
        engine.claw_back(ws.id, D("10"), grant_key="stripe:cs_1", key="stripe:cs_1")
    assert engine.balance(ws.id).topup_remaining == D("490")
    engine.verify(ws.id)


def test_bad_clawbacks_change_nothing(engine: Engine) -> None:
    ws = engine.create_workspace("acme", plan="free")
    other = engine.create_workspace("beta", plan="free")
    engine.grant(other.id, D("5"), kind="topup", key="stripe:cs_9")
    before = engine.balance(ws.id)
    with pytest.raises(NotFound):
        engine.claw_back(ws.id, D("1"), grant_key="stripe:cs_nope", key="k1")
    with pytest.raises(NotFound):  # another workspace's grant
        engine.claw_back(ws.id, D("1"), grant_key="stripe:cs_9", key="k2")
    for amount in ("0", "-1", "0.0000001"):
        with pytest.raises(InvalidInput):
            engine.claw_back(ws.id, amount, grant_key=f"allowance:{ws.id}", key="k3")
    assert engine.balance(ws.id) == before
    engine.verify()
