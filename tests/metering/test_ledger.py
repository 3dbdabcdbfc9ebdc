"""The ledger's money rules end to end, on SQLite and PostgreSQL, through the Engine facade."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from freezegun import freeze_time
from sqlalchemy import func, select, text

from spojit_engine import Engine, IdempotencyConflict, IllegalTransition, InsufficientCredits
from spojit_engine.errors import LedgerCorrupt
from spojit_engine.metering.store import schema

D = Decimal


def entry_count(engine: Engine) -> int:
    with engine.sa_engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(schema.entries)).scalar_one())


def test_allowance_burns_before_top_ups(engine: Engine) -> None:
    ws = engine.create_workspace("acme", plan="free")  # 100 credits of allowance
    engine.grant(ws.id, D("50"), kind="topup", key="stripe:cs_1")
    engine.debit(ws.id, D("120"), key="d1")
    balance = engine.balance(ws.id)
    assert (balance.allowance_remaining, balance.topup_remaining) == (D("0"), D("30"))
    assert balance.consumed == D("120")
    assert balance.remaining == D("30")
    engine.verify(ws.id)


def test_refused_debit_carries_the_numbers_and_writes_nothing(engine: Engine) -> None:
    ws = engine.create_workspace("acme", plan="free")
    before = entry_count(engine)
    with pytest.raises(InsufficientCredits) as refused:
        engine.debit(ws.id, D("100.000001"), key="too-much")
    assert (refused.value.needed, refused.value.available) == (D("100.000001"), D("100"))
    assert "acme" in str(refused.value)
    assert entry_count(engine) == before
    assert engine.debit(ws.id, D("100"), key="too-much").amount == D("-100")  # a fresh attempt


def test_a_replayed_key_returns_the_first_result_and_changes_nothing(engine: Engine) -> None:
    ws = engine.create_workspace("acme", plan="free")
    first = engine.debit(ws.id, D("1.5"), key="run-1/node-2/1")
    again = engine.debit(ws.id, D("1.5"), key="run-1/node-2/1")
    assert (again.id, again.replayed, first.replayed) == (first.id, True, False)
    count = entry_count(engine)
    with pytest.raises(IdempotencyConflict, match="already used"):
        engine.debit(ws.id, D("2"), key="run-1/node-2/1")
    with pytest.raises(IdempotencyConflict):
        engine.hold(ws.id, D("1.5"), key="run-1/node-2/1")
    with pytest.raises(IdempotencyConflict):
        engine.grant(ws.id, D("1.5"), kind="topup", key="run-1/node-2/1")
    assert entry_count(engine) == count
    assert engine.balance(ws.id).consumed == D("1.5")
    grant = engine.grant(ws.id, D("10"), kind="topup", key="stripe:cs_9")
    assert engine.grant(ws.id, D("10"), kind="topup", key="stripe:cs_9").id == grant.id
    engine.verify(ws.id)


def test_a_replay_is_answered_even_when_credits_have_run_out(engine: Engine) -> None:
    ws = engine.create_workspace("acme", plan="free")
    first = engine.debit(ws.id, D("100"), key="all-of-it")
    assert engine.debit(ws.id, D("100"), key="all-of-it").id == first.id
    hold_ws = engine.create_workspace("beta", plan="free")
    hold = engine.hold(hold_ws.id, D("100"), key="h-all")
    assert engine.hold(hold_ws.id, D("100"), key="h-all").id == hold.id


def test_hold_settle_posts_the_actual_and_frees_the_rest(engine: Engine) -> None:
    ws = engine.create_workspace("acme", plan="free")
    hold = engine.hold(
        ws.id, D("3"), key="run-1/node-3/1", workflow="leads", node_type="transform.structured"
    )
    assert engine.balance(ws.id).held == D("3")
    assert engine.balance(ws.id).remaining == D("97")
    settled = engine.settle(hold.id, D("2.2"))
    assert (settled.amount, settled.held) == (D("-2.2"), D("-3"))
    assert engine.settle(hold.id, D("2.2")).replayed
    with pytest.raises(IdempotencyConflict):
        engine.settle(hold.id, D("2.3"))
    with pytest.raises(IllegalTransition, match="settled to released"):
        engine.release(hold.id)
    balance = engine.balance(ws.id)
    assert (balance.held, balance.consumed, balance.remaining) == (D("0"), D("2.2"), D("97.8"))
    [row] = engine.breakdown(ws.id)
    assert (row.workflow, row.node_type, row.credits, row.calls) == (
        "leads",
        "transform.structured",
        D("2.2"),
        1,
    )
    engine.verify(ws.id)


def test_released_hold_gives_everything_back_and_cannot_be_settled(engine: Engine) -> None:
    ws = engine.create_workspace("acme", plan="free")
    hold = engine.hold(ws.id, D("40"), key="h1")
    assert engine.release(hold.id).state == "released"
    assert engine.release(hold.id).state == "released"  # idempotent
    with pytest.raises(IllegalTransition):
        engine.settle(hold.id, D("1"))
    assert engine.balance(ws.id).remaining == D("100")
    engine.verify(ws.id)


def test_holds_reserve_credits_so_concurrent_debits_cannot_take_them(engine: Engine) -> None:
    ws = engine.create_workspace("acme", plan="free")
    engine.hold(ws.id, D("80"), key="h1")
    with pytest.raises(InsufficientCredits) as refused:
        engine.debit(ws.id, D("21"), key="d1")
    assert refused.value.available == D("20")


def test_an_expired_hold_is_voided_by_the_sweeper_and_a_late_settle_still_bills(
    engine: Engine,
) -> None:
    with freeze_time("2026-03-10 12:00:00") as clock:
        ws = engine.create_workspace("acme", plan="free")
        hold = engine.hold(ws.id, D("30"), key="h1", ttl=timedelta(minutes=10))
        clock.tick(timedelta(minutes=11))
        assert ws.id in engine.sweep()
        assert engine.balance(ws.id).held == D("0")
        late = engine.settle(hold.id, D("12"))  # the call happened: its cost is never dropped
        assert (late.amount, late.held) == (D("-12"), D("0"))
        assert engine.balance(ws.id).consumed == D("12")
        engine.verify(ws.id)


def test_a_cost_beyond_the_balance_is_an_overdraft_the_next_grant_pays_first(
    engine: Engine,
) -> None:
    ws = engine.create_workspace("acme", plan="free")
    hold = engine.hold(ws.id, D("10"), key="h1")
    engine.debit(ws.id, D("90"), key="d1")
    settled = engine.settle(hold.id, D("25"))  # held 10 + nothing else left: 15 unpaid
    assert settled.overdraft == D("15")
    balance = engine.balance(ws.id)
    assert (balance.overdraft, balance.remaining) == (D("15"), D("-15"))
    with pytest.raises(InsufficientCredits):
        engine.debit(ws.id, D("1"), key="d2")
    grant = engine.grant(ws.id, D("40"), kind="topup", key="stripe:cs_1")
    assert (grant.amount, grant.remaining) == (D("40"), D("25"))
    assert engine.balance(ws.id).overdraft == D("0")
    engine.verify(ws.id)


def test_the_allowance_renews_at_the_anchored_reset_lazily_and_once(engine: Engine) -> None:
    with freeze_time("2027-01-31 08:00:00") as clock:
        ws = engine.create_workspace(
            "acme", plan="free", period_start=datetime(2027, 1, 31, tzinfo=UTC)
        )
        engine.grant(ws.id, D("500"), kind="topup", key="stripe:cs_1")
        engine.debit(ws.id, D("130"), key="d1")
        assert engine.balance(ws.id).resets_at == datetime(2027, 2, 28, tzinfo=UTC)
        clock.move_to("2027-02-28 00:00:00")
        count = entry_count(engine)
        balance = engine.balance(ws.id)
        assert (balance.allowance_remaining, balance.topup_remaining) == (D("100"), D("470"))
        assert (balance.consumed, balance.resets_at) == (D("0"), datetime(2027, 3, 31, tzinfo=UTC))
        assert entry_count(engine) == count + 1  # the new allowance (the old one was spent)
        engine.balance(ws.id)
        assert entry_count(engine) == count + 1  # renewal is idempotent
        clock.move_to("2027-03-31 00:00:00")
        assert engine.balance(ws.id).period_start == datetime(2027, 3, 31, tzinfo=UTC)
        keys = [g.key for g in engine.grants(ws.id) if g.kind == "allowance"]
        assert keys == [
            f"allowance:{ws.id}:2027-{d}T00:00:00+00:00" for d in ("01-31", "02-28", "03-31")
        ]
        engine.verify(ws.id)


def test_top_ups_roll_over_and_expire_at_the_end_of_the_plan_term(engine: Engine) -> None:
    with freeze_time("2026-01-15 00:00:00") as clock:
        ws = engine.create_workspace(
            "acme", plan="starter", period_start=datetime(2026, 1, 15, tzinfo=UTC)
        )
        clock.move_to("2026-06-01")
        grant = engine.grant(ws.id, D("500"), kind="topup", key="stripe:cs_1")
        assert grant.expires_at == datetime(2027, 1, 15, tzinfo=UTC)
        clock.move_to("2027-01-14 23:59:59")
        assert engine.balance(ws.id).topup_remaining == D("500")
        clock.move_to("2027-01-15 00:00:00")
        balance = engine.balance(ws.id)
        assert (balance.topup_remaining, balance.allowance_remaining) == (D("0"), D("1000"))
        engine.verify(ws.id)


def test_an_overdraft_is_paid_by_the_next_period_allowance_even_periods_later(
    engine: Engine,
) -> None:
    with freeze_time("2026-01-01 00:00:00") as clock:
        ws = engine.create_workspace(
            "acme", plan="free", period_start=datetime(2026, 1, 1, tzinfo=UTC)
        )
        hold = engine.hold(ws.id, D("100"), key="h1")
        engine.settle(hold.id, D("130"))
        clock.move_to("2026-04-15")  # three renewals happen at once, in order
        balance = engine.balance(ws.id)
        assert (balance.overdraft, balance.allowance_remaining) == (D("0"), D("100"))
        feb = next(g for g in engine.grants(ws.id) if g.key.endswith("2026-02-01T00:00:00+00:00"))
        assert (feb.amount, feb.remaining) == (D("100"), D("0"))  # paid 30, the rest expired
        engine.verify(ws.id)


def test_upgrade_is_immediate_and_downgrade_waits_for_the_reset(engine: Engine) -> None:
    with freeze_time("2026-05-01 00:00:00") as clock:
        ws = engine.create_workspace(
            "acme", plan="starter", period_start=datetime(2026, 5, 1, tzinfo=UTC)
        )
        engine.debit(ws.id, D("300"), key="d1")
        change = engine.set_plan(ws.id, "pro", by=None)
        assert (change.plan_id, change.pending_plan_id) == ("pro", None)
        assert engine.balance(ws.id).allowance_remaining == D("9700")  # 10,000 less the 300 taken
        change = engine.set_plan(ws.id, "free", by=None)
        assert (change.plan_id, change.pending_plan_id) == ("pro", "free")
        assert change.effective_at == datetime(2026, 6, 1, tzinfo=UTC)
        assert engine.balance(ws.id).allowance_remaining == D("9700")
        clock.move_to("2026-06-01")
        balance = engine.balance(ws.id)
        assert (balance.plan, balance.pending_plan, balance.allowance_remaining) == (
            "free",
            None,
            D("100"),
        )
        engine.verify(ws.id)


def test_choosing_the_current_plan_cancels_a_pending_downgrade(engine: Engine) -> None:
    ws = engine.create_workspace("acme", plan="pro")
    engine.set_plan(ws.id, "starter", by=None)
    assert engine.balance(ws.id).pending_plan == "starter"
    engine.set_plan(ws.id, "pro", by=None)
    assert engine.balance(ws.id).pending_plan is None


def test_future_grants_wait_for_their_effective_time(engine: Engine) -> None:
    with freeze_time("2026-05-01 00:00:00") as clock:
        ws = engine.create_workspace("acme", plan="free")
        engine.grant(
            ws.id,
            D("50"),
            kind="promo",
            key="promo-june",
            effective_at=datetime(2026, 5, 2, tzinfo=UTC),
            expires_at=datetime(2026, 5, 9, tzinfo=UTC),
        )
        assert engine.balance(ws.id).other_remaining == D("0")
        clock.move_to("2026-05-02")
        engine.debit(ws.id, D("10"), key="d1")  # promo (priority 0) pays before the allowance
        balance = engine.balance(ws.id)
        assert (balance.other_remaining, balance.allowance_remaining) == (D("40"), D("100"))


def test_breakdown_splits_workflow_node_type_member_and_test_runs(engine: Engine) -> None:
    ws = engine.create_workspace("acme", plan="free")
    ana = engine.add_member(ws.id, "ana@acme.io", role="admin")
    bob = engine.add_member(ws.id, "bob@acme.io")
    engine.debit(
        ws.id, D("2"), key="a", workflow="leads", node_type="connector.agent", member_id=ana.id
    )
    engine.debit(
        ws.id, D("3"), key="b", workflow="leads", node_type="connector.agent", member_id=bob.id
    )
    engine.debit(
        ws.id,
        D("1"),
        key="c",
        workflow="leads",
        node_type="connector.agent",
        member_id=bob.id,
        test_run=True,
    )
    rows = engine.breakdown(ws.id, by=("workflow", "member"))
    assert {(r.member, r.test_run): (r.credits, r.calls) for r in rows} == {
        (ana.id, False): (D("2"), 1),
        (bob.id, False): (D("3"), 1),
        (bob.id, True): (D("1"), 1),
    }
    mine = engine.breakdown(ws.id, by=("workflow",), member_id=bob.id)
    assert sum(r.credits for r in mine) == D("4")


@pytest.mark.parametrize(
    "tamper",
    [
        "UPDATE workspaces SET credits_ucr = credits_ucr + 1",
        "UPDATE workspaces SET held_ucr = held_ucr + 1",
        "UPDATE grants SET remaining_ucr = remaining_ucr - 1 WHERE remaining_ucr > 0",
        "UPDATE entries SET amount_ucr = amount_ucr - 1 WHERE kind = 'debit'",
        "DELETE FROM postings WHERE id = (SELECT MAX(id) FROM postings)",
    ],
)
def test_verify_catches_any_balance_that_differs_from_its_entries(
    engine: Engine, tamper: str
) -> None:
    ws = engine.create_workspace("acme", plan="free")
    engine.debit(ws.id, D("7"), key="d1")
    engine.verify(ws.id)
    with engine.sa_engine.begin() as conn:
        conn.execute(text(tamper))
    with pytest.raises(LedgerCorrupt, match=ws.id):
        engine.verify(ws.id)


def test_the_database_refuses_a_grant_below_zero_even_if_code_would_not(engine: Engine) -> None:
    from sqlalchemy.exc import IntegrityError

    ws = engine.create_workspace("acme", plan="free")
    with pytest.raises(IntegrityError), engine.sa_engine.begin() as conn:
        conn.execute(text("UPDATE grants SET remaining_ucr = -1"))
    engine.verify(ws.id)
