"""The console's session: sign-out revokes, refresh before expiry, errors in words, a removed
member sent back to sign in, and the whole console from the keyboard."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.conftest import BROWSER_GROUP, Visit
from tests.browser.console import rows, sign_in_as
from tests.browser.site import Site

pytestmark = BROWSER_GROUP


def test_sign_out_revokes_the_tokens(visit: Visit, site: Site) -> None:
    tenant = site.tenant("aud-signout", "auditor")
    page = visit.page
    with page.expect_response("**/token") as issued:
        sign_in_as(page, tenant, "auditor")
    refresh_token = issued.value.json()["refresh_token"]
    (access_token,) = visit.bearer_tokens()
    assert site.get("/v1/me", access_token).status_code == 200
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#notice")).to_have_text(
        "Signed out: the tokens were revoked on the server."
    )
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_label("Email", exact=True)).to_be_focused()
    assert site.get("/v1/me", access_token).status_code == 401
    refreshed = site.refresh_grant(refresh_token)
    assert refreshed.status_code == 400
    assert refreshed.json()["error"] == "invalid_grant"
    # The page holds nothing any more: the views are empty and hidden.
    assert rows(page, "routes-table") == []
    expect(page.locator("#nav")).to_be_hidden()


def test_the_session_is_refreshed_before_the_token_expires(visit: Visit, site: Site) -> None:
    tenant = site.tenant("aud-refresh", "auditor")
    page = visit.page
    page.clock.install()
    sign_in_as(page, tenant, "auditor")
    (first,) = visit.bearer_tokens()
    with page.expect_request(
        lambda request: (
            request.url.endswith("/token")
            and "grant_type=refresh_token" in (request.post_data or "")
        )
    ) as refresh:
        page.clock.run_for(15 * 60 * 800 + 1000)  # 80 % of the 15-minute token, and a second
    assert refresh.value.response() is not None
    assert refresh.value.response().status == 200  # type: ignore[union-attr]
    page.get_by_role("link", name="Integrity").click()
    page.get_by_role("button", name="Check the chain now").click()
    expect(page.locator("#verify-headline")).to_contain_text("Intact")
    tokens = visit.bearer_tokens()
    assert tokens[0] == first
    assert len(tokens) == 2, "the check did not use the refreshed token"


def test_the_console_works_from_the_keyboard_alone(visit: Visit, site: Site) -> None:
    tenant = site.tenant("aud-keys", "auditor")
    site.events(tenant, 1)
    page = visit.page
    page.goto("/console")
    expect(page.get_by_label("Email", exact=True)).to_be_focused()
    email = tenant.email("auditor")
    page.keyboard.type(email)
    page.keyboard.press("Tab")
    page.keyboard.type(tenant.passwords[email])
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Who can do what")).to_be_focused()

    def tab_to(name: str, key: str = "Tab") -> None:
        for _ in range(60):
            page.keyboard.press(key)
            focused = page.evaluate(
                "(e => e.getAttribute('aria-label') || e.textContent.trim())"
                "(document.activeElement)"
            )
            if focused == name:
                return
        raise AssertionError(f"{name} cannot be reached with {key}")

    tab_to("Audit trail", "Shift+Tab")  # the navigation is above the view's heading
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Audit trail")).to_be_focused()
    tab_to("Open event 1")
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(page.get_by_role("button", name="Close")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("button", name="Open event 1")).to_be_focused()
    tab_to("Sign out", "Shift+Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_label("Email", exact=True)).to_be_focused()


def test_an_api_refusal_is_shown_in_words_with_its_request_id(visit: Visit, site: Site) -> None:
    tenant = site.tenant("aud-suspended", "auditor")
    page = visit.page
    sign_in_as(page, tenant, "auditor")
    page.get_by_role("link", name="Integrity").click()
    suspended = site.send(
        "PATCH", f"/v1/tenants/{tenant.slug}", site.platform_token(), {"status": "suspended"}
    )
    assert suspended.status_code == 200, suspended.text
    with page.expect_response("**/audit/verify") as answer:
        page.get_by_role("button", name="Check the chain now").click()
    problem = answer.value.json()
    assert answer.value.status == 403
    expect(page.locator("#error")).to_have_text(
        f"{problem['title']}: {problem['detail']} (HTTP 403, request id {problem['request_id']})"
    )
    expect(page.locator("#verify-result")).to_be_hidden()
    expect(page.get_by_role("heading", name="Integrity of the audit trail")).to_be_visible()
    visit.shot("console-api-error", full_page=False)


def test_a_removed_member_is_sent_back_to_sign_in_with_the_reason(visit: Visit, site: Site) -> None:
    tenant = site.tenant("aud-removed", "owner", "auditor")
    page = visit.page
    sign_in_as(page, tenant, "auditor")
    auditor = tenant.user_ids[tenant.email("auditor")]
    removed = site.send(
        "DELETE", f"/v1/tenants/{tenant.slug}/members/{auditor}", site.token(tenant, "owner"), {}
    )
    assert removed.status_code == 204, removed.text
    page.get_by_role("link", name="Audit trail").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.locator("#error")).to_contain_text("Your session ended; sign in again.")
    expect(page.locator("#error")).to_contain_text("request id req_")
    expect(page.locator("#nav")).to_be_hidden()
    refreshes = [r for r in visit.requests if "grant_type=refresh_token" in (r.post_data or "")]
    assert len(refreshes) == 1  # one try to renew, then the session is over
