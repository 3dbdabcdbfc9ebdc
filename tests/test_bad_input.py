"""Bad input: one clear sentence, and nothing changes (counted in the database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from spojit_engine import Engine, InvalidInput, NotFound
from spojit_engine.errors import AdminRequired, AlreadyExists, SpojitError, UnknownHold
from spojit_engine.metering.store import schema

D = Decimal


def snapshot(engine: Engine) -> tuple[int, ...]:
    with engine.sa_engine.connect() as conn:
        return tuple(
            int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in (
                schema.workspaces,
                schema.members,
                schema.grants,
                schema.holds,
                schema.entries,
            )
        )


BAD_AMOUNTS = ["0", "-1", "NaN", "1.0000001", "1000000001", "1e30", 0.5]


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
def test_bad_amounts_change_nothing_anywhere(engine: Engine, amount: object) -> None:
    ws = engine.create_workspace("acme", plan="free")
    hold = engine.hold(ws.id, D("1"), key="h")
    before = snapshot(engine)
    calls = {
        "debit": lambda: engine.debit(ws.id, amount, key="k"),  # type: ignore[arg-type]
        "hold": lambda: engine.hold(ws.id, amount, key="k"),  # type: ignore[arg-type]
        "grant": lambda: engine.grant(ws.id, amount, kind="topup", key="k"),  # type: ignore[arg-type]
        "settle": lambda: engine.settle(hold.id, amount),  # type: ignore[arg-type]
    }
    if amount == "0":
        del calls["settle"]  # settling a step that cost nothing is legal
    for call in calls.values():
        with pytest.raises(InvalidInput) as error:
            call()
        assert str(error.value).endswith(".") and "\n" not in str(error.value)
    assert snapshot(engine) == before
    engine.verify(ws.id)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda e, ws: e.debit("ws_nope", D("1"), key="k"), NotFound),
        (lambda e, ws: e.balance("ws_nope"), NotFound),
        (lambda e, ws: e.create_workspace("beta", plan="gold"), NotFound),
        (lambda e, ws: e.set_plan(ws, "gold", by=None), NotFound),
        (lambda e, ws: e.set_plan(ws, "pro", by="mem_nope"), NotFound),
        (lambda e, ws: e.add_member(ws, "x@y.io", by="mem_nope"), NotFound),
        (lambda e, ws: e.settle(424242, D("1")), UnknownHold),
        (lambda e, ws: e.add_member(ws, "not-an-email"), InvalidInput),
        (lambda e, ws: e.add_member(ws, "x@y.io", role="owner"), InvalidInput),
        (lambda e, ws: e.create_workspace("acme"), AlreadyExists),
        (lambda e, ws: e.create_workspace("has space"), InvalidInput),
        (
            lambda e, ws: e.create_workspace(
                "later", period_start=datetime(2999, 1, 1, tzinfo=UTC)
            ),
            InvalidInput,
        ),
        (lambda e, ws: e.grant(ws, D("1"), kind="allowance", key="k"), InvalidInput),
        (lambda e, ws: e.grant(ws, D("1"), kind="topup", key=""), InvalidInput),
        (lambda e, ws: e.grant(ws, D("1"), kind="topup", key="k" * 201), InvalidInput),
        (lambda e, ws: e.hold(ws, D("1"), key="k", ttl=timedelta(0)), InvalidInput),
        (lambda e, ws: e.breakdown(ws, by=("colour",)), InvalidInput),
        (
            lambda e, ws: e.grant(
                ws, D("1"), kind="promo", key="k", expires_at=datetime(2000, 1, 1, tzinfo=UTC)
            ),
            InvalidInput,
        ),
    ],
)
def test_unknown_and_malformed_input_is_refused_and_changes_nothing(
    sqlite_engine: Engine, call: object, error: type[SpojitError]
) -> None:
    ws = sqlite_engine.create_workspace("acme", plan="free")
    before = snapshot(sqlite_engine)
    with pytest.raises(error) as raised:
        call(sqlite_engine, ws.id)  # type: ignore[operator]
    message = str(raised.value)
    assert message and "\n" not in message and message.rstrip(")").endswith(".")
    assert snapshot(sqlite_engine) == before


def test_a_member_where_an_admin_is_needed(engine: Engine) -> None:
    ws = engine.create_workspace("acme", plan="starter")
    bob = engine.add_member(ws.id, "bob@acme.io", role="member")
    other = engine.create_workspace("other", plan="free")
    eve = engine.add_member(other.id, "eve@other.io", role="admin")
    before = snapshot(engine)
    with pytest.raises(
        AdminRequired, match=r"Only a workspace admin may change the plan; bob@acme\.io"
    ):
        engine.set_plan(ws.id, "pro", by=bob.id)
    with pytest.raises(AdminRequired, match="add members"):
        engine.add_member(ws.id, "mallory@acme.io", by=bob.id)
    with pytest.raises(AdminRequired, match="another workspace"):
        engine.set_plan(ws.id, "pro", by=eve.id)
    assert snapshot(engine) == before
    assert engine.balance(ws.id).plan == "starter"


def test_member_tokens_are_stored_only_as_hashes(engine: Engine) -> None:
    ws = engine.create_workspace("acme", plan="free")
    ana = engine.add_member(ws.id, "Ana@Acme.io", role="admin")
    assert ana.token and ana.email == "ana@acme.io"
    with engine.sa_engine.connect() as conn:
        stored = conn.execute(select(schema.members.c.token_hash)).scalar_one()
    assert ana.token not in stored and len(stored) == 64
    assert engine.authenticate(ana.token).id == ana.id
    from spojit_engine.errors import Unauthorized

    with pytest.raises(Unauthorized):
        engine.authenticate(ana.token + "x")
