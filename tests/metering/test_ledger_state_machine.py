"""The ledger as a state machine: hypothesis drives the public ``Engine`` facade with random
sequences of grants, debits, holds, settles, releases, replayed and conflicting keys, sweeps and
clock jumps across billing periods, and after every step compares the ledger with a small
pure-Python model of the money rules (DESIGN.md §3, §8), on SQLite and on PostgreSQL.

The model (``WorkspaceModel``) is written from the rules, not from the engine's code:

- amounts are integers of µcr; the facade is handed ``Decimal(ucr).scaleb(-6)``;
- every grant is a block with its own ``remaining``; the burn order is priority ascending, then
  soonest expiry (a block that never expires last), then oldest ``effective_at``, then creation
  order (the grant id);
- available = spendable grants (effective, unexpired, not empty) - held - overdraft; a debit or
  hold above it is refused with ``InsufficientCredits`` and writes nothing;
- a settle posts the actual cost even when it exceeds what is left: the excess is an overdraft;
  the next grant (top-up or allowance) pays the overdraft first;
- a replayed key returns the first result and changes nothing; the same key for another amount,
  another operation or another workspace raises ``IdempotencyConflict`` and changes nothing;
- periods are anchored on ``period_start`` (day of month clamped at month end); each renewal
  grants the plan's allowance (``catalog.toml``) expiring at the period end; grants expire at
  ``expires_at``; a top-up with no expiry expires at the end of the 12-month plan term; holds
  time out and are voided (the sweeper, or lazily by the next operation);
- a run reservation (``reserve_run``, key ``reserve:{run}``) is a hold; a debit or hold of that
  run takes ``min(amount, open part)`` from it and the rest from what is available (refused
  whole when ``amount > available + take``); closing it, or its timeout, frees only the open
  part (what was drawn stays drawn).

After every step the invariant checks ``engine.verify(ws)`` (materialised balance == entries,
...), that no grant leaves ``[0, amount]``, that every grant (by key) matches the model's block
(which is how a wrong burn order shows), and that ``engine.balance`` (remaining, allowance /
top-up / other remaining, held, overdraft, consumed, period) and the per-workflow breakdown
(credits and number of calls: a replay or refusal that wrote an entry shows) equal the model's.
A second, bystander workspace is checked whenever time, a sweep or a borrowed key touched it.

Time: each example either injects a mutable clock (``Engine(clock=...)``) or runs the engine on
its default clock under ``freezegun`` (``freeze_time(...).move_to``); both are exercised.
Each example gets a fresh database: a copy of the migrated SQLite template, or the session's
PostgreSQL database truncated (as ``tests/conftest.py::_truncate`` does).

Each test first takes one fixed walk through the rules (``_scripted_walk``), so the rarer
situations (an overdraft paid by the next grant and allowance, a sweeper voiding a hold, a
top-up dying at the term end...) are checked on every run, then lets hypothesis loose, and
finally asserts that the examples and steps really ran.
"""

from __future__ import annotations

import calendar
import itertools
import os
import shutil
import tempfile
import tomllib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest
from freezegun import freeze_time
from hypothesis import HealthCheck, currently_in_test_context, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import text
from sqlalchemy.engine import make_url

import spojit_engine
from spojit_engine import (
    Engine,
    IdempotencyConflict,
    IllegalTransition,
    InsufficientCredits,
    InvalidInput,
    NotFound,
)
from spojit_engine.db import make_engine

UCR = 1_000_000
# DESIGN §3 / records.py: lower burns first (promo, allowance, adjustment, top-up).
DEFAULT_PRIORITY = {"promo": 0, "allowance": 10, "adjustment": 20, "topup": 30}
PLAN_A, PLAN_B = "free", "starter"
US = timedelta(microseconds=1)


# How much each backend runs: every step is one rule plus the full invariant (about 20 queries),
# ~15-20 ms a step on SQLite and ~30-40 ms on PostgreSQL on an idle 2-core machine, so the two
# runs (~600 and ~450 checked steps) together take about half a minute.
def _settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        stateful_step_count=40,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
        ],
    )


SQLITE_SETTINGS, POSTGRES_SETTINGS = _settings(16), _settings(12)
MIN_STEPS_PER_EXAMPLE = 12  # on average; a run that checked fewer steps fails

STATS: Counter[str] = Counter()
E = TypeVar("E", bound=Exception)


def _load_plans() -> dict[str, tuple[int, int]]:
    """plan id -> (allowance µcr, term months), read straight from the shipped catalog."""
    path = Path(spojit_engine.__file__).parent / "metering" / "core" / "catalog.toml"
    raw = tomllib.loads(path.read_text())
    return {
        plan_id: (int(Decimal(p["allowance_credits"]) * UCR), int(p["term_months"]))
        for plan_id, p in raw["plans"].items()
    }


PLANS = _load_plans()


def cr(ucr: int) -> Decimal:
    """µcr -> the Decimal credits the facade takes and returns."""
    return Decimal(ucr).scaleb(-6)


def add_months(anchor: datetime, months: int) -> datetime:
    """``anchor`` moved by whole months, the day clamped to the month's last day."""
    year, month0 = divmod(anchor.year * 12 + anchor.month - 1 + months, 12)
    day = min(anchor.day, calendar.monthrange(year, month0 + 1)[1])
    return anchor.replace(year=year, month=month0 + 1, day=day)


def period_index(anchor: datetime, moment: datetime) -> int:
    """The k of the period [anchor + k months, anchor + k+1 months) that holds ``moment``."""
    k = (moment.year - anchor.year) * 12 + moment.month - anchor.month + 1
    while add_months(anchor, k) > moment:
        k -= 1
    return k


# -- the model -----------------------------------------------------------------------------------


@dataclass
class MGrant:
    key: str
    kind: str
    amount: int
    remaining: int
    priority: int
    effective_at: datetime
    expires_at: datetime | None
    seq: int  # creation order == grant id order
    term_default: bool = False  # a top-up expiring at the plan term's end by default

    def burn_key(self) -> tuple[Any, ...]:
        never = self.expires_at is None
        return (
            self.priority,
            never,
            None if never else self.expires_at,
            self.effective_at,
            self.seq,
        )

    def view(self) -> tuple[Any, ...]:
        return (
            self.kind,
            cr(self.amount),
            cr(self.remaining),
            self.priority,
            self.effective_at,
            self.expires_at,
        )


@dataclass
class MHold:
    id: int
    key: str
    amount: int
    expires_at: datetime
    workflow: str | None
    test_run: bool
    state: str = "held"
    settled: int | None = None
    shortfall: int = 0
    frees: int = 0
    settle_entry_id: int | None = None
    drawn: int = 0  # a run reservation: what its run's charges took from it
    reservation: bool = False

    @property
    def open(self) -> int:
        return self.amount - self.drawn


@dataclass
class KeyUse:
    """What a written idempotency key did (keys are unique across the whole database)."""

    op: str  # grant | debit | hold
    ws: str
    amount: int
    kind: str | None = None
    result_id: int | None = None
    held: int = 0  # the entry's change to held (a draw on a run reservation)


_SEQ = itertools.count()


class WorkspaceModel:
    """One workspace's credits as the money rules say they must be."""

    def __init__(self, ws: str, plan: str, anchor: datetime) -> None:
        self.ws = ws
        self.plan = plan
        self.allowance, self.term_months = PLANS[plan]
        self.anchor = anchor
        self.k = 0
        self.grants: dict[str, MGrant] = {}
        self.holds: dict[int, MHold] = {}
        self.held = 0
        self.overdraft = 0
        self.usage: list[tuple[datetime, int, str | None, bool]] = []  # debits and settles
        self._grant_allowance()

    @property
    def period_start(self) -> datetime:
        return add_months(self.anchor, self.k)

    @property
    def period_end(self) -> datetime:
        return add_months(self.anchor, self.k + 1)

    def term_end(self, moment: datetime) -> datetime:
        term = period_index(self.anchor, moment) // self.term_months
        return add_months(self.anchor, (term + 1) * self.term_months)

    def add_grant(
        self,
        key: str,
        kind: str,
        amount: int,
        priority: int,
        effective_at: datetime,
        expires_at: datetime | None,
    ) -> MGrant:
        """A new block; it pays the outstanding overdraft first."""
        pays = min(amount, self.overdraft)
        if pays:
            STATS["overdraft_paid_by_grant"] += 1
        self.overdraft -= pays
        grant = MGrant(
            key, kind, amount, amount - pays, priority, effective_at, expires_at, next(_SEQ)
        )
        self.grants[key] = grant
        return grant

    def _grant_allowance(self) -> None:
        if self.allowance:
            start = self.period_start
            self.add_grant(
                f"allowance:{self.ws}:{start.isoformat()}",
                "allowance",
                self.allowance,
                DEFAULT_PRIORITY["allowance"],
                start,
                self.period_end,
            )

    def is_due(self, now: datetime) -> bool:
        return (
            self.period_end <= now
            or any(
                g.remaining > 0 and g.expires_at is not None and g.expires_at <= now
                for g in self.grants.values()
            )
            or any(h.state == "held" and h.expires_at <= now for h in self.holds.values())
        )

    def next_event(self) -> datetime:
        times = [self.period_end]
        times += [g.expires_at for g in self.grants.values() if g.remaining and g.expires_at]
        times += [h.expires_at for h in self.holds.values() if h.state == "held"]
        return min(times)

    def maintain(self, now: datetime) -> None:
        """What time did: renew each period that started (its allowance pays overdraft first),
        then expire grants, then time out holds."""
        while self.period_end <= now:
            self.k += 1
            STATS["renewal"] += 1
            self._grant_allowance()
        for g in self.grants.values():
            if g.remaining > 0 and g.expires_at is not None and g.expires_at <= now:
                STATS["grant_expired"] += 1
                STATS["topup_expired_at_term_end"] += g.term_default
                g.remaining = 0
        for h in self.holds.values():
            if h.state == "held" and h.expires_at <= now:
                STATS["hold_expired"] += 1
                h.state = "expired"
                STATS["reservation_expired"] += h.reservation
                self.held -= h.open

    def reservation(self, run: str | None) -> MHold | None:
        """The run's reservation while it is open."""
        return next(
            (
                h
                for h in self.holds.values()
                if h.reservation and h.key == f"reserve:{run}" and h.state == "held"
            ),
            None,
        )

    def draw(self, run: str | None, amount: int) -> tuple[MHold | None, int]:
        """(the run's open reservation, what it pays of ``amount``)."""
        res = self.reservation(run)
        return res, 0 if res is None else min(amount, res.open)

    def spendable(self, now: datetime) -> list[MGrant]:
        live = [
            g
            for g in self.grants.values()
            if g.remaining > 0
            and g.effective_at <= now
            and (g.expires_at is None or now < g.expires_at)
        ]
        return sorted(live, key=MGrant.burn_key)

    def available(self, now: datetime) -> int:
        return sum(g.remaining for g in self.spendable(now)) - self.held - self.overdraft

    def burn(self, now: datetime, amount: int) -> int:
        """Take ``amount`` from the spendable blocks in burn order; returns what was taken."""
        ordered = self.spendable(now)
        STATS["burn_order_decides"] += _takes(ordered, amount) != _takes(
            sorted(ordered, key=lambda g: (g.priority, -g.seq)), amount
        )
        left = amount
        for g in ordered:
            take = min(g.remaining, left)
            g.remaining -= take
            left -= take
        return amount - left

    def settle(self, now: datetime, hold: MHold, actual: int) -> None:
        hold.frees = hold.amount if hold.state == "held" else 0
        budget = self.available(now) + hold.frees
        paid = self.burn(now, min(actual, max(budget, 0)))
        hold.shortfall = actual - paid
        self.overdraft += hold.shortfall
        self.held -= hold.frees
        hold.state, hold.settled = "settled", actual
        self.usage.append((now, actual, hold.workflow, hold.test_run))

    def balance(self, now: datetime) -> dict[str, Any]:
        live = self.spendable(now)
        allowance = sum(g.remaining for g in live if g.kind == "allowance")
        topup = sum(g.remaining for g in live if g.kind == "topup")
        other = sum(g.remaining for g in live if g.kind not in ("allowance", "topup"))
        start = self.period_start
        return {
            "plan": self.plan,
            "consumed": cr(sum(a for t, a, _, _ in self.usage if t >= start)),
            "remaining": cr(allowance + topup + other - self.held - self.overdraft),
            "allowance_remaining": cr(allowance),
            "topup_remaining": cr(topup),
            "other_remaining": cr(other),
            "held": cr(self.held),
            "overdraft": cr(self.overdraft),
            "period_start": start,
            "resets_at": self.period_end,
        }

    def breakdown(self) -> dict[tuple[str | None, bool], tuple[Decimal, int]]:
        rows: dict[tuple[str | None, bool], list[int]] = {}
        for t, amount, workflow, test_run in self.usage:
            if t >= self.period_start:
                row = rows.setdefault((workflow, test_run), [0, 0])
                row[0] += amount
                row[1] += 1
        return {k: (cr(v[0]), v[1]) for k, v in rows.items()}


def _takes(ordered: list[MGrant], amount: int) -> dict[str, int]:
    """What paying ``amount`` in this order would take from each block."""
    takes, left = {}, amount
    for g in ordered:
        takes[g.key] = min(g.remaining, left)
        left -= takes[g.key]
    return takes


@dataclass
class Call:
    """A user operation as it was first made, for replays."""

    op: str
    key: str
    model: WorkspaceModel
    args: dict[str, Any] = field(default_factory=dict)


# -- strategies ----------------------------------------------------------------------------------


def amounts(max_credits: int) -> st.SearchStrategy[int]:
    """µcr: whole credits, any µcr amount, and a few edge values."""
    return st.one_of(
        st.integers(1, max_credits).map(lambda c: c * UCR),
        st.integers(1, max_credits * UCR),
        st.sampled_from([1, UCR // 2, UCR - 1, UCR + 1]),
    )


def spend_amounts(max_credits: int) -> st.SearchStrategy[tuple[str, int]]:
    """An absolute µcr amount, or "what is available" +-1 µcr (the refusal boundary)."""
    return st.one_of(
        amounts(max_credits).map(lambda u: ("abs", u)),
        st.sampled_from([-1, 0, 1]).map(lambda d: ("available", d)),
    )


def _anchor(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    day = min(day, calendar.monthrange(year, month)[1])
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


anchors = st.builds(
    _anchor,
    year=st.sampled_from([2024, 2025]),
    month=st.integers(1, 12),
    day=st.sampled_from([1, 15, 28, 29, 30, 31]),
    hour=st.sampled_from([0, 9, 23]),
    minute=st.sampled_from([0, 30]),
)
seconds = st.integers(1, 7_200).map(lambda s: timedelta(seconds=s))
days = st.integers(1, 400).map(lambda d: timedelta(days=d))
ttls = st.one_of(
    st.sampled_from([timedelta(seconds=1), timedelta(minutes=10), timedelta(hours=1)]),
    seconds,
    st.integers(1, 3).map(lambda d: timedelta(days=d)),
)
workflows = st.sampled_from(["leads", "digest", None])
runs = st.sampled_from(["r1", "r2"])
maybe_runs = st.sampled_from([None, None, "r1", "r2"])
jumps = st.one_of(
    st.tuples(st.just("delta"), seconds),
    st.tuples(st.just("delta"), st.integers(1, 96).map(lambda h: timedelta(hours=h))),
    st.tuples(st.just("delta"), st.integers(1, 45).map(lambda d: timedelta(days=d))),
    st.tuples(st.just("months"), st.integers(1, 14)),
    st.tuples(st.just("period_end"), st.sampled_from([-US, timedelta(0), US, timedelta(hours=1)])),
    st.tuples(
        st.just("next_event"), st.sampled_from([-US, timedelta(0), US, timedelta(seconds=1)])
    ),
)
grant_args = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["topup", "promo", "adjustment"]),
        "amount": amounts(30),
        "priority": st.one_of(st.none(), st.sampled_from([0, 5, 10, 20, 30, 40])),
        # offsets from now; resolved when the rule runs
        "effective": st.one_of(
            st.none(),
            st.none(),
            st.integers(-10 * 24, 10 * 24).map(lambda h: timedelta(hours=h)),
        ),
        "expires": st.sampled_from(["none", "none", "seconds", "days", "days", "bad"]).flatmap(
            lambda how: {
                "none": st.none(),
                "seconds": seconds,
                "days": days,
                # invalid: not after it takes effect (InvalidInput, nothing written)
                "bad": st.sampled_from([timedelta(0), -timedelta(seconds=1)]),
            }[how]
        ),
    }
)
settle_hows = st.sampled_from(
    ["zero", "less", "exact", "more", "budget", *["over_budget"] * 3, "again", "differ"]
)  # overdrafts, and the grants that pay them, must happen often
THEN = ["check", "check", "sweep", "debit", "hold", "grant"]


# -- the machine ---------------------------------------------------------------------------------


class LedgerMachine(RuleBasedStateMachine):
    """Drives one Engine over a fresh database; ``fresh_database`` is set per backend."""

    fresh_database: Callable[[], str]
    holds = Bundle("holds")
    engine: Engine
    now: datetime
    a: WorkspaceModel  # the workspace every rule works on
    b: WorkspaceModel  # a bystander: only time, sweeps and borrowed keys touch it

    def __init__(self) -> None:
        super().__init__()
        self.freezer: Any = None
        self._freeze: Any = None
        self.registry: dict[str, KeyUse] = {}
        self.calls: list[Call] = []
        self.keys = itertools.count()
        self.b_stale = True

    # -- setup and time ------------------------------------------------------------------------

    @initialize(
        anchor=anchors,
        offset=st.one_of(
            st.just(timedelta(0)), st.integers(0, 70 * 24 * 60).map(lambda m: timedelta(minutes=m))
        ),
        use_freezegun=st.booleans(),
    )
    def open_ledger(self, anchor: datetime, offset: timedelta, use_freezegun: bool) -> None:
        STATS["examples"] += 1
        url = type(self).fresh_database()
        self.now = anchor + offset
        if use_freezegun:
            STATS["freezegun_examples"] += 1
            self._freeze = freeze_time(self.now, tick=False)
            self.freezer = self._freeze.start()
            self.engine = Engine(url)  # the default clock: spojit_engine.clock.utcnow
        else:
            self.engine = Engine(url, clock=lambda: self.now)
        anchor_b = self.now - timedelta(days=3)
        ws_a = self.engine.create_workspace("acme", plan=PLAN_A, period_start=anchor).id
        ws_b = self.engine.create_workspace("bystander", plan=PLAN_B, period_start=anchor_b).id
        self.a = WorkspaceModel(ws_a, PLAN_A, anchor)
        self.b = WorkspaceModel(ws_b, PLAN_B, anchor_b)
        self.a.maintain(self.now)
        self.b.maintain(self.now)

    def teardown(self) -> None:
        if self._freeze is not None:
            self._freeze.stop()
        if hasattr(self, "engine"):
            STATS["debits_by_fast_path"] += self.engine.ledger.fast_debit.answered
            self.engine.close()

    def _set_now(self, moment: datetime) -> None:
        moment = max(moment, self.now)  # time never runs backwards
        STATS["clock_moves"] += moment > self.now
        self.now = moment
        if self.freezer is not None:
            self.freezer.move_to(moment)
        if currently_in_test_context():  # not in the scripted walk
            note(f"now = {moment.isoformat()}")

    def _amount(self, spec: tuple[str, int]) -> int:
        how, value = spec
        if how == "abs":
            return value
        self.a.maintain(self.now)
        return max(1, self.a.available(self.now) + value)

    def _fresh_key(self) -> str:
        return f"k{next(self.keys)}"

    def _target(self, jump: tuple[str, Any]) -> datetime:
        how, value = jump
        if how == "delta":
            return self.now + value
        if how == "months":
            return add_months(self.now, value)
        if how == "period_end":
            return self.a.period_end + value
        return self.a.next_event() + value

    # -- operations: predict with the model, call the engine, compare ------------------------

    def _expect(self, error: type[E], call: Callable[[], Any]) -> E:
        with pytest.raises(error) as raised:
            call()
        STATS[error.__name__] += 1
        return raised.value

    def _replay_or_conflict(self, use: KeyUse, same: bool, call: Callable[[], Any]) -> Any | None:
        if same:
            result = call()
            assert result.replayed, result
            assert result.id == use.result_id, (result, use)
            STATS["replayed"] += 1
            return result
        self._expect(IdempotencyConflict, call)
        return None

    def _grant(self, m: WorkspaceModel, key: str, a: dict[str, Any]) -> None:
        now = self.now
        m.maintain(now)
        kind, amount = a["kind"], a["amount"]
        effective_at, expires_at = a["effective_at"], a["expires_at"]

        def call() -> Any:
            return self.engine.grant(
                m.ws,
                cr(amount),
                kind=kind,
                key=key,
                expires_at=expires_at,
                priority=a["priority"],
                effective_at=effective_at,
            )

        use = self.registry.get(key)
        if use is not None:
            same = (use.op, use.ws, use.kind, use.amount) == ("grant", m.ws, kind, amount)
            got = self._replay_or_conflict(use, same, call)
            if got is not None:
                fields = (got.kind, got.amount, got.remaining, got.priority)
                times = (got.effective_at, got.expires_at)
                assert (got.key, *fields, *times) == (key, *m.grants[key].view()), got
            return
        effective = effective_at or now
        expires = expires_at
        if expires is None and kind == "topup":
            expires = m.term_end(effective)
        if expires is not None and expires <= effective:
            self._expect(InvalidInput, call)
            return
        got = call()
        priority = DEFAULT_PRIORITY[kind] if a["priority"] is None else a["priority"]
        mg = m.add_grant(key, kind, amount, priority, effective, expires)
        mg.term_default = expires_at is None and expires is not None
        self.registry[key] = KeyUse("grant", m.ws, amount, kind, got.id)
        assert not got.replayed
        assert (got.key, got.kind, got.amount, got.remaining, got.priority) == (
            key,
            kind,
            cr(amount),
            cr(mg.remaining),
            priority,
        ), (got, mg)
        assert (got.effective_at, got.expires_at) == (effective, expires), (got, mg)
        STATS["grant"] += 1

    def _debit(self, m: WorkspaceModel, key: str, a: dict[str, Any]) -> None:
        now = self.now
        m.maintain(now)
        amount = a["amount"]

        def call() -> Any:
            return self.engine.debit(
                m.ws,
                cr(amount),
                key=key,
                workflow=a["workflow"],
                test_run=a["test_run"],
                flow_run_id=a.get("run"),
            )

        use = self.registry.get(key)
        if use is not None:
            same = (use.op, use.ws, use.amount) == ("debit", m.ws, amount)
            got = self._replay_or_conflict(use, same, call)
            if got is not None:
                assert (got.kind, got.amount, got.held, got.overdraft) == (
                    "debit",
                    -cr(amount),
                    cr(use.held),
                    0,
                ), got
            return
        res, take = m.draw(a.get("run"), amount)
        available = m.available(now) + take
        if amount > available:
            refused = self._expect(InsufficientCredits, call)
            assert (refused.needed, refused.available) == (cr(amount), cr(max(available, 0)))
            STATS["draw_refused"] += res is not None
            return
        got = call()
        assert m.burn(now, amount) == amount
        if res is not None:
            res.drawn += take
            m.held -= take
            STATS["draw"] += 1
            STATS["draw_beyond_reservation"] += take < amount
        m.usage.append((now, amount, a["workflow"], a["test_run"]))
        self.registry[key] = KeyUse("debit", m.ws, amount, result_id=got.id, held=-take)
        assert (got.kind, got.amount, got.held, got.overdraft, got.replayed) == (
            "debit",
            -cr(amount),
            -cr(take),
            0,
            False,
        ), got
        STATS["debit"] += 1

    def _hold(self, m: WorkspaceModel, key: str, a: dict[str, Any]) -> int | None:
        """The new hold's id when one was created in workspace A."""
        now = self.now
        m.maintain(now)
        amount, ttl = a["amount"], a["ttl"]

        def call() -> Any:
            return self.engine.hold(
                m.ws,
                cr(amount),
                key=key,
                ttl=ttl,
                workflow=a["workflow"],
                test_run=a["test_run"],
                flow_run_id=a.get("run"),
            )

        use = self.registry.get(key)
        if use is not None:
            same = (use.op, use.ws, use.amount) == ("hold", m.ws, amount)
            got = self._replay_or_conflict(use, same, call)
            if got is not None:
                h = m.holds[got.id]
                settled = None if h.settled is None else cr(h.settled)
                assert (got.key, got.amount, got.state, got.settled, got.expires_at) == (
                    key,
                    cr(amount),
                    h.state,
                    settled,
                    h.expires_at,
                ), (got, h)
            return None
        res, take = m.draw(a.get("run"), amount)
        available = m.available(now) + take
        if amount > available:
            refused = self._expect(InsufficientCredits, call)
            assert (refused.needed, refused.available) == (cr(amount), cr(max(available, 0)))
            return None
        got = call()
        if res is not None:
            res.drawn += take
            m.held -= take
            STATS["hold_from_reservation"] += 1
        assert (got.key, got.amount, got.state, got.expires_at, got.replayed) == (
            key,
            cr(amount),
            "held",
            now + ttl,
            False,
        ), got
        m.holds[got.id] = MHold(got.id, key, amount, now + ttl, a["workflow"], a["test_run"])
        m.held += amount
        self.registry[key] = KeyUse("hold", m.ws, amount, result_id=got.id)
        STATS["hold"] += 1
        return got.id if m is self.a else None

    def _settle(self, hold_id: int, actual: int) -> None:
        m, now = self.a, self.now
        m.maintain(now)
        h = m.holds[hold_id]

        def call() -> Any:
            return self.engine.settle(hold_id, cr(actual))

        if h.state == "settled":
            if actual == h.settled:
                got = call()
                assert (got.id, got.replayed, got.amount, got.held, got.overdraft) == (
                    h.settle_entry_id,
                    True,
                    -cr(actual),
                    -cr(h.frees),
                    cr(h.shortfall),
                ), (got, h)
                STATS["replayed"] += 1
            else:
                self._expect(IdempotencyConflict, call)
            return
        if h.state == "released":
            self._expect(IllegalTransition, call)
            return
        STATS["late_settle" if h.state == "expired" else "settle"] += 1
        STATS["settle_zero"] += actual == 0
        STATS["settle_above_hold"] += actual > h.amount
        m.settle(now, h, actual)
        STATS["overdraft"] += h.shortfall > 0
        got = call()
        h.settle_entry_id = got.id
        assert (got.kind, got.amount, got.held, got.overdraft, got.replayed) == (
            "settle",
            -cr(actual),
            -cr(h.frees),
            cr(h.shortfall),
            False,
        ), (got, h)

    def _release(self, hold_id: int) -> None:
        m, now = self.a, self.now
        m.maintain(now)
        h = m.holds[hold_id]

        def call() -> Any:
            return self.engine.release(hold_id)

        if h.state in ("settled", "expired"):
            self._expect(IllegalTransition, call)
            return
        if h.state == "held":
            h.state = "released"
            m.held -= h.open
            STATS["release"] += 1
        else:
            STATS["release_again"] += 1
        got = call()
        assert (got.id, got.state, got.amount) == (hold_id, "released", cr(h.amount)), got

    def _reserve(self, run: str, amount: int, ttl: timedelta) -> None:
        m, now, key = self.a, self.now, f"reserve:{run}"
        m.maintain(now)

        def call() -> Any:
            return self.engine.reserve_run(m.ws, cr(amount), flow_run_id=run, ttl=ttl)

        use = self.registry.get(key)
        if use is not None:
            same = (use.op, use.ws, use.amount) == ("reserve", m.ws, amount)
            got = self._replay_or_conflict(use, same, call)
            if got is not None:
                h = m.holds[got.id]
                settled = cr(h.drawn) if h.drawn else None
                assert (got.key, got.state, got.settled) == (key, h.state, settled), (got, h)
            return
        available = m.available(now)
        if amount > available:
            refused = self._expect(InsufficientCredits, call)
            assert (refused.needed, refused.available) == (cr(amount), cr(max(available, 0)))
            return
        got = call()
        assert (got.key, got.amount, got.state, got.expires_at) == (
            key,
            cr(amount),
            "held",
            now + ttl,
        ), got
        m.holds[got.id] = MHold(got.id, key, amount, now + ttl, None, False, reservation=True)
        m.held += amount
        self.registry[key] = KeyUse("reserve", m.ws, amount, result_id=got.id)
        STATS["reserve"] += 1

    def _close(self, run: str) -> None:
        m, now, key = self.a, self.now, f"reserve:{run}"
        m.maintain(now)
        got = self.engine.close_run_reservation(run)
        use = self.registry.get(key)
        if use is None:
            assert got is None, got
            return
        h = m.holds[use.result_id or 0]
        if h.state == "held":
            h.state = "settled" if h.drawn else "released"
            m.held -= h.open
            STATS["reservation_closed"] += 1
        settled = cr(h.drawn) if h.drawn else None
        assert (got.id, got.state, got.settled) == (h.id, h.state, settled), (got, h)

    def _sweep(self) -> None:
        now = self.now
        due = {m.ws for m in (self.a, self.b) if m.is_due(now)}
        touched = self.engine.sweep()
        assert due <= set(touched), (due, touched)
        STATS["sweep_touched"] += len(touched)
        for m in (self.a, self.b):
            m.maintain(now)
        assert self.engine.sweep() == []  # nothing can be due right after a sweep
        self.b_stale = True

    def _do(self, op: str, m: WorkspaceModel, key: str, args: dict[str, Any]) -> int | None:
        if m is self.b:
            self.b_stale = True
        if op == "grant":
            self._grant(m, key, args)
        elif op == "debit":
            self._debit(m, key, args)
        else:
            return self._hold(m, key, args)
        return None

    def _new(self, op: str, args: dict[str, Any]) -> Any:
        """A fresh-key operation on workspace A, remembered for replays; returns to ``holds``."""
        key = self._fresh_key()
        self.calls.append(Call(op, key, self.a, args))
        hold_id = self._do(op, self.a, key, args)
        return multiple() if hold_id is None else multiple(hold_id)

    # -- rules ---------------------------------------------------------------------------------

    @rule(args=grant_args)
    def grant(self, args: dict[str, Any]) -> None:
        """A top-up, promo or adjustment; maybe back- or post-dated, expiring, prioritised."""
        effective, expires = args["effective"], args["expires"]
        effective_at = None if effective is None else self.now + effective
        expires_at = None if expires is None else (effective_at or self.now) + expires
        fixed = {"effective_at": effective_at, "expires_at": expires_at}
        plain = {name: args[name] for name in ("kind", "amount", "priority")}
        self._new("grant", {**plain, **fixed})

    @rule(
        blocks=st.lists(
            st.tuples(
                st.sampled_from(["topup", "promo", "adjustment"]),
                st.sampled_from([None, 0, 10, 30]),
                amounts(10),
                st.integers(0, 72),  # effective this many hours ago: oldest first on a tie
            ),
            min_size=2,
            max_size=4,
        ),
        expiry=st.sampled_from(["default", "shared", "mixed"]),
        per_mille=st.integers(1, 999),
    )
    def burn_order_probe(
        self, blocks: list[tuple[str, int | None, int, int]], expiry: str, per_mille: int
    ) -> None:
        """Blocks that tie on priority and on expiry (or never expire, or differ only there),
        then a debit of part of what is available: which blocks pay is the burn order."""
        for i, (kind, priority, amount, hours) in enumerate(blocks):
            expires_at = {
                "default": None,  # top-ups: the term end, the same for all of them
                "shared": self.now + timedelta(days=1),
                "mixed": [None, self.now + timedelta(days=1), self.now + timedelta(days=2)][i % 3],
            }[expiry]
            args = {"kind": kind, "amount": amount, "priority": priority, "expires_at": expires_at}
            self._new("grant", {**args, "effective_at": self.now - timedelta(hours=hours)})
        self.a.maintain(self.now)
        part = self.a.available(self.now) * per_mille // 1000
        self._new("debit", {"amount": max(part, 1), "workflow": None, "test_run": False})

    @rule(amount=spend_amounts(60), workflow=workflows, test_run=st.booleans(), run=maybe_runs)
    def debit(
        self, amount: tuple[str, int], workflow: str | None, test_run: bool, run: str | None
    ) -> None:
        args = {"amount": self._amount(amount), "workflow": workflow, "test_run": test_run}
        self._new("debit", {**args, "run": run})

    @rule(
        target=holds,
        amount=spend_amounts(60),
        ttl=ttls,
        workflow=workflows,
        test_run=st.booleans(),
        run=maybe_runs,
    )
    def hold(
        self,
        amount: tuple[str, int],
        ttl: timedelta,
        workflow: str | None,
        test_run: bool,
        run: str | None,
    ) -> Any:
        args = {"amount": self._amount(amount), "workflow": workflow, "test_run": test_run}
        return self._new("hold", {**args, "ttl": ttl, "run": run})

    @rule(run=runs, amount=spend_amounts(20), ttl=ttls)
    def reserve_run(self, run: str, amount: tuple[str, int], ttl: timedelta) -> None:
        """A run reservation (or its replay / a conflicting one for the same run)."""
        self._reserve(run, self._amount(amount), ttl)

    @rule(run=runs)
    def close_run(self, run: str) -> None:
        self._close(run)

    def _actual(self, hold_id: int, how: str, extra: int) -> int:
        """A settle amount: 0, below, at or above the hold, exactly what the ledger can pay (the
        hold's credits if it is still held, plus what is available) or beyond it (an overdraft);
        for a settled hold, its amount again (replay) or another one (conflict)."""
        self.a.maintain(self.now)
        h = self.a.holds[hold_id]
        budget = (h.amount if h.state == "held" else 0) + max(self.a.available(self.now), 0)
        if how == "again" and h.settled is not None:
            return h.settled
        if how == "differ" and h.settled is not None:
            return h.settled + 1
        return {
            "zero": 0,
            "less": extra % h.amount,
            "more": h.amount + extra + 1,
            "budget": budget,
            "over_budget": budget + 1 + extra,
        }.get(how, h.amount)

    @rule(hold=holds, how=settle_hows, extra=st.integers(0, 60 * UCR))
    def settle(self, hold: int, how: str, extra: int) -> None:
        self._settle(hold, self._actual(hold, how, extra))

    @rule(
        target=holds,
        amount=spend_amounts(20),
        ttl=ttls,
        how=st.one_of(settle_hows, st.sampled_from(["release", "leave_open"])),
        extra=st.integers(0, 60 * UCR),
        workflow=workflows,
    )
    def metered_call(
        self, amount: tuple[str, int], ttl: timedelta, how: str, extra: int, workflow: str | None
    ) -> Any:
        """What the meter does around an LLM step: hold the maximum cost, then settle the
        actual cost, or release the hold (the step did not run), or leave it open (to time out)."""
        key = self._fresh_key()
        args = {"amount": self._amount(amount), "ttl": ttl, "workflow": workflow, "test_run": False}
        self.calls.append(Call("hold", key, self.a, args))
        hold_id = self._hold(self.a, key, args)
        if hold_id is None:
            return multiple()
        if how == "release":
            self._release(hold_id)
        elif how != "leave_open":
            self._settle(hold_id, self._actual(hold_id, how, extra))
        return multiple(hold_id)

    @rule(hold=holds)
    def release(self, hold: int) -> None:
        self._release(hold)

    @precondition(lambda self: bool(self.calls))
    @rule(
        target=holds,
        data=st.data(),
        variation=st.sampled_from(["same", "same", "other_amount", "other_op", "other_workspace"]),
    )
    def reuse_key(self, data: st.DataObject, variation: str) -> Any:
        """Replay a used key (nothing changes), or reuse it for something else (conflict, nothing
        changes); a key whose first call was refused or invalid is a fresh attempt."""
        c = data.draw(st.sampled_from(self.calls), label="call")
        op, m, args = c.op, c.model, dict(c.args)
        if variation == "other_amount":
            args["amount"] += data.draw(st.sampled_from([1, UCR]), label="delta")
        elif variation == "other_op":
            op = {"grant": "debit", "debit": "hold", "hold": "grant"}[op]
            args = {
                "kind": "topup",
                "priority": None,
                "effective_at": None,
                "expires_at": None,
                "ttl": timedelta(minutes=10),
                "workflow": None,
                "test_run": False,
                "amount": args["amount"],
            }
        elif variation == "other_workspace":
            m = self.b if m is self.a else self.a
        STATS[f"reuse_{variation}"] += 1
        hold_id = self._do(op, m, c.key, args)
        return multiple() if hold_id is None else multiple(hold_id)

    @rule(
        target=holds,
        jump=jumps,
        then=st.sampled_from(THEN),
        amount=spend_amounts(60),
    )
    def advance_clock(self, jump: tuple[str, Any], then: str, amount: tuple[str, int]) -> Any:
        """Jump (across period ends, term ends, expiries), then let one thing meet the new time:
        the invariant's reads, the sweeper, or a debit / hold / default top-up."""
        self._set_now(self._target(jump))
        return self._after_jump(then, amount)

    def _after_jump(self, then: str, spec: tuple[str, int]) -> Any:
        if then == "sweep":
            self._sweep()
        elif then == "debit":
            args = {"amount": self._amount(spec), "workflow": "leads", "test_run": False}
            return self._new("debit", args)
        elif then == "hold":
            args = {"amount": self._amount(spec), "ttl": timedelta(minutes=10), "workflow": None}
            return self._new("hold", {**args, "test_run": True})
        elif then == "grant":
            args = {"kind": "topup", "priority": None, "effective_at": None, "expires_at": None}
            return self._new("grant", {**args, "amount": self._amount(spec)})
        return multiple()

    @rule(
        target=holds,
        hold=holds,
        eps=st.sampled_from([-US, timedelta(0), timedelta(0), US, timedelta(seconds=1)]),
        then=st.sampled_from(["settle", "release", *THEN]),
        amount=spend_amounts(60),
    )
    def jump_to_hold_expiry(
        self, hold: int, eps: timedelta, then: str, amount: tuple[str, int]
    ) -> Any:
        """Land on either side of a hold's timeout, then settle / release it or do anything."""
        self._set_now(self.a.holds[hold].expires_at + eps)
        if then == "settle":
            self._settle(hold, self._amount(amount))
            return multiple()
        if then == "release":
            self._release(hold)
            return multiple()
        return self._after_jump(then, amount)

    @rule()
    def sweep(self) -> None:
        self._sweep()

    @rule(
        which=st.sampled_from(
            [
                "zero",
                "negative",
                "seven_decimals",
                "float",
                "empty_key",
                "ttl_zero",
                "ttl_negative",
                "kind_allowance",
                "kind_unknown",
                "settle_negative",
                "unknown_hold",
            ]
        )
    )
    def bad_input(self, which: str) -> None:
        """Refused before anything is written: the invariant sees an unchanged ledger."""
        e, ws, key = self.engine, self.a.ws, self._fresh_key()
        calls: dict[str, Callable[[], Any]] = {
            "zero": lambda: e.debit(ws, Decimal(0), key=key),
            "negative": lambda: e.hold(ws, Decimal("-1"), key=key),
            "seven_decimals": lambda: e.debit(ws, Decimal("0.0000001"), key=key),
            "float": lambda: e.grant(ws, 1.5, kind="topup", key=key),  # type: ignore[arg-type]
            "empty_key": lambda: e.debit(ws, Decimal(1), key=""),
            "ttl_zero": lambda: e.hold(ws, Decimal(1), key=key, ttl=timedelta(0)),
            "ttl_negative": lambda: e.hold(ws, Decimal(1), key=key, ttl=-US),
            "kind_allowance": lambda: e.grant(ws, Decimal(1), kind="allowance", key=key),
            "kind_unknown": lambda: e.grant(ws, Decimal(1), kind="gift", key=key),
            "settle_negative": lambda: e.settle(1, Decimal("-0.5")),
            "unknown_hold": lambda: e.settle(10**9, Decimal(1)),
        }
        self._expect(NotFound if which == "unknown_hold" else InvalidInput, calls[which])

    # -- the invariant -------------------------------------------------------------------------

    @invariant()
    def ledger_matches_model(self) -> None:
        STATS["steps"] += 1
        # credits == sum(entries), held, overdraft, every grant == its postings, ...
        assert self.engine.verify(self.a.ws) == 1
        self._check(self.a, breakdown=True)
        if self.b_stale or self.b.is_due(self.now):  # it changes only with time, sweeps
            # and borrowed keys
            assert self.engine.verify(self.b.ws) == 1
            self._check(self.b, breakdown=False)
            self.b_stale = False

    def _check(self, m: WorkspaceModel, *, breakdown: bool) -> None:
        balance = self.engine.balance(m.ws)  # brings the workspace up to date, lazily
        m.maintain(self.now)
        expected = m.balance(self.now)
        actual = {name: getattr(balance, name) for name in expected}
        assert actual == expected, _diff(actual, expected)

        grants = self.engine.grants(m.ws)
        assert all(0 <= g.remaining <= g.amount for g in grants), grants
        got = {
            g.key: (g.kind, g.amount, g.remaining, g.priority, g.effective_at, g.expires_at)
            for g in grants
        }
        want = {key: g.view() for key, g in m.grants.items()}
        assert got == want, _diff(got, want)
        # Grant ids follow creation order: the model's last tie-break is the engine's id.
        in_model_order = sorted(m.grants.values(), key=lambda g: g.seq)
        assert [g.key for g in grants] == [g.key for g in in_model_order]

        if breakdown:
            rows = self.engine.breakdown(m.ws, by=("workflow",), since=m.period_start)
            got_rows = {(r.workflow, r.test_run): (r.credits, r.calls) for r in rows}
            want_rows = m.breakdown()
            assert got_rows == want_rows, _diff(got_rows, want_rows)


def _diff(actual: dict[Any, Any], expected: dict[Any, Any]) -> str:
    keys = sorted(set(actual) | set(expected), key=repr)
    return "; ".join(
        f"{k!r}: engine {actual.get(k)!r} != model {expected.get(k)!r}"
        for k in keys
        if actual.get(k) != expected.get(k)
    )


# -- the two backends ----------------------------------------------------------------------------


def _scripted_walk(machine: type[LedgerMachine]) -> None:
    """One fixed walk through the machine's rules, the invariant after every step, so that the
    rarer situations happen on every run whatever hypothesis draws: an overdraft paid by the
    next grant and the next allowance, a renewal on a clamped Feb 29, a hold voided by the
    sweeper and settled late, a hold timing out at exactly its expiry, a top-up expiring at the
    plan term's end, replays and conflicts across workspaces, refusals by one µcr."""
    STATS.clear()
    m = machine()
    try:
        # Anchor Jan 31 09:30 (2024, a leap year); now Feb 20; the period ends Feb 29 09:30.
        m.open_ledger(datetime(2024, 1, 31, 9, 30, tzinfo=UTC), timedelta(days=20), True)
        m.ledger_matches_model()

        def step(result: Any = None) -> Any:
            m.ledger_matches_model()
            return None if result is None else (result.values or [None])[0]

        def grant(kind: str, credits: int, **args: Any) -> None:
            base = {"priority": None, "effective": None, "expires": None}
            step(m.grant({**base, **args, "kind": kind, "amount": credits * UCR}))

        def call(credits: int, ttl: timedelta, how: str, extra: int = 0) -> Any:
            return step(m.metered_call(("abs", credits * UCR), ttl, how, extra, "digest"))

        grant("promo", 5, expires=timedelta(days=1))
        grant("topup", 10)  # expires at the term end, Jan 31 2025 09:30
        grant("adjustment", 3, priority=0, effective=-timedelta(days=2))
        step(m.debit(("abs", 7 * UCR), "leads", False, None))  # promo 5, then adjustment 2
        first = call(50, timedelta(minutes=10), "leave_open")
        step(m.debit(("available", 1), None, True, None))  # refused by one µcr
        step(m.debit(("available", 0), None, True, None))  # takes exactly what is left
        exact = m.calls[-1]
        m._do("debit", m.a, exact.key, exact.args)  # replayed
        step()
        m._do("debit", m.a, exact.key, {**exact.args, "amount": exact.args["amount"] + 1})
        step()  # IdempotencyConflict
        m._do("debit", m.b, exact.key, exact.args)  # the same call in another workspace
        step()
        step(m.settle(first, "over_budget", 2 * UCR))  # an overdraft of 2.000001
        grant("topup", 1)  # pays 1 credit of the overdraft, keeps nothing
        step(m.advance_clock(("period_end", timedelta(0)), "check", ("abs", 1)))  # allowance pays
        grant("topup", 20)  # alive when the term ends
        late = call(5, timedelta(seconds=1), "leave_open")
        step(m.advance_clock(("delta", timedelta(seconds=2)), "sweep", ("abs", 1)))
        step(m.settle(late, "exact", 0))  # a late settle of a voided hold
        step(m.release(late))  # IllegalTransition
        released = call(4, timedelta(minutes=10), "release")
        step(m.release(released))  # releasing twice is a no-op
        timed_out = call(3, timedelta(minutes=10), "leave_open")
        step(m.jump_to_hold_expiry(timed_out, timedelta(0), "settle", ("abs", 4 * UCR)))
        step(m.advance_clock(("months", 12), "grant", ("abs", 2 * UCR)))  # past the term end
        step(m.bad_input("ttl_zero"))
        grant("topup", 40)
        step(m.reserve_run("r1", ("abs", 10 * UCR), timedelta(hours=1)))
        step(m.reserve_run("r1", ("abs", 10 * UCR), timedelta(hours=1)))  # replayed
        step(m.debit(("abs", 4 * UCR), "leads", False, "r1"))  # drawn from the reservation
        step(m.hold(("abs", 5 * UCR), timedelta(minutes=10), "digest", False, "r1"))
        step(m.debit(("abs", 3 * UCR), "leads", False, "r1"))  # 1 from it, 2 from free credits
        step(m.debit(("available", 1), None, False, "r1"))  # refused by one µcr
        step(m.close_run("r1"))
        step(m.close_run("r1"))  # closing twice is a no-op
        step(m.reserve_run("r2", ("abs", 6 * UCR), timedelta(seconds=30)))
        step(m.debit(("abs", 2 * UCR), "leads", False, "r2"))
        step(m.advance_clock(("delta", timedelta(seconds=31)), "sweep", ("abs", 1)))  # voided
        step(m.debit(("abs", UCR), "leads", False, "r2"))  # no open reservation: free credits
        step(m.close_run("r2"))
    finally:
        m.teardown()
    for situation in (
        "grant",
        "debit",
        "hold",
        "settle",
        "late_settle",
        "release",
        "release_again",
        "InsufficientCredits",
        "IdempotencyConflict",
        "IllegalTransition",
        "InvalidInput",
        "replayed",
        "renewal",
        "grant_expired",
        "hold_expired",
        "overdraft",
        "overdraft_paid_by_grant",
        "topup_expired_at_term_end",
        "sweep_touched",
        "reserve",
        "draw",
        "draw_beyond_reservation",
        "draw_refused",
        "hold_from_reservation",
        "reservation_closed",
        "reservation_expired",
    ):
        assert STATS[situation] > 0, f"the scripted walk never had {situation}: {STATS}"


def _run(fresh_database: Callable[[], str], name: str, config: settings) -> None:
    machine = type(name, (LedgerMachine,), {"fresh_database": staticmethod(fresh_database)})
    _scripted_walk(machine)
    STATS.clear()
    run_state_machine_as_test(machine, settings=config)
    print(f"\n{name}: {dict(sorted(STATS.items()))}")
    # The run must not pass vacuously: the examples and their steps really ran and were checked,
    # and the everyday operations really happened (the rarer ones vary with hypothesis' swarm
    # testing, which switches rules off per example; the scripted walk covers those).
    assert STATS["examples"] >= config.max_examples, STATS
    assert STATS["steps"] >= MIN_STEPS_PER_EXAMPLE * config.max_examples, STATS
    for situation in (
        "debit",
        "hold",
        "grant",
        "settle",
        "InsufficientCredits",
        "IdempotencyConflict",
        "replayed",
        "renewal",
    ):
        assert STATS[situation] > 0, f"{situation} never happened: {STATS}"


def _fast_tmp(default: Path) -> Path:
    """SQLite files on tmpfs when there is one: the ledger fsyncs every commit."""
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else default


@pytest.fixture
def sqlite_databases(sqlite_template: Path, tmp_path: Path) -> Iterator[Callable[[], str]]:
    base = Path(tempfile.mkdtemp(prefix="spojit-ledger-sm-", dir=_fast_tmp(tmp_path)))
    numbers = itertools.count()

    def fresh() -> str:
        path = base / f"ledger-{next(numbers)}.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"

    yield fresh
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def postgres_databases(postgres_url: str) -> Iterator[Callable[[], str]]:
    # Same database, same semantics; only commits stop waiting for the WAL flush (durability
    # on a crash is no subject here), which makes each step several times faster.
    url = (
        make_url(postgres_url)
        .update_query_dict({"options": "-c synchronous_commit=off"})
        .render_as_string(hide_password=False)
    )
    admin = make_engine(url)

    def fresh() -> str:
        # As conftest's _truncate, over every table the migrations made.
        with admin.begin() as conn:
            tables = conn.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                    "AND tablename <> 'alembic_version'"
                )
            ).scalars()
            names = ", ".join(f'"{t}"' for t in tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        return url

    yield fresh
    fresh()
    admin.dispose()


@pytest.mark.slow
def test_ledger_state_machine_sqlite(sqlite_databases: Callable[[], str]) -> None:
    _run(sqlite_databases, "SQLiteLedgerMachine", SQLITE_SETTINGS)  # clears STATS first
    # The debits went through the fast path (sqlite_debit.py), not only the Python path.
    assert STATS["debits_by_fast_path"] > 0, STATS


@pytest.mark.slow
@pytest.mark.postgres
def test_ledger_state_machine_postgres(postgres_databases: Callable[[], str]) -> None:
    _run(postgres_databases, "PostgresLedgerMachine", POSTGRES_SETTINGS)
    # The debits went through spojit_debit (migration 0008), not only the Python path.
    assert STATS["debits_by_fast_path"] > 0, STATS
