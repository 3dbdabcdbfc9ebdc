"""One-time login links and browser sessions, over the ``login_links`` and ``browser_sessions``
tables. Tokens are 32 random bytes shown once and stored only as SHA-256 hashes (as member tokens
are); a link is spent by the one transaction whose conditional update claims it, so two browsers
opening the same link start one session. The CSRF token of a session is an HMAC of its token: bound
to that session, never stored, and unknowable without the cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.engine import Engine as SAEngine

from spojit_engine.accounts import MemberRecord, hash_token
from spojit_engine.db import read_transaction, write_transaction
from spojit_engine.errors import InvalidInput, SignInRefused, UnknownMember
from spojit_engine.metering.store import schema
from spojit_engine.signin.schema import browser_sessions, login_links

_ASK_AGAIN = "ask an admin for a new one (spojit login-link)"


@dataclass(frozen=True, slots=True)
class SessionRecord:
    token: str
    member: MemberRecord
    expires_at: datetime

    @property
    def csrf_token(self) -> str:
        return csrf_token_for(self.token)


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def csrf_token_for(session_token: str) -> str:
    """The synchronizer token every form of this session carries."""
    return hmac.new(session_token.encode(), b"spojit-csrf-v1", hashlib.sha256).hexdigest()


def csrf_matches(session_token: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(csrf_token_for(session_token), given or "")


def resolve_member(conn: Connection, workspace_id: str, who: str | None) -> MemberRecord:
    """The current member ``who`` names (an id or an email) in this workspace; None: its first
    admin. A removed member is unknown here: they cannot sign in, nor keep a session."""
    m = schema.members.c
    query = select(m.id, m.workspace_id, m.email, m.role).where(
        m.workspace_id == workspace_id, m.removed_at.is_(None)
    )
    if who is None:
        query = query.where(m.role == "admin").order_by(m.created_at).limit(1)
    else:
        query = query.where((m.id == who) | (m.email == who.strip().lower()))
    row = conn.execute(query).first()
    if row is None:
        if who is None:
            raise InvalidInput("This workspace has no admin; name a member with --member.")
        raise UnknownMember(who)
    return MemberRecord(*row)


def create_link(
    sa: SAEngine,
    workspace_id: str,
    *,
    member: str | None,
    now: datetime,
    ttl: timedelta,
    history: timedelta,
) -> tuple[str, MemberRecord]:
    """A new one-time link token for ``member``; forgets links and sessions over ``history`` old."""
    token = secrets.token_urlsafe(32)
    with write_transaction(sa) as conn:
        who = resolve_member(conn, workspace_id, member)
        _forget_old(conn, now - history)
        conn.execute(
            insert(login_links).values(
                id=_new_id("lnk"),
                token_hash=hash_token(token),
                workspace_id=workspace_id,
                member_id=who.id,
                created_at=now,
                expires_at=now + ttl,
                used_at=None,
            )
        )
    return token, who


def _forget_old(conn: Connection, before: datetime) -> None:
    s, k = browser_sessions.c, login_links.c
    conn.execute(delete(browser_sessions).where(s.expires_at < before))
    in_use = select(s.link_id).where(s.link_id.is_not(None))
    conn.execute(delete(login_links).where(k.expires_at < before, k.id.not_in(in_use)))


def redeem_link(
    sa: SAEngine, token: str, *, now: datetime, session_ttl: timedelta
) -> SessionRecord:
    """Spend a link and start a browser session; ``SignInRefused`` when unknown, used or expired."""
    k = login_links.c
    session_token = secrets.token_urlsafe(32)
    with write_transaction(sa) as conn:
        link = conn.execute(
            select(k.id, k.workspace_id, k.member_id, k.expires_at, k.used_at).where(
                k.token_hash == hash_token(token)
            )
        ).one_or_none()
        if link is None:
            raise SignInRefused(f"This sign-in link is not valid; {_ASK_AGAIN}.")
        if link.used_at is not None:
            raise SignInRefused(f"This sign-in link was already used; {_ASK_AGAIN}.")
        if link.expires_at <= now:
            raise SignInRefused(
                f"This sign-in link expired at {link.expires_at:%Y-%m-%d %H:%M} UTC; {_ASK_AGAIN}."
            )
        claimed = conn.execute(
            update(login_links).where(k.id == link.id, k.used_at.is_(None)).values(used_at=now)
        ).rowcount
        if claimed != 1:  # another browser opened it in the same instant
            raise SignInRefused(f"This sign-in link was already used; {_ASK_AGAIN}.")
        conn.execute(
            insert(browser_sessions).values(
                id=_new_id("ses"),
                token_hash=hash_token(session_token),
                workspace_id=link.workspace_id,
                member_id=link.member_id,
                link_id=link.id,
                created_at=now,
                expires_at=now + session_ttl,
                ended_at=None,
            )
        )
        member = _signed_in_member(conn, link.workspace_id, link.member_id)
    return SessionRecord(session_token, member, now + session_ttl)


def read_session(sa: SAEngine, token: str, *, now: datetime) -> SessionRecord:
    """The live session ``token`` belongs to; ``SignInRefused`` when unknown, ended or expired."""
    s = browser_sessions.c
    with read_transaction(sa) as conn:
        found = conn.execute(
            select(s.workspace_id, s.member_id, s.expires_at).where(
                s.token_hash == hash_token(token), s.ended_at.is_(None), s.expires_at > now
            )
        ).one_or_none()
        if found is None:
            raise SignInRefused(f"You are signed out; {_ASK_AGAIN}.")
        member = _signed_in_member(conn, found.workspace_id, found.member_id)
    return SessionRecord(token, member, found.expires_at)


def _signed_in_member(conn: Connection, workspace_id: str, member_id: str) -> MemberRecord:
    """The member a link or session signs in; ``SignInRefused`` once they were removed, so a
    removed member's open session is refused on its next request."""
    try:
        return resolve_member(conn, workspace_id, member_id)
    except UnknownMember:
        raise SignInRefused(
            "You are no longer a member of this workspace; ask an admin to add you again."
        ) from None


def end_session(sa: SAEngine, token: str, *, now: datetime) -> bool:
    """Sign out: True when a live session ended."""
    s = browser_sessions.c
    with write_transaction(sa) as conn:
        ended = conn.execute(
            update(browser_sessions)
            .where(s.token_hash == hash_token(token), s.ended_at.is_(None))
            .values(ended_at=now)
        ).rowcount
    return bool(ended)
