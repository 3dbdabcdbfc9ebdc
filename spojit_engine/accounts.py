"""Workspaces, members and plan changes: who may do what, and the plan a workspace is on.

Member tokens are shown once and stored only as SHA-256 hashes; a token is 32 random bytes, so a
fast hash is enough (there is nothing to brute-force, unlike a password). Rotating a token
replaces its hash, so the old token is refused by the next request. Removing a member sets
``removed_at`` instead of deleting the row: their token is refused from then on, while runs,
grants and usage keep naming them. A workspace always keeps one admin.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, update
from sqlalchemy.exc import IntegrityError

from spojit_engine.db import read_transaction, write_transaction
from spojit_engine.errors import (
    AdminRequired,
    AlreadyExists,
    Conflict,
    InvalidInput,
    Unauthorized,
    UnknownMember,
    UnknownWorkspace,
)
from spojit_engine.metering.core.periods import add_months_clamped
from spojit_engine.metering.core.records import DEFAULT_PRIORITY
from spojit_engine.metering.ledger.maintenance import grant_allowance, grant_block
from spojit_engine.metering.ledger.operations import Ledger
from spojit_engine.metering.ledger.posting import LedgerTx
from spojit_engine.metering.store import schema

ROLES = ("admin", "member")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True, slots=True)
class MemberRecord:
    id: str
    workspace_id: str
    email: str
    role: str
    token: str | None = None  # only on the record add_member and rotate_token return
    added_at: datetime | None = None
    removed_at: datetime | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True, slots=True)
class PlanChange:
    plan_id: str
    pending_plan_id: str | None
    effective_at: datetime


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def create_workspace(ledger: Ledger, name: str, plan_id: str, period_start: datetime | None) -> str:
    """A workspace on ``plan_id``; periods anchor at ``period_start`` (default today 00:00 UTC)."""
    if not _NAME.match(name):
        raise InvalidInput(
            f"Workspace name {name!r} must be 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit."
        )
    ledger.catalog.plan(plan_id)
    now = ledger.clock()
    # Default anchor: today's midnight UTC, so "resets on" is a date a person can read.
    anchor = period_start or now.replace(hour=0, minute=0, second=0, microsecond=0)
    if anchor.tzinfo is None:
        raise InvalidInput("period_start must be timezone-aware (UTC).")
    if anchor > now:
        raise InvalidInput("period_start cannot be in the future.")
    workspace_id = _new_id("ws")
    period_end = add_months_clamped(anchor, 1)
    try:
        with write_transaction(ledger.engine) as conn:
            conn.execute(
                schema.workspaces.insert().values(
                    id=workspace_id,
                    name=name,
                    plan_id=plan_id,
                    anchor_at=anchor,
                    period_start=anchor,
                    period_end=period_end,
                    next_due_at=period_end,
                    credits_ucr=0,
                    held_ucr=0,
                    overdraft_ucr=0,
                    created_at=now,
                )
            )
            grant_allowance(LedgerTx.open(conn, workspace_id, now), ledger.catalog, plan_id)
    except IntegrityError:
        raise AlreadyExists(f"Workspace {name!r} already exists.") from None
    ledger.bring_up_to_date(workspace_id)
    return workspace_id


def find_workspace(ledger: Ledger, name_or_id: str) -> str:
    """A workspace id from its id or its name."""
    w = schema.workspaces.c
    with read_transaction(ledger.engine) as conn:
        found = conn.execute(
            select(w.id).where((w.id == name_or_id) | (w.name == name_or_id))
        ).scalar()
    if found is None:
        raise UnknownWorkspace(name_or_id)
    return str(found)


def list_workspaces(ledger: Ledger) -> list[tuple[str, str]]:
    w = schema.workspaces.c
    with read_transaction(ledger.engine) as conn:
        return [(r.id, r.name) for r in conn.execute(select(w.id, w.name).order_by(w.created_at))]


_m = schema.members.c
_MEMBER_COLUMNS = (_m.id, _m.workspace_id, _m.email, _m.role, _m.created_at, _m.removed_at)


def _record(row: Any, token: str | None = None) -> MemberRecord:
    member_id, workspace_id, email, role, added_at, removed_at = row
    return MemberRecord(member_id, workspace_id, email, role, token, added_at, removed_at)


def get_member(ledger: Ledger, member_id: str) -> MemberRecord:
    """A member by id, removed ones too (history names them)."""
    with read_transaction(ledger.engine) as conn:
        row = conn.execute(select(*_MEMBER_COLUMNS).where(_m.id == member_id)).one_or_none()
    if row is None:
        raise UnknownMember(member_id)
    return _record(row)


def list_members(ledger: Ledger, workspace_id: str, *, removed: bool = False) -> list[MemberRecord]:
    """A workspace's members, by email; with ``removed``, the removed ones too."""
    query = select(*_MEMBER_COLUMNS).where(_m.workspace_id == workspace_id)
    if not removed:
        query = query.where(_m.removed_at.is_(None))
    with read_transaction(ledger.engine) as conn:
        return [_record(row) for row in conn.execute(query.order_by(_m.email, _m.id))]


def _find(conn: Connection, workspace_id: str, who: str) -> MemberRecord:
    """The member ``who`` (an id or an email) names in this workspace, removed or not."""
    named = (_m.id == who) | (_m.email == who.strip().lower())
    row = conn.execute(
        select(*_MEMBER_COLUMNS).where(_m.workspace_id == workspace_id, named)
    ).one_or_none()
    if row is None:
        raise UnknownMember(who)
    return _record(row)


def require_admin(ledger: Ledger, workspace_id: str, by: str | None, action: str) -> None:
    """``by`` None is the local operator (who holds the database itself); else it must be an
    admin of this very workspace."""
    if by is None:
        return
    member = get_member(ledger, by)
    if member.removed_at is not None:
        raise Unauthorized(f"{member.email} was removed from this workspace.")
    if member.workspace_id != workspace_id:
        raise AdminRequired(action, f"{member.email} (of another workspace)")
    if not member.is_admin:
        raise AdminRequired(action, member.email)


def add_member(
    ledger: Ledger, workspace_id: str, email: str, role: str, by: str | None
) -> MemberRecord:
    """A new member with a fresh token, returned once and stored only as its hash."""
    if role not in ROLES:
        raise InvalidInput(f"Role {role!r} must be admin or member.")
    if not _EMAIL.match(email):
        raise InvalidInput(f"{email!r} is not an email address.")
    find_workspace(ledger, workspace_id)
    require_admin(ledger, workspace_id, by, "add members")
    token = _new_token()
    try:
        with write_transaction(ledger.engine) as conn:
            found = conn.execute(
                select(_m.id, _m.removed_at).where(
                    _m.workspace_id == workspace_id, _m.email == email.lower()
                )
            ).one_or_none()
            if found is not None and found.removed_at is None:
                raise AlreadyExists(f"{email} is already a member of this workspace.")
            member_id = found.id if found is not None else _new_id("mem")
            values = {"role": role, "token_hash": hash_token(token), "removed_at": None}
            if found is not None:  # added back: the same member, so history stays theirs
                conn.execute(update(schema.members).where(_m.id == member_id).values(**values))
            else:
                conn.execute(
                    schema.members.insert().values(
                        id=member_id, workspace_id=workspace_id, email=email.lower(),
                        created_at=ledger.clock(), **values,
                    )
                )  # fmt: skip
            row = conn.execute(select(*_MEMBER_COLUMNS).where(_m.id == member_id)).one()
    except IntegrityError:
        raise AlreadyExists(f"{email} is already a member of this workspace.") from None
    return _record(row, token)


def _new_token() -> str:
    return f"spj_{secrets.token_urlsafe(32)}"


def remove_member(ledger: Ledger, workspace_id: str, who: str, by: str | None) -> MemberRecord:
    """Remove ``who`` (an id or an email): their token is refused from now on; the row stays.

    The workspace row is locked first, so two admins removing each other at once cannot leave
    the workspace without an admin."""
    require_admin(ledger, workspace_id, by, "remove members")
    w = schema.workspaces.c
    with write_transaction(ledger.engine) as conn:
        conn.execute(select(w.id).where(w.id == workspace_id).with_for_update())
        if by is not None and _find(conn, workspace_id, by).removed_at is not None:
            raise Unauthorized("You were removed from this workspace while removing a member.")
        member = _find(conn, workspace_id, who)
        if member.removed_at is not None:
            raise Conflict(
                f"{member.email} was already removed on {member.removed_at:%Y-%m-%d %H:%M} UTC."
            )
        if member.is_admin and _other_admins(conn, member) == 0:
            raise Conflict(
                f"{member.email} is the workspace's last admin; add another admin first."
            )
        now = ledger.clock()
        conn.execute(update(schema.members).where(_m.id == member.id).values(removed_at=now))
    return replace(member, token=None, removed_at=now)


def _other_admins(conn: Connection, member: MemberRecord) -> int:
    """How many current admins the member's workspace has besides them."""
    return int(
        conn.execute(
            select(func.count()).where(
                _m.workspace_id == member.workspace_id,
                _m.role == "admin",
                _m.removed_at.is_(None),
                _m.id != member.id,
            )
        ).scalar_one()
    )


def rotate_token(ledger: Ledger, workspace_id: str, who: str, by: str | None) -> MemberRecord:
    """A new token for ``who`` (an id or an email), returned once; the old one is refused from
    now on. A member may rotate their own token; anyone else's takes an admin."""
    with read_transaction(ledger.engine) as conn:
        target = _find(conn, workspace_id, who)
    if by != target.id:
        require_admin(ledger, workspace_id, by, "rotate another member's token")
    token = _new_token()
    with write_transaction(ledger.engine) as conn:
        rotated = conn.execute(
            update(schema.members)
            .where(_m.id == target.id, _m.removed_at.is_(None))
            .values(token_hash=hash_token(token))
        ).rowcount
    if rotated != 1:
        raise Conflict(f"{target.email} was removed; add them again for a new token.")
    return replace(target, token=token)


def authenticate(ledger: Ledger, token: str) -> MemberRecord:
    """The member a bearer token belongs to."""
    with read_transaction(ledger.engine) as conn:
        row = conn.execute(
            select(*_MEMBER_COLUMNS).where(
                _m.token_hash == hash_token(token), _m.removed_at.is_(None)
            )
        ).one_or_none()
    if row is None:
        raise Unauthorized(
            "The token is not a member token of any workspace (or it was rotated, or its member "
            "removed)."
        )
    return _record(row)


def set_plan(ledger: Ledger, workspace_id: str, plan_id: str, by: str | None) -> PlanChange:
    """Upgrade at once (the allowance rises by the difference now); downgrade at the next reset.

    Choosing the current plan cancels a pending downgrade.
    """
    new = ledger.catalog.plan(plan_id)
    require_admin(ledger, workspace_id, by, "change the plan")
    with ledger.locked(workspace_id) as tx:
        current = ledger.catalog.plan(tx.account.plan_id)
        if new.id == current.id or new.allowance_ucr <= current.allowance_ucr:
            pending = None if new.id == current.id else new.id
            tx.set_account(pending_plan_id=pending)
            effective = tx.now if pending is None else tx.account.period_end
            return PlanChange(current.id, pending, effective)
        tx.set_account(plan_id=new.id, pending_plan_id=None)
        grant_block(
            tx,
            key=f"upgrade:{workspace_id}:{tx.account.period_start.isoformat()}:{new.id}",
            kind="allowance",
            amount_ucr=new.allowance_ucr - current.allowance_ucr,
            priority=DEFAULT_PRIORITY["allowance"],
            effective_at=tx.now,
            expires_at=tx.account.period_end,
            granted_by=by or "operator",
            reason=f"upgrade {current.id} -> {new.id}",
        )
        return PlanChange(new.id, None, tx.now)
