"""The ASGI app behind ``spojit serve``: the JSON API and webhooks (``api/``) and the signed-in
pages (``pages/``), assembled by ``app.create_app``. See README.md."""

from spojit_engine.lazy import exports

__all__ = ["create_app"]
__getattr__ = exports(__name__, {"create_app": "spojit_engine.web.app"})
