"""Settings → Members in a real browser (the same Chromium, server and fixtures as
``test_browser.py``, on this module's own server): an admin removes a member, and the member's
open browser session is refused on its next request."""

from __future__ import annotations

from typing import Any

from test_browser import Site, browser_type_launch_args, site, snap

__all__ = ["browser_type_launch_args", "site"]  # the fixtures this module uses from there


def test_an_admin_removes_a_member_whose_open_session_is_refused(
    site: Site, page: Any, browser: Any
) -> None:
    member_context = browser.new_context()
    member = member_context.new_page()
    member.goto(site.login_link(site.shop.member.email))
    assert member.get_by_role("heading", name="Usage this period").is_visible()
    assert member.get_by_role("link", name="Members").count() == 0

    page.goto(site.login_link(site.shop.admin.email))
    page.get_by_role("link", name="Members").click()
    page.wait_for_url(f"{site.url}/settings/members")
    rows = page.locator("#members tbody tr")
    assert rows.count() == 2 and "member@acme.io" in rows.nth(1).inner_text()
    snap(page, "admin-members")
    page.get_by_role("button", name="Remove member@acme.io").click()
    assert "Member removed" in page.get_by_role("status").inner_text()
    assert page.locator("#members tbody tr").count() == 1
    page.get_by_role("button", name="Remove admin@acme.io").click()
    assert "last admin" in page.get_by_role("alert").inner_text()

    refused = member.reload()
    assert refused is not None and refused.status == 401
    assert "not signed in" in member.content()
    snap(member, "removed-member-refused")
    assert site.engine.member(site.shop.member.id).removed_at is not None
    member_context.close()
