"""``create_app``: the FastAPI app ``spojit serve`` runs — the JSON API and webhooks (``api/``) and
the signed-in pages (``pages/``) behind one body limit and one error shape, with an OpenAPI schema
that states the app's own bounds, and sign-in tokens kept out of the access log. Routes are thin
callers of ``Engine``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.responses import RedirectResponse

from spojit_engine.engine import Engine
from spojit_engine.web.access_log import keep_tokens_out_of_access_log
from spojit_engine.web.api.openapi import state_bounds
from spojit_engine.web.errors import install_error_handlers
from spojit_engine.web.limits import BodyLimit


def create_app(engine: Engine | None = None, *, reconcile: bool = False) -> FastAPI:
    """The app over ``engine``; ``reconcile`` runs the guard's reconciler in the background
    while the app is up (``spojit serve`` does; tests drive the guard themselves)."""
    engine = engine or Engine()
    app = FastAPI(
        title="spojit_engine",
        summary="Credits, usage and top-ups for Prefect workflows.",
        version="0.1.0",
        lifespan=_lifespan(engine, reconcile=reconcile),
    )
    app.state.engine = engine
    install_error_handlers(app)
    _limit_request_bodies(app, engine)
    _mount_routes(app)
    state_bounds(app, engine.settings, lambda: engine.now().date())
    keep_tokens_out_of_access_log()
    return app


def _lifespan(
    engine: Engine, *, reconcile: bool
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """While the app is up: the guard's reconciler, when asked for."""

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

    return lifespan


def _limit_request_bodies(app: FastAPI, engine: Engine) -> None:
    """Every request body: its size, and a JSON body's depth and number length (``limits.py``)."""
    settings = engine.settings
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.request_body_max_bytes,
        depth_max=settings.json_depth_max,
        digits_max=settings.json_number_digits_max,
    )


def _mount_routes(app: FastAPI) -> None:
    """Every router, in this order (the OpenAPI schema lists paths as they are mounted), and the
    pages' refusals answered with their own page."""
    from spojit_engine.web.api import (
        billing,
        deployments,
        grants,
        hooks,
        members,
        reports,
        stripe_webhook,
    )
    from spojit_engine.web.pages import billing as billing_page
    from spojit_engine.web.pages import executions, notifications, signin
    from spojit_engine.web.pages import members as members_page

    for router in (
        reports.router,  # /api/v1: usage, breakdown, timeline, executions
        billing.router,  # /api/v1: plans, packs, topups, plan
        grants.router,  # /api/v1/grants (admins)
        members.router,  # /api/v1/members (admins; rotate: also a member's own token)
        deployments.router,  # /api/v1/deployments
        stripe_webhook.router,  # POST /webhooks/stripe (signed by Stripe)
        signin.router,  # /login/{token}, /logout
        billing_page.router,  # /billing (server-rendered, signed in)
        executions.router,  # /executions, /executions/{run}
        notifications.router,  # /settings/notifications (admins)
        members_page.router,  # /settings/members (admins)
        hooks.router,  # POST /hooks/{name}: workflow webhooks (guards)
    ):
        app.include_router(router)

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        """People who open the server's address land on Billing (or its sign-in page)."""
        return RedirectResponse("/billing", status_code=303)

    @app.exception_handler(signin.PageRefused)
    async def page_refused(_: Request, exc: signin.PageRefused) -> Response:
        return exc.response
