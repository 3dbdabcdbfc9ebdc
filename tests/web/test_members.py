"""Members over HTTP, on SQLite and PostgreSQL: an admin lists, removes and rotates members with
``/api/v1/members`` and on Settings → Members; a removed or rotated token is refused by the next
request, a removed member's open browser session too, while history keeps naming them."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from spojit_engine import Engine
from spojit_engine.accounts import MemberRecord
from spojit_engine.metering.store import schema
from spojit_engine.web.app import create_app
from spojit_engine.web.pages.signin import COOKIE


class Team:
    """A workspace with an admin and two members, and a second workspace with its own admin."""

    def __init__(self, engine: Engine) -> None:
        self.ws = engine.create_workspace("acme", plan="starter").id
        self.admin = engine.add_member(self.ws, "ana@acme.io", role="admin")
        self.bob = engine.add_member(self.ws, "bob@acme.io")
        self.cy = engine.add_member(self.ws, "cy@acme.io")
        other = engine.create_workspace("beta", plan="free").id
        self.stranger = engine.add_member(other, "zed@beta.io", role="admin")


@pytest.fixture
def team(engine: Engine) -> Team:
    return Team(engine)


@pytest.fixture
def api(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(engine), follow_redirects=False) as client:
        yield client


def auth(member: MemberRecord | str) -> dict[str, str]:
    token = member if isinstance(member, str) else member.token
    return {"Authorization": f"Bearer {token}"}


def test_an_admin_lists_the_members_and_a_member_may_not(api: TestClient, team: Team) -> None:
    listed = api.get("/api/v1/members", headers=auth(team.admin))
    assert listed.status_code == 200
    assert [(m["email"], m["role"], m["removed_at"]) for m in listed.json()] == [
        ("ana@acme.io", "admin", None),
        ("bob@acme.io", "member", None),
        ("cy@acme.io", "member", None),
    ]
    assert all(m["added_at"] for m in listed.json())
    refused = api.get("/api/v1/members", headers=auth(team.bob))
    assert refused.status_code == 403 and "error" in refused.json()


def test_a_removed_member_s_token_is_refused_at_once_and_history_keeps_them(
    api: TestClient, engine: Engine, team: Team
) -> None:
    engine.debit(team.ws, Decimal("2"), key="bob-run", workflow="leads",
                 node_type="connector.agent", member_id=team.bob.id)  # fmt: skip
    assert api.get("/api/v1/usage", headers=auth(team.bob)).status_code == 200
    removed = api.delete(f"/api/v1/members/{team.bob.id}", headers=auth(team.admin))
    assert removed.status_code == 200 and removed.json()["removed_at"] is not None
    refused = api.get("/api/v1/usage", headers=auth(team.bob))
    assert refused.status_code == 401 and "removed" in refused.json()["error"]
    current = api.get("/api/v1/members", headers=auth(team.admin)).json()
    assert "bob@acme.io" not in [m["email"] for m in current]
    everyone = api.get("/api/v1/members?removed=true", headers=auth(team.admin)).json()
    assert [m["email"] for m in everyone if m["removed_at"]] == ["bob@acme.io"]
    # History stays: bob's usage still names him, and runs show his email.
    by_member = engine.breakdown(team.ws, by=("member",))
    assert [r.member for r in by_member if r.member] == [team.bob.id]
    assert engine.member_emails(team.ws)[team.bob.id] == "bob@acme.io"
    assert engine.member(team.bob.id).removed_at is not None


def test_each_member_route_refuses_no_token_a_bad_one_and_another_workspace(
    api: TestClient, engine: Engine, team: Team
) -> None:
    routes = [("GET", "/api/v1/members"), ("DELETE", f"/api/v1/members/{team.bob.id}"),
              ("POST", f"/api/v1/members/{team.bob.id}/rotate")]  # fmt: skip
    for method, path in routes:
        assert api.request(method, path).status_code == 401
        assert api.request(method, path, headers=auth("spj_not-a-token")).status_code == 401
    for method, path in routes[1:]:
        foreign = api.request(method, path, headers=auth(team.stranger))
        assert foreign.status_code == 404 and foreign.json()["code"] == "unknown_member"
    theirs = api.get("/api/v1/members", headers=auth(team.stranger)).json()
    assert [m["email"] for m in theirs] == ["zed@beta.io"]
    assert api.get("/api/v1/usage", headers=auth(team.bob)).status_code == 200


def test_removing_twice_an_unknown_id_and_another_workspace_s_member_change_nothing(
    api: TestClient, engine: Engine, team: Team
) -> None:
    assert api.delete(f"/api/v1/members/{team.cy.id}", headers=auth(team.admin)).status_code == 200
    before = _members_table(engine)
    twice = api.delete(f"/api/v1/members/{team.cy.id}", headers=auth(team.admin))
    assert twice.status_code == 409 and "already removed" in twice.json()["error"]
    unknown = api.delete("/api/v1/members/mem_0000000000000000", headers=auth(team.admin))
    assert unknown.status_code == 404 and unknown.json()["error"].startswith("Unknown member")
    foreign = api.delete(f"/api/v1/members/{team.stranger.id}", headers=auth(team.admin))
    assert foreign.status_code == 404
    by_member = api.delete(f"/api/v1/members/{team.admin.id}", headers=auth(team.bob))
    assert by_member.status_code == 403
    assert _members_table(engine) == before


def test_the_last_admin_cannot_be_removed(api: TestClient, engine: Engine, team: Team) -> None:
    last = api.delete(f"/api/v1/members/{team.admin.id}", headers=auth(team.admin))
    assert last.status_code == 409 and "last admin" in last.json()["error"]
    assert api.get("/api/v1/members", headers=auth(team.admin)).status_code == 200
    second = engine.add_member(team.ws, "dee@acme.io", role="admin")
    gone = api.delete(f"/api/v1/members/{team.admin.id}", headers=auth(second))
    assert gone.status_code == 200
    assert api.get("/api/v1/members", headers=auth(team.admin)).status_code == 401
    assert api.delete(f"/api/v1/members/{second.id}", headers=auth(second)).status_code == 409


def test_rotate_returns_a_new_token_once_and_the_old_one_is_refused(
    api: TestClient, engine: Engine, team: Team
) -> None:
    own = api.post(f"/api/v1/members/{team.bob.id}/rotate", headers=auth(team.bob))
    assert own.status_code == 200
    new_token = own.json()["token"]
    assert new_token.startswith("spj_") and new_token != team.bob.token
    assert api.get("/api/v1/usage", headers=auth(team.bob)).status_code == 401
    assert api.get("/api/v1/usage", headers=auth(new_token)).status_code == 200
    with engine.sa_engine.connect() as conn:  # stored only as its hash
        stored = conn.execute(select(schema.members.c.token_hash)).scalars().all()
    assert new_token not in stored and all(len(h) == 64 for h in stored)
    others = api.post(f"/api/v1/members/{team.cy.id}/rotate", headers=auth(new_token))
    assert others.status_code == 403
    assert api.get("/api/v1/usage", headers=auth(team.cy)).status_code == 200
    by_admin = api.post(f"/api/v1/members/{team.cy.id}/rotate", headers=auth(team.admin))
    assert by_admin.status_code == 200
    assert api.get("/api/v1/usage", headers=auth(team.cy)).status_code == 401
    api.delete(f"/api/v1/members/{team.cy.id}", headers=auth(team.admin))
    late = api.post(f"/api/v1/members/{team.cy.id}/rotate", headers=auth(team.admin))
    assert late.status_code == 409 and "removed" in late.json()["error"]


def test_a_removed_member_added_again_is_the_same_member_with_a_new_token(
    api: TestClient, engine: Engine, team: Team
) -> None:
    engine.remove_member(team.ws, "bob@acme.io")
    again = engine.add_member(team.ws, "bob@acme.io", role="admin")
    assert (again.id, again.role, again.removed_at) == (team.bob.id, "admin", None)
    assert api.get("/api/v1/usage", headers=auth(team.bob)).status_code == 401
    assert api.get("/api/v1/members", headers=auth(again)).status_code == 200


def _members_table(engine: Engine) -> list[tuple[object, ...]]:
    with engine.sa_engine.connect() as conn:
        rows = conn.execute(select(schema.members).order_by(schema.members.c.id)).all()
    return [tuple(r) for r in rows]


def _sign_in(client: TestClient, engine: Engine, ws: str, email: str) -> str:
    """A fresh browser session for ``email``; returns its CSRF token."""
    link = engine.login_link(ws, member_id=email)
    landed = client.get("/login/" + link.url.rsplit("/", 1)[1])
    assert landed.status_code == 303
    return engine.session_member(client.cookies[COOKIE]).csrf_token


def test_the_members_page_removes_a_member_whose_session_is_refused_next(
    engine: Engine, team: Team
) -> None:
    with (
        TestClient(create_app(engine), follow_redirects=False) as admin,
        TestClient(create_app(engine), follow_redirects=False) as bob,
    ):
        csrf = _sign_in(admin, engine, team.ws, "ana@acme.io")
        _sign_in(bob, engine, team.ws, "bob@acme.io")
        unused_link = engine.login_link(team.ws, member_id="bob@acme.io").url.rsplit("/", 1)[1]
        assert bob.get("/executions").status_code == 200
        assert bob.get("/settings/members").status_code == 403
        page = admin.get("/settings/members")
        assert page.status_code == 200 and "bob@acme.io" in page.text
        no_csrf = admin.post(f"/settings/members/{team.bob.id}/remove", data={})
        assert no_csrf.status_code == 403 and bob.get("/executions").status_code == 200
        done = admin.post(f"/settings/members/{team.bob.id}/remove", data={"csrf_token": csrf})
        assert done.status_code == 303
        assert "bob@acme.io" not in admin.get(done.headers["location"]).text
        refused = bob.get("/executions")
        assert refused.status_code == 401 and "not signed in" in refused.text
        stale = bob.get(f"/login/{unused_link}")  # a link made before the removal
        assert stale.status_code == 401 and "no longer a member" in stale.text
        rotated = admin.post(f"/settings/members/{team.cy.id}/rotate", data={"csrf_token": csrf})
        assert rotated.status_code == 200 and "shown only this once" in rotated.text
        token = rotated.text.split("<code>spj_", 1)[1].split("</code>", 1)[0]
        assert engine.authenticate("spj_" + token).id == team.cy.id
        last = admin.post(f"/settings/members/{team.admin.id}/remove", data={"csrf_token": csrf})
        assert last.status_code == 409 and "last admin" in last.text
