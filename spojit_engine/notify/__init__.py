"""Credit notifications: workspace thresholds and per-workflow cost rules, delivered through a
Prefect notification block or a plain webhook, exactly once, after the ledger commits. See the
README here."""
