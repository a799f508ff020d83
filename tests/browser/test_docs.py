"""/docs in a real browser: Swagger UI from the app itself, Authorize, Try it out."""

from __future__ import annotations

import httpx
from playwright.sync_api import Locator, expect

from tests.browser.conftest import BROWSER_GROUP, Visit
from tests.browser.site import Site

pytestmark = BROWSER_GROUP


def operation(visit: Visit, method: str, path: str) -> Locator:
    page = visit.page
    summary = page.locator(f'.opblock-summary-path[data-path="{path}"]')
    return page.locator(f".opblock-{method.lower()}", has=summary)


def try_it_out(visit: Visit, method: str, path: str, tenant: str) -> Locator:
    """Open the operation, fill `tenant`, execute; returns the live response block."""
    block = operation(visit, method, path)
    block.locator(".opblock-summary").click()
    block.get_by_role("button", name="Try it out").click()
    block.locator('input[placeholder="tenant"]').fill(tenant)
    block.get_by_role("button", name="Execute").click()
    live = block.locator(".live-responses-table .response")
    expect(live).to_have_count(1)
    return live


def test_the_docs_render_offline_then_authorize_and_try_it_out(visit: Visit, site: Site) -> None:
    """One page load for both (Swagger UI is 1.6 MB of script to parse on a busy machine)."""
    tenant = site.tenant("docs-try", "owner")
    document = httpx.get(f"{site.url}/openapi.json", timeout=10).json()
    operations = sum(len(methods) for methods in document["paths"].values())
    page = visit.page
    page.goto("/docs")
    expect(page.locator(".opblock")).to_have_count(operations)
    visit.shot("docs", full_page=False)
    assert visit.urls[0] == f"{site.url}/docs"
    assert f"{site.url}/openapi.json" in visit.urls
    assert visit.foreign_requests() == []

    page.get_by_role("button", name="Authorize").first.click()
    dialog = page.locator(".modal-ux")
    dialog.locator("#oauth_username").fill(tenant.email("owner"))
    dialog.locator("#oauth_password").fill(tenant.passwords[tenant.email("owner")])
    expect(dialog.locator("#client_id_password")).to_have_value("tenantgate")
    dialog.locator('label[for="items:read-password-checkbox-OAuth2PasswordBearer"]').click()
    dialog.locator(".auth-btn-wrapper .authorize").click()
    expect(dialog.get_by_role("button", name="Remove authorization")).to_be_visible()
    expect(dialog.get_by_role("heading", name="Authorized")).to_be_visible()
    visit.shot("docs-authorized", full_page=False)
    dialog.get_by_role("button", name="Close").click()

    items = try_it_out(visit, "GET", "/v1/tenants/{tenant}/items", tenant.slug)
    expect(items.locator(".response-col_status")).to_have_text("200")
    expect(items.locator(".response-col_description")).to_contain_text('"items"')
    visit.shot("docs-try-it-out", of=items)  # the live answer (the operation is 5,000 px tall)

    # reports:read was not ticked: the same token is refused there.
    report = try_it_out(visit, "GET", "/v1/tenants/{tenant}/reports/inventory", tenant.slug)
    expect(report.locator(".response-col_status")).to_have_text("403")
    expect(report.locator(".response-col_description")).to_contain_text("insufficient-scope")
    expect(report.locator(".response-col_description")).to_contain_text("reports:read")
    issued = [url for url in visit.urls if url.endswith("/token")]
    assert issued == [f"{site.url}/token"]
