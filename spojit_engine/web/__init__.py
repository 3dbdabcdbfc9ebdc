"""The ASGI app behind ``spojit serve``: JSON API, Stripe and workflow webhooks (README.md)."""
