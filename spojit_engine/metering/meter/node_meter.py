"""The meter of one node call: a ``contextvars`` scope that LLM calls report to.

Two-phase per LLM call (TigerBeetle's pending transfers): ``reserve`` holds the most the call can
cost *before* the call — a refused hold raises ``InsufficientCredits`` and the call never
happens — then ``settle`` posts the actual cost from the response's usage, or ``release`` gives the
hold back if the provider failed. Keys derive from the node call's key, so re-running the same
attempt replays instead of billing again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import TYPE_CHECKING

from spojit_engine.errors import Conflict, NotMetered
from spojit_engine.metering.core.holds import HoldState
from spojit_engine.metering.core.model_prices import ModelPriceTable
from spojit_engine.metering.core.pricing import PriceBook, TokenUsage, llm_cost_ucr, max_cost_ucr
from spojit_engine.metering.core.records import HoldRecord, Usage
from spojit_engine.metering.store.usage import UsageRow
from spojit_engine.metering.store.usage_writes import add_llm_call

if TYPE_CHECKING:
    from spojit_engine.metering.ledger.operations import Ledger
    from spojit_engine.metering.ledger.posting import LedgerTx, Then
    from spojit_engine.metering.meter.batch import RunBatch


REPLAYS_MAX = 100  # replays of one attempt's LLM call whose earlier runs all failed


@dataclass
class LlmCall:
    usage: TokenUsage
    cost_ucr: int


@dataclass
class Meter:
    """What one node call has spent so far, and where to bill the next LLM call."""

    ledger: Ledger
    workspace_id: str
    key: str
    usage: Usage
    book: PriceBook
    prices: ModelPriceTable
    hold_ttl: timedelta
    calls: list[LlmCall] = field(default_factory=list)
    extra_ucr: int = 0
    # The run's reservation and batch (None: the run has none; holds take free credits).
    run_id: str | None = None
    batch: RunBatch | None = None
    # The call's usage record as the ledger holds it; each settle counts its call there.
    recorded: UsageRow | None = None
    tools: list[str] = field(default_factory=list)  # tools an agent chose (the cost advisor)

    @property
    def llm_cost_ucr(self) -> int:
        return sum(call.cost_ucr for call in self.calls) + self.extra_ucr

    def price_call(self, usage: TokenUsage) -> int:
        return llm_cost_ucr(self.prices.price(usage.model), usage, self.book.credits_per_usd)

    @contextmanager
    def llm_call(self, model: str, prompt_tokens: int, max_tokens: int) -> Iterator[LlmSettlement]:
        """Hold the call's maximum, run it, settle what it used (or release on error)."""
        index = len(self.calls)
        price = self.prices.price(model)
        amount_ucr = max(
            1, max_cost_ucr(price, prompt_tokens, max_tokens, self.book.credits_per_usd)
        )
        key = f"{self.key}:llm:{index}"
        hold = self._hold(amount_ucr, key)
        again = 0
        while hold.state == HoldState.RELEASED.value:
            # A replay of this attempt whose first run released this hold (its call failed, so
            # nothing was billed): the call about to happen is new work and needs a hold of its
            # own. The suffix is deterministic, so a replay of this replay finds it again.
            again += 1
            if again > REPLAYS_MAX:
                raise Conflict(
                    f"LLM call {index} of {self.key} failed {again} times in one attempt."
                )
            hold = self._hold(amount_ucr, f"{key}:again:{again}")
        settlement = LlmSettlement()
        try:
            yield settlement
        except BaseException:
            if hold.state == HoldState.HELD.value:
                self.ledger.release(hold.id)
            raise
        if settlement.usage is None:
            raise NotMetered(f"LLM call {index} of {self.key}")
        cost = self.price_call(settlement.usage)
        call = LlmCall(settlement.usage, cost)
        if hold.state in (HoldState.HELD.value, HoldState.EXPIRED.value):
            entry = self.ledger.settle(
                hold.id, actual_ucr=cost, then=self._count(call), workspace_id=self.workspace_id
            )
            if entry.replayed:
                self.recorded = None  # the record was not counted: the call's end rewrites it
        # else: this very attempt already settled this call (a replay): nothing new to bill.
        self.calls.append(call)

    def models(self, also: str | None = None) -> str | None:
        names = {c.usage.model for c in self.calls} | ({also} if also else set())
        return ",".join(sorted(names)) or None

    def _hold(self, amount_ucr: int, key: str) -> HoldRecord:
        """A hold for one LLM call: out of the run's reservation first, leaving what the batch
        has promised; the batch then learns what is left of the reservation."""
        keep = self.batch.claimed_ucr if self.batch is not None else 0
        hold = self.ledger.hold(
            self.workspace_id, amount_ucr=amount_ucr, key=key, ttl=self.hold_ttl,
            usage=self.usage, run_id=self.run_id, keep_ucr=keep,
        )  # fmt: skip
        if self.batch is not None:
            self.batch.resync()
        return hold

    def _count(self, call: LlmCall) -> Then | None:
        """The settle's extra write: count ``call`` on the usage record the ledger holds."""
        recorded = self.recorded
        if recorded is None:
            return None
        usage, models = call.usage, self.models(call.usage.model)
        self.recorded = replace(
            recorded, tokens_in=recorded.tokens_in + usage.tokens_in,
            tokens_out=recorded.tokens_out + usage.tokens_out,
            tokens_cached=recorded.tokens_cached + usage.tokens_cached,
            llm_calls=recorded.llm_calls + 1, credits_ucr=recorded.credits_ucr + call.cost_ucr,
            models=models,
        )  # fmt: skip

        def write(tx: LedgerTx) -> None:
            add_llm_call(tx.conn, recorded.key, tokens_in=usage.tokens_in,
                         tokens_out=usage.tokens_out, tokens_cached=usage.tokens_cached,
                         cost_ucr=call.cost_ucr, models=models)  # fmt: skip

        return write


@dataclass
class LlmSettlement:
    """Filled by the LLM helper with the usage the response reported."""

    usage: TokenUsage | None = None


_current: ContextVar[Meter | None] = ContextVar("spojit_meter", default=None)


def current_meter(what: str) -> Meter:
    """The meter of the node call in progress; billing outside one is refused, never free."""
    meter = _current.get()
    if meter is None:
        raise NotMetered(what)
    return meter


@contextmanager
def metering(meter: Meter) -> Iterator[Meter]:
    token = _current.set(meter)
    try:
        yield meter
    finally:
        _current.reset(token)
