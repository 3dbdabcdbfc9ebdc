"""Nightly digest: every morning at 06:00 (UTC) fetch yesterday's events with a deterministic
Direct Connector, count them in a map step, and answer with a short digest.

Cost shape: nominal. No LLM is involved — Direct mode is the right choice when the tool call is
deterministic. The Trigger's cron is the schedule a deployment of this workflow runs on.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

from spojit_engine import Connector, Response, Transform, Trigger, Workflow

EVENT_KINDS = ("signup", "payment", "workflow_failed", "ticket_opened", "plan_upgraded")
EVENTS_PER_DAY_MAX = 40


def _day_of(request: Any) -> date:
    """The day asked for (``{"day": "2026-11-27"}``), else yesterday (UTC)."""
    day = request.get("day") if isinstance(request, dict) else None
    if day:
        return date.fromisoformat(str(day))
    return datetime.now(UTC).date() - timedelta(days=1)


def fetch_events(request: Any) -> dict[str, Any]:
    """Yesterday's product events — the same day always gives the same events (offline)."""
    day = _day_of(request)
    seed = hashlib.sha256(day.isoformat().encode()).digest()
    events = []
    for i in range(12 + seed[0] % (EVENTS_PER_DAY_MAX - 12)):
        kind = EVENT_KINDS[seed[(i + 1) % len(seed)] % len(EVENT_KINDS)]
        event: dict[str, Any] = {"id": f"evt_{day:%Y%m%d}_{i:03d}", "kind": kind}
        if kind == "payment":
            event["amount_eur"] = 10 + seed[(i + 7) % len(seed)] % 190
        events.append(event)
    return {"day": day.isoformat(), "events": events}


def count_events(batch: dict[str, Any]) -> dict[str, Any]:
    kinds = Counter(event["kind"] for event in batch["events"])
    revenue = sum(event.get("amount_eur", 0) for event in batch["events"])
    return {
        "day": batch["day"],
        "events": len(batch["events"]),
        "by_kind": dict(sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))),
        "revenue_eur": revenue,
    }


def digest(stats: dict[str, Any]) -> dict[str, Any]:
    parts = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in stats["by_kind"].items())
    text = (
        f"Digest for {stats['day']}: {stats['events']} events ({parts}); "
        f"revenue EUR {stats['revenue_eur']}."
    )
    return {"digest": text, **stats}


workflow = Workflow(
    "nightly_digest",
    [
        Trigger("every morning", cron="0 6 * * *"),
        Connector("fetch events", fetch_events, mode="direct"),
        Transform("count events", count_events),
        Response("digest", digest),
    ],
    description="Every morning at 06:00 UTC: yesterday's events as a short digest.",
)

sample_input: dict[str, Any] = {}  # no "day": yesterday
