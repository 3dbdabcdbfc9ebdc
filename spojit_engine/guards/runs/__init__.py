"""A flow run at the guard."""
