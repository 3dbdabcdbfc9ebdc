"""The one writer of money (``LedgerTx.post``) and the operations composed on it: grants, debits,
holds, settles, releases, run reservations, renewals and expiries, clawbacks; the observers it
tells after each commit. See README.md."""

from spojit_engine.lazy import exports

__all__ = [
    "RESERVATION_PREFIX",
    "Ledger",
    "LedgerObservers",
    "LedgerTx",
    "Spend",
    "Then",
    "allowance_key",
    "claw_back",
    "claw_back_grant",
    "is_reservation",
    "maintain",
    "reservation_key",
    "spend_budget",
]
__getattr__ = exports(
    __name__,
    {
        "Ledger": "spojit_engine.metering.ledger.operations",
        "LedgerObservers": "spojit_engine.metering.ledger.observers",
        "LedgerTx": "spojit_engine.metering.ledger.posting",
        "RESERVATION_PREFIX": "spojit_engine.metering.ledger.reservations",
        "Spend": "spojit_engine.metering.ledger.observers",
        "Then": "spojit_engine.metering.ledger.posting",
        "allowance_key": "spojit_engine.metering.ledger.maintenance",
        "claw_back": "spojit_engine.metering.ledger.clawback",
        "claw_back_grant": "spojit_engine.metering.ledger.clawback",
        "is_reservation": "spojit_engine.metering.ledger.reservations",
        "maintain": "spojit_engine.metering.ledger.maintenance",
        "reservation_key": "spojit_engine.metering.ledger.reservations",
        "spend_budget": "spojit_engine.metering.ledger.posting",
    },
)
