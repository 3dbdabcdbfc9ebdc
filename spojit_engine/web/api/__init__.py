"""The JSON side of the app: one router module per noun under ``/api/v1`` (member tokens), and
the two webhooks that carry their own credentials (Stripe's signature, a hook's secret); what they
share in the OpenAPI schema is ``openapi``. See README.md."""

from spojit_engine.lazy import exports

__all__ = [
    "billing",
    "deployments",
    "grants",
    "hooks",
    "members",
    "openapi",
    "reports",
    "stripe_webhook",
]
__getattr__ = exports(
    __name__,
    {
        "billing": "spojit_engine.web.api.billing",
        "deployments": "spojit_engine.web.api.deployments",
        "grants": "spojit_engine.web.api.grants",
        "hooks": "spojit_engine.web.api.hooks",
        "members": "spojit_engine.web.api.members",
        "openapi": "spojit_engine.web.api.openapi",
        "reports": "spojit_engine.web.api.reports",
        "stripe_webhook": "spojit_engine.web.api.stripe_webhook",
    },
)
