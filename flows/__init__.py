"""Example workflows a new user runs first (``spojit demo`` runs all three, offline).

Each module exposes ``workflow`` (a ``spojit_engine.Workflow``) and ``sample_input`` (its payload),
and imports only ``spojit_engine``, the standard library and pydantic, so it loads both as
``flows.lead_enrichment`` from the repository root and by file path
(``spojit run flows/lead_enrichment.py``). Importing this package imports none of them.

- ``lead_enrichment``: a Loop over leads with a Connector in Agent mode, a map Transform and a
  Response.
- ``support_triage``: Knowledge over the help centre and a structured Transform, a Condition that
  pages on-call or queues the ticket.
- ``nightly_digest``: a cron Trigger, a Direct Connector, a map Transform, a Response.
"""

EXAMPLES = ("lead_enrichment", "support_triage", "nightly_digest")
