"""``create_app``: the FastAPI app ``spojit serve`` runs. Routes are thin callers of ``Engine``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from spojit_engine.engine import Engine
from spojit_engine.web.errors import install_error_handlers
from spojit_engine.web.limits import BodyLimit


def create_app(engine: Engine | None = None, *, reconcile: bool = False) -> FastAPI:
    """The app over ``engine``; ``reconcile`` runs the guard's reconciler in the background
    while the app is up (``spojit serve`` does; tests drive the guard themselves)."""
    engine = engine or Engine()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if not reconcile:
            yield
            return
        reconciler = engine.reconciler()
        reconciler.start()
        try:
            yield
        finally:
            reconciler.stop()

    app = FastAPI(
        title="spojit_engine",
        summary="Credits, usage and top-ups for Prefect workflows.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.engine = engine
    install_error_handlers(app)
    settings = engine.settings
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.request_body_max_bytes,
        depth_max=settings.json_depth_max,
        digits_max=settings.json_number_digits_max,
    )
    from spojit_engine.web.api import billing, deployments, grants, hooks, reports, stripe_webhook
    from spojit_engine.web.pages import billing as billing_pages
    from spojit_engine.web.pages import executions, notifications, signin

    app.include_router(reports.router)
    app.include_router(billing.router)
    app.include_router(grants.router)
    app.include_router(deployments.router)
    app.include_router(stripe_webhook.router)
    app.include_router(signin.router)  # /login/{token}, /logout
    app.include_router(billing_pages.router)  # /billing (server-rendered, signed in)
    app.include_router(executions.router)  # /executions, /executions/{run}
    app.include_router(notifications.router)  # /settings/notifications (admins)

    @app.exception_handler(signin.PageRefused)
    async def page_refused(_: Request, exc: signin.PageRefused) -> Response:
        return exc.response

    app.include_router(hooks.router)  # POST /hooks/{name}: workflow webhooks (guards)
    return app
