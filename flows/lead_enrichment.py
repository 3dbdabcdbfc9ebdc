"""Lead enrichment: for each lead, an agent looks up the company and finds a contact, then a map
step scores and sorts the leads and a Response sums them up.

Cost shape: the Loop multiplies the Agent step — every lead is LLM round trips (offline, the mock
LLM calls each tool once, then answers: three billed round trips per lead). ``test_sample=2``
scopes a test run (``spojit run lead_enrichment --test``) down to the first two leads.
"""

from __future__ import annotations

import hashlib
from typing import Any

from spojit_engine import Connector, Loop, Response, Transform, Workflow

INDUSTRIES = ("logistics", "fintech", "retail", "healthcare", "manufacturing", "media")
TITLES = ("Head of Operations", "CTO", "VP Sales", "Founder", "Head of Data")
FIRST_NAMES = ("Ana", "Luka", "Maja", "Jan", "Nina", "Tim", "Eva", "Marko")
LAST_NAMES = ("Novak", "Horvat", "Kovač", "Zupan", "Krajnc", "Potočnik")


def _pick(seed: str, options: tuple[str, ...], salt: str = "") -> str:
    digest = hashlib.sha256(f"{salt}:{seed}".encode()).digest()
    return options[digest[0] % len(options)]


def _number(seed: str, low: int, high: int) -> int:
    digest = hashlib.sha256(seed.encode()).digest()
    return low + int.from_bytes(digest[:4], "big") % (high - low + 1)


def _industry(domain: str) -> str:
    for hint, industry in (("logistic", "logistics"), ("pay", "fintech"), ("goods", "retail")):
        if hint in domain:
            return industry
    return _pick(domain, INDUSTRIES)


def lookup_company(domain: str) -> dict[str, Any]:
    """Look up a company by its web domain: name, industry, head count and country."""
    name = domain.split(".")[0].replace("-", " ").title()
    return {
        "domain": domain,
        "company": name,
        "industry": _industry(domain),
        "employees": _number(domain, 8, 4_000),
        "country": _pick(domain, ("SI", "DE", "AT", "HR", "IT", "NL"), "country"),
    }


def find_contact(company: str) -> dict[str, Any]:
    """Find the best person to talk to at a company: name, title and email."""
    first, last = _pick(company, FIRST_NAMES, "first"), _pick(company, LAST_NAMES, "last")
    slug = "".join(c for c in company.lower() if c.isalnum()) or "company"
    return {
        "company": company,
        "contact": f"{first} {last}",
        "title": _pick(company, TITLES, "role"),
        "email": f"{first.lower()}@{slug}.example",
    }


def score_leads(enriched: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per lead from the agent's tool results, best fit first."""
    rows = []
    for item in enriched:
        found = item.get("tool_results", {})
        company = found.get("lookup_company", {})
        contact = found.get("find_contact", {})
        employees = int(company.get("employees", 0))
        fit = 40 if 50 <= employees <= 1_000 else 15
        fit += 30 if company.get("industry") in ("logistics", "fintech", "retail") else 10
        fit += 20 if contact.get("title") in ("Head of Operations", "CTO") else 5
        rows.append({**company, **contact, "score": fit})
    return sorted(rows, key=lambda row: (-row["score"], row.get("company", "")))


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    best = rows[0] if rows else None
    headline = (
        f"{len(rows)} leads enriched; best fit: {best['company']} "
        f"({best['contact']}, {best['title']}, score {best['score']})."
        if best
        else "No leads to enrich."
    )
    return {"summary": headline, "leads": rows}


workflow = Workflow(
    "lead_enrichment",
    [
        Loop(
            "each lead",
            Connector(
                "enrich lead",
                mode="agent",
                tools=[lookup_company, find_contact],
                instructions="Look up the lead's company, find a contact there, then answer.",
            ),
            test_sample=2,
        ),
        Transform("score leads", score_leads),
        Response("report", summarise),
    ],
    description="Enrich inbound leads with company data and a contact (Connector in Agent mode).",
)

sample_input: list[dict[str, str]] = [
    {"domain": "northwind-logistics.io", "company": "Northwind Logistics"},
    {"domain": "lumen-pay.com", "company": "Lumen Pay"},
    {"domain": "alpine-goods.eu", "company": "Alpine Goods"},
]
