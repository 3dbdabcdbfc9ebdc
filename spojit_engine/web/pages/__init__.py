"""The HTML side of the app: server-rendered pages for a signed-in browser (billing, executions,
notifications, members), the sign-in routes, and what renders them (Jinja2 templates, the chart's
geometry). See README.md."""

from spojit_engine.lazy import exports

__all__ = [
    "PageRefused",
    "billing",
    "charts",
    "executions",
    "members",
    "notifications",
    "signin",
    "templating",
]
__getattr__ = exports(
    __name__,
    {
        "PageRefused": "spojit_engine.web.pages.signin",
        "billing": "spojit_engine.web.pages.billing",
        "charts": "spojit_engine.web.pages.charts",
        "executions": "spojit_engine.web.pages.executions",
        "members": "spojit_engine.web.pages.members",
        "notifications": "spojit_engine.web.pages.notifications",
        "signin": "spojit_engine.web.pages.signin",
        "templating": "spojit_engine.web.pages.templating",
    },
)
