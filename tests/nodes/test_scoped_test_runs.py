"""Scoped test runs (issue 9, item 3): ``test=True, sample=N`` runs every Loop on N items and
bills only those; ``max_credits=C`` stops the run cleanly before it would spend a micro-credit
more than C — enforced by the ledger in the debit's own transaction — and stops nothing else."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from node_billing import BASE_UCR, UCR, Billed, flow_run_state
from prefect import tags

from spojit_engine.errors import InsufficientCredits, InvalidInput
from spojit_engine.guards.errors import BudgetExceeded
from spojit_engine.nodes import Connector, Loop, Workflow
from spojit_engine.nodes.workflow import run_tags


def fetch(value: Any) -> Any:
    return {"fetched": value}


def looped(name: str) -> Workflow:
    return Workflow(name, [Loop("each", Connector("fetch", fetch), test_sample=5)])


def four_paid(name: str) -> Workflow:
    return Workflow(name, [Connector(f"n{i}", fetch) for i in range(1, 5)])


def test_a_sampled_loop_bills_only_the_sample(acme: Billed) -> None:
    out = looped("sampled").run(list(range(10)), workspace="acme", test=True, sample=3)

    assert out == [{"fetched": 0}, {"fetched": 1}, {"fetched": 2}]
    assert acme.by_node_type("sampled", test_run=True) == {
        "loop": (BASE_UCR["loop"], 1),
        "connector.direct": (3 * UCR, 3),
    }
    assert acme.by_node_type("sampled") == {}  # nothing billed as live
    assert acme.consumed_ucr() == BASE_UCR["loop"] + 3 * UCR


def test_a_deployment_marked_test_scopes_its_runs_by_parameters(acme: Billed) -> None:
    workflow = looped("deployed-test")
    with tags(*run_tags("acme", None, False)):
        out = workflow.flow(list(range(10)), test=True, sample=2)  # as a deployment run gets them

    assert len(out) == 2
    assert acme.by_node_type("deployed-test", test_run=True)["connector.direct"] == (2 * UCR, 2)


def test_a_capped_test_run_stops_at_its_cap_and_stops_nothing_else(
    acme_on_each_db: Billed,
) -> None:
    acme = acme_on_each_db
    workflow = four_paid("capped")

    with pytest.raises(BudgetExceeded) as stopped:
        workflow.run(None, workspace="acme", test=True, max_credits="2")

    message = str(stopped.value)
    assert message.startswith("Test-run cap reached: this test run may spend 2.00 credits")
    assert "\n" not in message
    assert acme.consumed_ucr() == 2 * UCR  # n1 and n2; n3 would cross the cap by 1.00
    assert [(r.node_name, r.status) for r in acme.usage()] == [
        ("n1", "ok"), ("n2", "ok"), ("n3", "capped"),
    ]  # fmt: skip
    state = flow_run_state(acme.last_flow_run_id())
    assert (state.type.value, state.name) == ("CANCELLED", "CapReached")
    assert acme.engine.incomplete_runs(acme.workspace_id) == []  # it did what was asked
    assert acme.engine.guard.stopped_reason(acme.workspace_id, "capped") is None
    assert four_paid("capped").run(None, workspace="acme") == {  # a live run is not capped
        "fetched": {"fetched": {"fetched": {"fetched": None}}}
    }
    assert acme.consumed_ucr() == 6 * UCR


@pytest.mark.parametrize("cap", ["0.5", "1.999999", "3.000001"])
def test_a_test_run_never_spends_a_micro_credit_above_its_cap(acme: Billed, cap: str) -> None:
    with pytest.raises(InsufficientCredits):
        four_paid(f"cap-{cap}").run(None, workspace="acme", test=True, max_credits=cap)
    spent = acme.consumed_ucr()
    assert spent <= Decimal(cap) * UCR
    assert spent == int(Decimal(cap)) * UCR  # whole steps only: the next one would cross it


def test_bad_scopes_are_refused_before_anything_runs(acme: Billed) -> None:
    workflow = four_paid("bad")
    for kwargs, message in [
        ({"sample": 3}, "scopes a test run; add --test"),
        ({"test": True, "sample": 0}, "at least 1"),
        ({"test": True, "max_credits": "lots"}, "is not a number"),
        ({"test": True, "max_credits": "0"}, "more than zero"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            workflow.run(None, workspace="acme", **kwargs)
    assert acme.consumed_ucr() == 0
