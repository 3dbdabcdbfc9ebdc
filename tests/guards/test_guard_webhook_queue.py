"""The workflow webhooks' queue against the session's Prefect server: a request that can never
start is set aside as a dead letter — reported in ``Engine.deployments`` (what ``spojit
deployments`` and ``GET /api/v1/deployments`` show) and in a WARNING — and the requests behind it
start; and two ledgers sharing one Prefect server (each a fresh database, as a recreated ledger
is) never start each other's runs."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from guard_helpers import deploy, flow_run, hooks_client, paid_workflow, prefect, unique
from sqlalchemy import insert, select

from spojit_engine import Engine, Workflow
from spojit_engine.db import read_transaction, write_transaction
from spojit_engine.guards import prefect_api
from spojit_engine.guards.schema import webhook_queue


class Hooked:
    """A workspace with a paid workflow deployed in Prefect and a webhook to it."""

    def __init__(self, engine: Engine, workflow: Workflow, *, credits: str | None = None) -> None:
        self.engine = engine
        self.ws = engine.create_workspace(unique("hooked"), plan="free")
        if credits is not None:
            remaining = engine.balance(self.ws.id).remaining
            engine.debit(self.ws.id, remaining - Decimal(credits), key="drain")
        deployment = deploy(engine, workflow, unique("dep"), self.ws.id, [])
        self.hook = unique("hook")
        self.secret = engine.guard.hooks.create(
            self.hook, workflow=workflow.name, workspace_id=self.ws.id, deployment_id=deployment
        )

    def post(self, body: object) -> dict[str, object]:
        with hooks_client(self.engine) as client:
            answer = client.post(
                f"/hooks/{self.hook}",
                content=json.dumps(body),
                headers={"X-Spojit-Secret": self.secret},
            )
        assert answer.status_code == 202, answer.text
        return dict(answer.json())

    def rows(self) -> dict[int, tuple[str, str | None, str | None]]:
        q = webhook_queue.c
        with read_transaction(self.engine.sa_engine) as conn:
            found = conn.execute(
                select(q.id, q.state, q.flow_run_id, q.error).where(q.hook == self.hook)
            )
            return {r.id: (r.state, r.flow_run_id, r.error) for r in found}


def queue_as_an_older_version_did(hooked: Hooked, body: str) -> int:
    """A request queued before the door refused lone surrogates (its text kept as received)."""
    with write_transaction(hooked.engine.sa_engine) as conn:
        key = conn.execute(
            insert(webhook_queue).values(
                hook=hooked.hook, workflow=hooked.engine.guard.hooks.find(hooked.hook).workflow,
                workspace_id=hooked.ws.id, body=body, state="queued", attempts=0,
                queued_reason="out of credits", received_at=hooked.engine.now(),
            )
        ).inserted_primary_key  # fmt: skip
    assert key is not None
    return int(key[0])


def test_a_poisoned_request_becomes_a_dead_letter_and_the_queue_drains_past_it(
    bound: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    hooked = Hooked(bound, paid_workflow(unique("digest")), credits="0")
    first = hooked.post({"order": 1})
    poisoned = queue_as_an_older_version_did(hooked, '{"order": "\\ud800"}')
    last = hooked.post({"order": 3})
    assert first["status"] == last["status"] == "queued"

    caplog.set_level(logging.WARNING, logger="spojit_engine.guards.deployments.webhooks")
    bound.grant(hooked.ws.id, "10", kind="promo", key=unique("top-up"), reason="test")
    bound.guard.hooks.drain(hooked.hook)

    rows = hooked.rows()
    ids = [int(str(first["request_id"])), poisoned, int(str(last["request_id"]))]
    assert [rows[i][0] for i in ids] == ["started", "dead", "started"]
    payloads = [flow_run(str(rows[i][1])).parameters["payload"] for i in (ids[0], ids[2])]
    assert payloads == [{"order": 1}, {"order": 3}]
    assert "UnicodeEncodeError" in str(rows[poisoned][2])
    assert bound.guard.hooks.queued_count(hook=hooked.hook) == 0

    (status,) = [d for d in bound.deployments(hooked.ws.id) if d.webhook == hooked.hook]
    assert status.dead_letters == 1 and f"request {poisoned}:" in str(status.dead_letter_reason)
    warned = [r.getMessage() for r in caplog.records if "dead letter" in r.getMessage()]
    assert len(warned) == 1 and f"request {poisoned} " in warned[0]
    again = hooked.post({"order": 4})  # the hook keeps working
    assert again["status"] == "started"


def test_a_request_prefect_refuses_answers_failed_and_holds_nothing_up(bound: Engine) -> None:
    hooked = Hooked(bound, paid_workflow(unique("digest")))
    with prefect() as client:  # the deployment is deleted under the hook
        client.delete_deployment(UUID(bound.guard.hooks.find(hooked.hook).deployment_id))
    failed = hooked.post({"order": 1})
    assert failed["status"] == "failed" and "dead letter" in str(failed["reason"])
    assert hooked.rows()[int(str(failed["request_id"]))][0] == "dead"


@pytest.fixture
def second_ledger(sqlite_template: Path, tmp_path: Path) -> Iterator[Engine]:
    """Another ledger (its own fresh database) on the same Prefect server."""
    path = tmp_path / "second.db"
    shutil.copy(sqlite_template, path)
    engine = Engine(f"sqlite:///{path}")
    yield engine
    engine.close()


def test_two_ledgers_on_one_prefect_server_start_their_own_runs(
    bound: Engine, second_ledger: Engine
) -> None:
    workflow = paid_workflow(unique("digest"))  # the same flow in Prefect, deployed by each
    one, two = Hooked(bound, workflow), Hooked(second_ledger, workflow)
    started = [one.post({"ledger": 1}), two.post({"ledger": 2})]
    assert [s["request_id"] for s in started] == [1, 1]  # each ledger's first request
    runs = [flow_run(str(s["flow_run_id"])) for s in started]
    assert runs[0].id != runs[1].id
    assert [r.parameters["payload"] for r in runs] == [{"ledger": 1}, {"ledger": 2}]


def test_failures_are_told_apart_by_what_prefect_answered() -> None:
    request = httpx.Request("POST", "http://prefect.test/api/deployments/x/create_flow_run")

    def answered(status: int) -> httpx.HTTPStatusError:
        return httpx.HTTPStatusError("x", request=request, response=httpx.Response(status))

    assert prefect_api.start_failure(httpx.ConnectError("down")) == prefect_api.UNREACHABLE
    assert prefect_api.start_failure(answered(503)) == prefect_api.SERVER_ERROR
    assert prefect_api.start_failure(answered(429)) == prefect_api.SERVER_ERROR
    assert prefect_api.start_failure(answered(422)) == prefect_api.REFUSED
    assert prefect_api.start_failure(UnicodeEncodeError("utf-8", "\ud800", 0, 1, "x")) == (
        prefect_api.REFUSED
    )
