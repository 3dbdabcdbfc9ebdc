"""Every error spojit_engine raises, in one tree, each with a stable ``code``.

    SpojitError
    ├── InvalidInput            400  bad amount, bad email, bad key, bad option;
    │                                UnknownModelPrice, NotMetered, InvalidSignature,
    │                                MalformedEvent
    ├── NotFound                404  UnknownWorkspace, UnknownMember, UnknownPlan,
    │                                UnknownPack, UnknownHold, UnknownOrder, UnknownExecution
    ├── Unauthorized            401  missing or unknown member token; SignInRefused (a used or
    │                                expired login link, an ended browser session)
    ├── Forbidden               403  AdminRequired
    ├── InsufficientCredits     402  a debit or hold the available balance cannot cover
    ├── Conflict                409  IdempotencyConflict, IllegalTransition, AlreadyExists
    ├── LedgerCorrupt           500  a materialised balance differs from its entries
    ├── PaymentProviderError    502  Stripe refused a request or could not be reached
    ├── LedgerUnavailable       503  the database could not be reached or stayed locked
    └── BillingUnavailable      503  Stripe is not configured (no API key or webhook secret)

``HTTP_STATUS`` maps each branch to its status once; the CLI and the web app both read it.
Messages are one sentence a person can act on; the numbers ride along as attributes.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from spojit_engine.display import credits_text


class SpojitError(Exception):
    """Base of every spojit_engine error."""

    code = "spojit_error"


class InvalidInput(SpojitError):
    code = "invalid_input"


class UnknownModelPrice(InvalidInput):
    """A model neither LiteLLM nor the price book prices: never treated as free."""

    code = "unknown_model_price"

    def __init__(self, model: str) -> None:
        super().__init__(
            f'Model {model!r} has no known price; add it under [models."{model}"] in the '
            "price book (SPOJIT_PRICE_BOOK) or set a [fallback] price."
        )
        self.model = model


class NotMetered(InvalidInput):
    code = "not_metered"

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} ran outside a metered node; wrap it with @metered.")


class InvalidSignature(InvalidInput):
    """A Stripe webhook whose signature, secret or timestamp does not check out."""

    code = "invalid_signature"


class MalformedEvent(InvalidInput):
    """A correctly signed Stripe event we cannot read (no id, a field of the wrong type…)."""

    code = "malformed_event"


class NotFound(SpojitError):
    code = "not_found"


class UnknownWorkspace(NotFound):
    code = "unknown_workspace"

    def __init__(self, workspace: str) -> None:
        super().__init__(f"Unknown workspace {workspace!r}.")
        self.workspace = workspace


class UnknownMember(NotFound):
    code = "unknown_member"

    def __init__(self, member: str) -> None:
        super().__init__(f"Unknown member {member!r}.")
        self.member = member


class UnknownPlan(NotFound):
    code = "unknown_plan"

    def __init__(self, plan: str, known: list[str]) -> None:
        super().__init__(f"Unknown plan {plan!r}; choose one of {', '.join(known)}.")
        self.plan = plan


class UnknownPack(NotFound):
    code = "unknown_pack"

    def __init__(self, pack: str, known: list[str]) -> None:
        super().__init__(f"Unknown top-up pack {pack!r}; choose one of {', '.join(known)}.")
        self.pack = pack


class UnknownHold(NotFound):
    code = "unknown_hold"

    def __init__(self, hold_id: int) -> None:
        super().__init__(f"Unknown hold {hold_id}.")
        self.hold_id = hold_id


class UnknownOrder(NotFound):
    code = "unknown_order"

    def __init__(self, order: str) -> None:
        super().__init__(f"Unknown top-up order or checkout session {order!r}.")
        self.order = order


class UnknownExecution(NotFound):
    code = "unknown_execution"

    def __init__(self, flow_run_id: str) -> None:
        super().__init__(f"No run {flow_run_id!r} in this workspace.")
        self.flow_run_id = flow_run_id


class Unauthorized(SpojitError):
    code = "unauthorized"


class SignInRefused(Unauthorized):
    """A login link that is unknown, already used or expired, or a browser session that ended."""

    code = "sign_in_refused"


class Forbidden(SpojitError):
    code = "forbidden"


class AdminRequired(Forbidden):
    code = "admin_required"

    def __init__(self, action: str, member_email: str) -> None:
        super().__init__(f"Only a workspace admin may {action}; {member_email} is a member.")
        self.action = action


class InsufficientCredits(SpojitError):
    """A debit or hold the workspace's available credits cannot cover; nothing was written."""

    code = "insufficient_credits"

    @property
    def usage_status(self) -> str:
        """The status a node call this refusal stopped is recorded with (Executions' label)."""
        return "refused"

    def __init__(
        self,
        workspace: str,
        needed: Decimal,
        available: Decimal,
        *,
        resets_at: datetime | None = None,
    ) -> None:
        then = f"wait for the reset on {resets_at:%Y-%m-%d}" if resets_at else "try again later"
        super().__init__(
            f"Out of credits: workspace {workspace} needs {credits_text(needed)} credits "
            f"but has {credits_text(available)} available; top up or {then}."
        )
        self.workspace = workspace
        self.needed = needed
        self.available = available
        self.resets_at = resets_at


class Conflict(SpojitError):
    code = "conflict"


class IdempotencyConflict(Conflict):
    """The key was already used for a different operation (TigerBeetle: exists_with_different_*)."""

    code = "idempotency_conflict"

    def __init__(self, key: str, detail: str) -> None:
        super().__init__(f"Key {key!r} was already used {detail}.")
        self.key = key


class IllegalTransition(Conflict):
    code = "illegal_transition"

    def __init__(self, what: str, current: str, wanted: str) -> None:
        super().__init__(f"{what} cannot go from {current} to {wanted}.")
        self.current = current
        self.wanted = wanted


class AlreadyExists(Conflict):
    code = "already_exists"


class LedgerCorrupt(SpojitError):
    """A checked invariant does not hold; the transaction that found it is rolled back."""

    code = "ledger_corrupt"


class LedgerUnavailable(SpojitError):
    code = "ledger_unavailable"


class PaymentProviderError(SpojitError):
    """Stripe answered with an error, or could not be reached; nothing was charged by us."""

    code = "payment_provider_error"


class BillingUnavailable(SpojitError):
    code = "billing_unavailable"


HTTP_STATUS: dict[type[SpojitError], int] = {
    InvalidInput: 400,
    Unauthorized: 401,
    InsufficientCredits: 402,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    LedgerCorrupt: 500,
    PaymentProviderError: 502,
    LedgerUnavailable: 503,
    BillingUnavailable: 503,
}


def http_status(error: SpojitError) -> int:
    """The HTTP status of an error: the entry of its nearest ancestor in ``HTTP_STATUS``."""
    for cls in type(error).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500
