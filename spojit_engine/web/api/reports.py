"""The JSON reports (``/api/v1``): the usage card, the breakdown, the timeline and the executions.

Every route needs a member token (``Authorization: Bearer …``) and acts on that member's own
workspace — no route takes a workspace, so no token reaches another's. A member sees only their
own runs and consumption. Credits are decimal strings with six places, times ISO 8601. The
response models below are what the routes return, so the OpenAPI schema is the contract.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from fastapi import Query
from pydantic import BaseModel, Field

from spojit_engine.display import credits_exact
from spojit_engine.results import Execution, run_label
from spojit_engine.web.api.openapi import (
    Credits,
    error_responses,
    member_router,
    setting_maximum,
)
from spojit_engine.web.auth import EngineDep, Member

router = member_router()

_DIMENSION = "(workflow|node_type|member|test_run)"
BY_PATTERN = rf"^ *{_DIMENSION} *(, *{_DIMENSION} *)*$"


class UsageCard(BaseModel):
    workspace_id: str
    workspace: str
    plan: str
    pending_plan: str | None = Field(description="A downgrade waiting for the reset.")
    consumed: Credits
    remaining: Credits
    allowance_remaining: Credits
    topup_remaining: Credits
    other_remaining: Credits
    held: Credits
    overdraft: Credits
    period_start: datetime
    resets_at: datetime


class BreakdownItem(BaseModel):
    workflow: str | None
    node_type: str | None
    member: str | None = Field(description="A member id, when broken down by member.")
    test_run: bool
    run: str = Field(description="test or live: the label the CLI and the pages show.")
    credits: Credits
    calls: int


class BreakdownTotal(BaseModel):
    credits: Credits = Field(description="The sum of the rows: the period's consumed.")
    calls: int


class Breakdown(BaseModel):
    since: datetime = Field(description="The start of the current billing period.")
    by: list[str]
    only_member: str | None = Field(description="Set when a member sees only their own.")
    rows: list[BreakdownItem]
    total: BreakdownTotal


class TimelineItem(BaseModel):
    day: date = Field(description="A day; it starts at the workspace's reset time of day.")
    credits: Credits
    calls: int
    workflow: str | None = Field(description="The workflow that took the most credits that day.")
    workflow_credits: Credits | None
    node_type: str | None
    node_type_credits: Credits | None
    model: str | None = Field(description="The models of the LLM calls that cost the most.")
    model_credits: Credits | None


class ExecutionItem(BaseModel):
    flow_run_id: str
    run_name: str | None = Field(description="Prefect's flow run name.")
    trigger: str | None = Field(description="schedule, webhook, automation, manual or test.")
    workflow: str | None
    started_at: datetime
    finished_at: datetime
    status: str = Field(
        description="ok, failed, out of credits, test cap reached; for a run stopped for "
        "credits: incomplete, resumed or abandoned."
    )
    test_run: bool
    run: str = Field(description="test or live: the label the CLI and the pages show.")
    member_id: str | None
    member: str | None = Field(description="The member's email.")
    node_calls: int
    credits: Credits


@router.get("/usage", response_model=UsageCard, summary="Usage this period")
def usage(member: Member, engine: EngineDep) -> UsageCard:
    b = engine.balance(member.workspace_id)
    return UsageCard(
        workspace_id=b.workspace_id,
        workspace=b.workspace,
        plan=b.plan,
        pending_plan=b.pending_plan,
        consumed=credits_exact(b.consumed),
        remaining=credits_exact(b.remaining),
        allowance_remaining=credits_exact(b.allowance_remaining),
        topup_remaining=credits_exact(b.topup_remaining),
        other_remaining=credits_exact(b.other_remaining),
        held=credits_exact(b.held),
        overdraft=credits_exact(b.overdraft),
        period_start=b.period_start,
        resets_at=b.resets_at,
    )


@router.get(
    "/usage/breakdown",
    response_model=Breakdown,
    summary="View breakdown (this period)",
    responses=error_responses(400),
)
def breakdown(
    member: Member,
    engine: EngineDep,
    by: Annotated[
        str,
        Query(
            max_length=100,
            pattern=BY_PATTERN,
            description="Comma-separated: workflow, node_type, member, test_run.",
        ),
    ] = "workflow,node_type",
) -> Breakdown:
    dims = [d.strip() for d in by.split(",") if d.strip()]
    only = None if member.is_admin else member.id
    since = engine.balance(member.workspace_id).period_start
    rows = engine.breakdown(member.workspace_id, by=dims, since=since, member_id=only)
    return Breakdown(
        since=since,
        by=dims,
        only_member=only,
        rows=[
            BreakdownItem(
                workflow=r.workflow,
                node_type=r.node_type,
                member=r.member,
                test_run=r.test_run,
                run=run_label(r.test_run),
                credits=credits_exact(r.credits),
                calls=r.calls,
            )
            for r in rows
        ],
        total=BreakdownTotal(
            credits=credits_exact(sum((r.credits for r in rows), Decimal(0))),
            calls=sum(r.calls for r in rows),
        ),
    )


@router.get(
    "/usage/timeline",
    response_model=list[TimelineItem],
    summary="The period day by day: credits, calls and what drove each day",
    responses=error_responses(400),
)
def timeline(
    member: Member,
    engine: EngineDep,
    days: Annotated[
        int | None,
        Query(
            ge=1,
            description="The last N days (default: this period); at most SPOJIT_TIMELINE_DAYS_MAX.",
            json_schema_extra=setting_maximum("timeline_days_max"),
        ),
    ] = None,
) -> list[TimelineItem]:
    only = None if member.is_admin else member.id
    found = engine.timeline(member.workspace_id, days=days, member_id=only)

    def maybe(amount: Decimal | None) -> str | None:
        return None if amount is None else credits_exact(amount)

    return [
        TimelineItem(
            day=d.day,
            credits=credits_exact(d.credits),
            calls=d.calls,
            workflow=d.workflow,
            workflow_credits=maybe(d.workflow_credits),
            node_type=d.node_type,
            node_type_credits=maybe(d.node_type_credits),
            model=d.model,
            model_credits=maybe(d.model_credits),
        )
        for d in found
    ]


@router.get(
    "/executions",
    response_model=list[ExecutionItem],
    summary="Executions: recent runs, the latest started first (a member sees only their own)",
    responses=error_responses(400),
)
def executions(
    member: Member,
    engine: EngineDep,
    limit: Annotated[int, Query(ge=1, json_schema_extra=setting_maximum("page_size_max"))] = 20,
    offset: Annotated[
        int,
        Query(
            ge=0,
            description="Runs to skip (paging); at most SPOJIT_PAGE_OFFSET_MAX.",
            json_schema_extra=setting_maximum("page_offset_max"),
        ),
    ] = 0,
) -> list[ExecutionItem]:
    only = None if member.is_admin else member.id
    runs: list[Execution] = engine.executions(
        member.workspace_id, member_id=only, limit=limit, offset=offset
    )
    emails = engine.member_emails(member.workspace_id)
    return [
        ExecutionItem(
            flow_run_id=r.flow_run_id,
            run_name=r.run_name,
            trigger=r.trigger,
            workflow=r.workflow,
            started_at=r.started_at,
            finished_at=r.finished_at,
            status=r.status,
            test_run=r.test_run,
            run=run_label(r.test_run),
            member_id=r.member_id,
            member=emails.get(r.member_id) if r.member_id else None,
            node_calls=r.node_calls,
            credits=credits_exact(r.credits),
        )
        for r in runs
    ]
