"""Fuzzing as a habit: Schemathesis generates requests for every route of the OpenAPI schema of
``spojit serve`` — with an admin's token, a member's, a wrong one and none — on SQLite and
PostgreSQL. No answer may be a 5xx, every answer must match the schema (status, content type,
body), and a request the schema calls valid is never refused as bad input (400): the schema
states the server's real bounds. Bounded (``EXAMPLES_PER_ROUTE``) and derandomized, so the
default suite stays fast and CI sees the same cases each run (``SPOJIT_FUZZ_SEED`` picks
another set); the number of cases run is printed (``-s``) and checked, so a silently empty run
fails."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis.errors import Unsatisfiable

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "billing"))

from stripe_fakes import FakeStripe, billing_settings, open_shop

from spojit_engine import Engine
from spojit_engine.web.app import create_app

EXAMPLES_PER_ROUTE = int(os.environ.get("SPOJIT_FUZZ_EXAMPLES", "8"))  # CI may raise it
SEED = os.environ.get("SPOJIT_FUZZ_SEED")  # unset: derandomized (the same cases every run)
# Statuses a schema-valid request may get: what Schemathesis allows by default, and 402 (out of
# credits). Never 400: that would be a bound the schema did not state.
ACCEPTED = ["2xx", "3xx", "401", "402", "403", "404", "409", "429", "5xx"]
# The Stripe webhook's signature cannot be generated from a schema: every generated event is
# refused for its signature, so only the other checks apply there.
UNSIGNABLE = {"POST /webhooks/stripe"}


def checks(label: str, *, negative: bool) -> list[Any]:
    """Every case: no 5xx, and status, content type and body as the schema says; a valid case is
    never refused as bad input. (Invalid cases are not held to ``negative_data_rejection``: the
    token each case is sent with replaces the Authorization header Schemathesis may have dropped
    on purpose, and unknown query parameters are ignored, as HTTP servers do.)"""
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        positive_data_acceptance,
        response_schema_conformance,
        status_code_conformance,
    )

    found = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    if negative or label in UNSIGNABLE:
        return found
    return [*found, positive_data_acceptance]


def fuzz_route(operation: Any, tokens: list[str | None], count: Any, *, negative: bool) -> None:
    """Run the operation's generated cases (valid ones, or with ``negative`` invalid ones), each
    once per token (None: no Authorization)."""
    from schemathesis import GenerationMode

    label = f"{operation.method.upper()} {operation.path}"
    mode = GenerationMode.NEGATIVE if negative else GenerationMode.POSITIVE

    @settings(
        max_examples=EXAMPLES_PER_ROUTE,
        deadline=None,
        database=None,
        derandomize=SEED is None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def fuzz(case: Any) -> None:
        for token in tokens:
            headers = {k: v for k, v in (case.headers or {}).items() if k != "Authorization"}
            if token is not None:
                headers["Authorization"] = f"Bearer {token}"
            response = case.call(headers=headers)
            case.validate_response(
                response, checks=checks(label, negative=negative), headers=headers
            )
            count()

    if SEED is not None:
        fuzz = seed(int(SEED))(fuzz)
    try:
        fuzz()
    except Unsatisfiable:  # fine for a route with no invalid input to make (nothing to send)
        if not negative:
            raise


@pytest.mark.slow
def test_every_route_answers_within_its_schema_and_never_5xx(
    database_url: str, tmp_path: Path
) -> None:
    import schemathesis

    engine = Engine(
        database_url, settings=billing_settings(tmp_path), stripe_http_client=FakeStripe()
    )
    shop = open_shop(engine, FakeStripe())
    engine.grant(shop.workspace_id, "100", kind="promo", key="fuzz-seed", reason="fuzz")
    app = create_app(engine)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    schema.config.checks.positive_data_acceptance.expected_statuses = ACCEPTED
    tokens = [shop.admin.token, shop.member.token, "spj_not_a_token", None]
    ran: dict[str, int] = {}
    for found in schema.get_all_operations():
        operation = found.ok()
        label = f"{operation.method.upper()} {operation.path}"
        ran[label] = 0
        for negative in (False, True):
            fuzz_route(
                operation,
                tokens,
                lambda label=label: ran.__setitem__(label, ran[label] + 1),
                negative=negative,
            )
    engine.verify()
    engine.close()
    total = sum(ran.values())
    print(f"\nSchemathesis: {total} requests over {len(ran)} routes ({database_url.split(':')[0]})")
    assert len(ran) >= 12 and all(n > 0 for n in ran.values()), ran


@pytest.fixture(autouse=True)
def _quiet_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING")
