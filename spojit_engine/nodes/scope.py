"""A test run's scope: ``test`` (billed, labelled test everywhere), ``sample`` (Loops run on the
first N items) and ``max_credits`` (the run stops cleanly before it would spend more). The scope
rides on the run as tags (``spojit:test``, ``spojit:sample=N``, ``spojit:max-credits=C``), so
every node call sees it and the ledger enforces the cap in the same transaction as the debit
(``guards/budgets.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from spojit_engine.errors import InvalidInput
from spojit_engine.metering.meter.run_context import MAX_CREDITS_TAG, SAMPLE_TAG, TEST_TAG
from spojit_engine.money import credits_to_ucr_exact, ucr_to_credits


@dataclass(frozen=True, slots=True)
class RunScope:
    test: bool = False
    sample: int | None = None
    max_credits: Decimal | None = None

    @classmethod
    def of(cls, *, test: bool = False, sample: Any = None, max_credits: Any = None) -> RunScope:
        """A checked scope; ``sample`` and ``max_credits`` scope test runs only."""
        if (sample is not None or max_credits is not None) and not test:
            raise InvalidInput("A sample size or credit cap scopes a test run; add --test.")
        if sample is not None and (isinstance(sample, bool) or not isinstance(sample, int)
                                   or sample < 1):  # fmt: skip
            raise InvalidInput(
                f"The sample size must be a whole number of at least 1, not {sample!r}."
            )
        cap = None
        if max_credits is not None:
            cap = ucr_to_credits(credits_to_ucr_exact(str(max_credits)))
        return cls(bool(test), sample, cap)

    def tags(self) -> list[str]:
        out = [TEST_TAG] if self.test else []
        if self.sample is not None:
            out.append(f"{SAMPLE_TAG}{self.sample}")
        if self.max_credits is not None:
            out.append(f"{MAX_CREDITS_TAG}{self.max_credits.normalize():f}")
        return out

    def parameters(self) -> dict[str, Any]:
        """As a deployment's default parameters (``spojit deploy --test``)."""
        if not self.test:
            return {}
        cap = None if self.max_credits is None else f"{self.max_credits.normalize():f}"
        return {"test": True, "sample": self.sample, "max_credits": cap}
