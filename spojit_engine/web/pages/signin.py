"""Browser sign-in for the pages: ``GET /login/{token}`` (or ``/login?token=``) spends a one-time
link and sets the session cookie, ``POST /logout`` ends the session; and what every page leans on:
``PageSession`` (the signed-in member, else a sign-in page), ``checked_form`` (the CSRF check),
``message`` (a page that says one thing) and ``PageRefused`` (answer with that page instead).

The cookie is HttpOnly, SameSite=Strict, Secure when ``SPOJIT_PUBLIC_URL`` is https, and names a
session stored hashed with its expiry. A SameSite=Strict cookie is not sent on a navigation that
started on another site (a link in an e-mail, Stripe's return to ``/billing/success``), so a page
that finds no cookie on such a request answers with a page that reloads itself once: the reload
starts here, carries the cookie, and nothing is acted on twice (GET pages change nothing, and the
checkout redirect's fulfilment is idempotent).

Every form POST carries ``csrf_token`` (an HMAC of the session token, see
``spojit_engine/signin/links.py``); a POST whose token is missing or wrong, or whose ``Origin`` is
another site, is refused with 403. The cookie alone never authorises a POST. The JSON API ignores
the cookie (bearer tokens only).
"""

from __future__ import annotations

import hmac
from typing import Annotated
from urllib.parse import parse_qsl, urlsplit

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from spojit_engine.errors import SignInRefused
from spojit_engine.results import BrowserSession
from spojit_engine.web.auth import EngineDep, engine_of
from spojit_engine.web.pages.templating import PAGE_HEADERS, render

COOKIE = "spojit_session"
router = APIRouter(tags=["pages"], include_in_schema=False)


class PageRefused(Exception):
    """Raised by a page's dependencies: answer with ``response`` instead of the page."""

    def __init__(self, response: Response) -> None:
        super().__init__("page refused")
        self.response = response


SIGN_IN = "spojit login-link --member YOUR-EMAIL"  # what an admin runs for you


def message(
    title: str,
    text: str,
    status: int,
    *,
    hint: str | None = None,
    command: str | None = None,
    next_link: tuple[str, str] | None = None,
) -> HTMLResponse:
    """A page that says one thing: a refusal, a sign-out; ``next_link`` is (href, text)."""
    return render(
        "message.html",
        status,
        title=title,
        text=text,
        hint=hint,
        command=command,
        next_link=next_link,
        session=None,
    )


def optional_session(request: Request) -> BrowserSession | None:
    """The live session the cookie names, or None (no cookie, ended or expired)."""
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    try:
        return engine_of(request).session_member(token)
    except SignInRefused:
        return None


def page_session(
    request: Request, session: Annotated[BrowserSession | None, Depends(optional_session)]
) -> BrowserSession:
    """The signed-in member; else a self-reload after a cross-site arrival (GET only: a
    cross-site POST is refused like any unsigned one), else a 401 page."""
    if session is not None:
        return session
    if request.method == "GET" and request.headers.get("sec-fetch-site") == "cross-site":
        raise PageRefused(render("continue.html", 200, url=str(request.url), session=None))
    raise PageRefused(message("Sign in", "You are not signed in to spojit.", 401, command=SIGN_IN))


PageSession = Annotated[BrowserSession, Depends(page_session)]


def _same_site_origin(request: Request, public_url: str) -> bool:
    """No ``Origin`` header (an old browser), or one naming this site."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    ours = {f"{request.url.scheme}://{request.url.netloc}"}
    public = urlsplit(public_url)
    ours.add(f"{public.scheme}://{public.netloc}")
    return origin in ours


async def checked_form(request: Request, session: BrowserSession) -> dict[str, str]:
    """The POSTed form's fields, once its CSRF token and origin check out (else a 403 page)."""
    settings = engine_of(request).settings
    body = (await request.body()).decode("utf-8", errors="replace")
    try:
        fields = dict(parse_qsl(body, max_num_fields=settings.form_fields_max))
    except ValueError:
        raise PageRefused(
            message("Request refused", "The form has too many fields.", 400)
        ) from None
    token_ok = hmac.compare_digest(fields.get("csrf_token", ""), session.csrf_token)
    if not token_ok or not _same_site_origin(request, settings.public_url):
        raise PageRefused(
            message(
                "Request refused",
                "This form was not sent from your open spojit page (its security token is "
                "missing or wrong); nothing was changed.",
                403,
                hint="Reload the page and try again.",
            )
        )
    return fields


def _redeem(request: Request, token: str) -> Response:
    engine = engine_of(request)
    try:
        session = engine.redeem_login_link(token)
    except SignInRefused as exc:
        already = optional_session(request)  # this browser may be signed in from the first use
        back = ("/billing", "You are signed in: go to Billing") if already else None
        return message("This sign-in link cannot be used", str(exc), 401, next_link=back)
    response = RedirectResponse("/billing", status_code=303, headers=PAGE_HEADERS)
    response.set_cookie(
        COOKIE,
        session.token,
        max_age=engine.settings.browser_session_ttl_hours * 3600,
        path="/",
        httponly=True,
        samesite="strict",
        secure=urlsplit(engine.settings.public_url).scheme == "https",
    )
    return response


@router.get("/login/{token}")
def login_link(request: Request, token: str) -> Response:
    """Open a one-time sign-in link: start a browser session and land on the billing page."""
    return _redeem(request, token)


@router.get("/login")
def login_query(
    request: Request, token: Annotated[str | None, Query(max_length=200)] = None
) -> Response:
    """The same as ``/login/{token}``, for links that carry the token as ``?token=``."""
    if not token:
        return message("Sign in", "This sign-in link has no token.", 400, command=SIGN_IN)
    return _redeem(request, token)


@router.post("/logout")
async def logout(request: Request, engine: EngineDep, session: PageSession) -> Response:
    """Sign out (a form with the CSRF token): the session ends and the cookie is cleared."""
    await checked_form(request, session)
    await run_in_threadpool(engine.end_session, session.token)
    response = message("Signed out", "You are signed out of spojit.", 200, command=SIGN_IN)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response
