"""Sign-in tables (migration ``0005_web_sessions`` creates them). Tokens are never stored, only
their SHA-256 hashes (UNIQUE); a link starts at most one session (UNIQUE ``link_id``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import Column, ForeignKey, String
from sqlmodel import Field, SQLModel

from spojit_engine.metering.store.schema import UTCDateTime


def _col(type_: Any, *args: Any, **kwargs: Any) -> Any:
    kwargs.setdefault("nullable", False)
    return Field(sa_column=Column(type_, *args, **kwargs))


class LoginLink(SQLModel, table=True):
    """A one-time sign-in link: valid until ``expires_at``, spent when ``used_at`` is set."""

    __tablename__: ClassVar[str] = "login_links"

    id: str = Field(sa_column=Column(String(32), primary_key=True))
    token_hash: str = _col(String(64), unique=True)
    workspace_id: str = _col(String(32), ForeignKey("workspaces.id"))
    member_id: str = _col(String(32), ForeignKey("members.id"))
    created_at: datetime = _col(UTCDateTime())
    expires_at: datetime = _col(UTCDateTime())
    used_at: datetime | None = _col(UTCDateTime(), nullable=True)


class BrowserSession(SQLModel, table=True):
    """A signed-in browser: valid until ``expires_at`` unless ``ended_at`` (signed out)."""

    __tablename__: ClassVar[str] = "browser_sessions"

    id: str = Field(sa_column=Column(String(32), primary_key=True))
    token_hash: str = _col(String(64), unique=True)
    workspace_id: str = _col(String(32), ForeignKey("workspaces.id"))
    member_id: str = _col(String(32), ForeignKey("members.id"))
    link_id: str | None = _col(String(32), ForeignKey("login_links.id"), nullable=True, unique=True)
    created_at: datetime = _col(UTCDateTime())
    expires_at: datetime = _col(UTCDateTime())
    ended_at: datetime | None = _col(UTCDateTime(), nullable=True)


login_links = LoginLink.__table__  # type: ignore[attr-defined]
browser_sessions = BrowserSession.__table__  # type: ignore[attr-defined]
