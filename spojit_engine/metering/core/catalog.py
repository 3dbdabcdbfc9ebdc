"""The shipped plans and top-up packs (and the currency they are priced in), loaded from
``catalog.toml`` once."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from spojit_engine.errors import UnknownPack, UnknownPlan
from spojit_engine.money import credits_to_ucr_exact, ucr_to_credits

CATALOG_PATH = Path(__file__).with_name("catalog.toml")
CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Plan:
    id: str
    name: str
    allowance_ucr: int
    price_cents: int
    term_months: int


@dataclass(frozen=True, slots=True)
class Pack:
    id: str
    name: str
    credits_ucr: int
    price_cents: int

    @property
    def cents_per_credit(self) -> Decimal:
        """What one credit of this pack costs, in cents to the cent (larger packs cost less)."""
        return (Decimal(self.price_cents) / ucr_to_credits(self.credits_ucr)).quantize(CENT)


@dataclass(frozen=True, slots=True)
class Catalog:
    plans: dict[str, Plan]
    packs: dict[str, Pack]
    currency: str = "usd"

    def plan(self, plan_id: str) -> Plan:
        try:
            return self.plans[plan_id]
        except KeyError:
            raise UnknownPlan(plan_id, sorted(self.plans)) from None

    def pack(self, pack_id: str) -> Pack:
        try:
            return self.packs[pack_id]
        except KeyError:
            raise UnknownPack(pack_id, sorted(self.packs)) from None


@lru_cache(maxsize=4)
def load_catalog(path: Path = CATALOG_PATH) -> Catalog:
    """Parse the catalog; credits go through the one exact conversion."""
    raw = tomllib.loads(path.read_text())
    plans = {
        key: Plan(
            id=key,
            name=value["name"],
            allowance_ucr=credits_to_ucr_exact(Decimal(value["allowance_credits"])),
            price_cents=int(value["price_cents"]),
            term_months=int(value["term_months"]),
        )
        for key, value in raw["plans"].items()
    }
    packs = {
        key: Pack(
            id=key,
            name=value["name"],
            credits_ucr=credits_to_ucr_exact(Decimal(value["credits"])),
            price_cents=int(value["price_cents"]),
        )
        for key, value in raw["packs"].items()
    }
    return Catalog(plans=plans, packs=packs, currency=str(raw.get("currency", "usd")).lower())
