"""Fuzzing as a habit: Schemathesis generates requests for every route of the OpenAPI schema of
``spojit serve`` — with an admin's token, a member's, a wrong one and none — on SQLite and
PostgreSQL. No answer may be a 5xx, and every answer must match the schema (status, content
type, body). Bounded (``EXAMPLES_PER_ROUTE``) so the default suite stays fast; the number of
cases run is printed (``-s``) and checked, so a silently empty run fails."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "billing"))

from stripe_fakes import FakeStripe, billing_settings, open_shop

from spojit_engine import Engine
from spojit_engine.web.app import create_app

EXAMPLES_PER_ROUTE = int(os.environ.get("SPOJIT_FUZZ_EXAMPLES", "4"))  # CI may raise it


def checks() -> list[Any]:
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    return [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]


def fuzz_route(operation: Any, tokens: list[str | None], count: Any) -> None:
    """Run the operation's generated cases, each once per token (None: no Authorization)."""

    @settings(
        max_examples=EXAMPLES_PER_ROUTE,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def fuzz(case: Any) -> None:
        for token in tokens:
            headers = {k: v for k, v in (case.headers or {}).items() if k != "Authorization"}
            if token is not None:
                headers["Authorization"] = f"Bearer {token}"
            response = case.call(headers=headers)
            case.validate_response(response, checks=checks(), headers=headers)
            count()

    fuzz()


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
    tokens = [shop.admin.token, shop.member.token, "spj_not_a_token", None]
    ran: dict[str, int] = {}
    for found in schema.get_all_operations():
        operation = found.ok()
        label = f"{operation.method.upper()} {operation.path}"
        ran[label] = 0
        fuzz_route(operation, tokens, lambda label=label: ran.__setitem__(label, ran[label] + 1))
    engine.verify()
    engine.close()
    total = sum(ran.values())
    print(f"\nSchemathesis: {total} requests over {len(ran)} routes ({database_url.split(':')[0]})")
    assert len(ran) >= 12 and all(n > 0 for n in ran.values()), ran


@pytest.fixture(autouse=True)
def _quiet_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING")
