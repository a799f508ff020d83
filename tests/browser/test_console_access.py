"""The console's sign-in, its access matrix and who sees what, in a real browser."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect
from sqlalchemy.ext.asyncio import AsyncConnection

from storage import accounts
from tests.browser.conftest import BROWSER_GROUP, Visit
from tests.browser.console import rows, sign_in, sign_in_as
from tests.browser.site import Site
from tests.support import jwt_part

VERIFY = "/v1/tenants/{tenant}/audit/verify"

pytestmark = BROWSER_GROUP


def test_an_owner_signs_in_and_sees_the_live_matrix(visit: Visit, site: Site) -> None:
    tenant = site.tenant("con-owner", "owner", "auditor", "admin", "member", "viewer")
    site.client(tenant, "Warehouse sync", frozenset({"items:read", "items:write"}))
    matrix = site.get(f"/v1/tenants/{tenant.slug}/audit/access", site.token(tenant, "owner")).json()
    page = visit.page
    sign_in_as(page, tenant, "owner")
    expect(page.get_by_role("heading", name="Who can do what")).to_be_focused()
    expect(page.locator("#who-text")).to_have_text(
        "owner@con-owner.test · owner · tenant con-owner"
    )
    routes = page.locator("#routes-table tbody tr")
    expect(routes).to_have_count(len(matrix["routes"]))
    headers = page.locator("#routes-table thead th").all_inner_texts()
    assert [h.lower() for h in headers[4:]] == [role["role"] for role in matrix["roles"]]
    verify_row = routes.filter(has=page.get_by_text(VERIFY, exact=True))
    reach = verify_row.locator("td.reach").all_inner_texts()
    reached = [
        role["role"] for role, cell in zip(matrix["roles"], reach, strict=True) if "✓" in cell
    ]
    assert reached == ["owner", "auditor"]
    # The summary's `backquoted` command is shown as code, not with its backquotes.
    expect(verify_row.locator(".summary code")).to_have_text("tenantgate audit verify")
    # A route no tenant role reaches says who may call it, rather than leaving blank ticks.
    for path, who in (
        ("/health", "anyone: no token needed"),
        ("/v1/me", "any valid token: the caller's own account"),
        ("/v1/platform/audit/events", "platform administrators only"),
    ):
        row = routes.filter(has=page.get_by_text(path, exact=True))
        expect(row.locator("td.reach")).to_have_text([who])
    stream = routes.filter(has=page.get_by_text("/v1/tenants/{tenant}/audit/stream", exact=True))
    expect(stream.locator(".summary")).to_have_text(
        "Audit events as they commit, over a WebSocket (resumable with from_seq)"
    )
    members = rows(page, "members-table")
    assert [row[0] for row in members] == sorted(m["email"] for m in matrix["members"])
    clients = rows(page, "clients-table")
    assert [(row[1], row[2]) for row in clients] == [("Warehouse sync", "items:read items:write")]
    assert clients[0][3] == "owner@con-owner.test"  # created by, shown by email
    visit.shot("console-access")
    page.get_by_label("Role", exact=True).select_option("auditor")
    visit.shot_for_docs()


def test_the_matrix_filters_by_role_scope_and_path(visit: Visit, site: Site) -> None:
    tenant = site.tenant("con-filter", "owner", "viewer")
    matrix = site.get(f"/v1/tenants/{tenant.slug}/audit/access", site.token(tenant, "owner")).json()
    page = visit.page
    sign_in_as(page, tenant, "owner")
    paths = page.locator("#routes-table tbody th code")

    def shown() -> list[tuple[str, str]]:
        methods = page.locator("#routes-table tbody .method").all_inner_texts()
        return list(zip(methods, paths.all_inner_texts(), strict=True))

    def expected(keep: Callable[[dict[str, Any]], bool]) -> list[tuple[str, str]]:
        return [(r["method"], r["path"]) for r in matrix["routes"] if keep(r)]

    page.get_by_label("Role", exact=True).select_option("viewer")
    expect(paths).to_have_count(len(expected(lambda r: "viewer" in r["roles"])))
    assert shown() == expected(lambda r: "viewer" in r["roles"])
    assert [row[0] for row in rows(page, "members-table")] == ["viewer@con-filter.test"]
    page.get_by_label("Role", exact=True).select_option("")
    page.get_by_label("Scope", exact=True).select_option("members:write")
    expect(paths).to_have_count(len(expected(lambda r: "members:write" in r["scopes"])))
    assert shown() == expected(lambda r: "members:write" in r["scopes"])
    page.get_by_label("Path contains").fill("/items/")
    both = expected(lambda r: "members:write" in r["scopes"] and "/items/" in r["path"])
    assert both == []
    expect(page.locator("#routes-table tbody td.empty")).to_have_text(
        "No route matches the filters."
    )
    page.get_by_label("Scope", exact=True).select_option("")
    items = expected(lambda r: "/items/" in r["path"])
    expect(paths).to_have_count(len(items))
    assert shown() == items
    expect(page.locator("#access-count")).to_contain_text(
        f"{len(items)} of {len(matrix['routes'])} routes"
    )
    visit.shot("console-access-filtered", full_page=False)


def test_an_auditor_reads_only_the_audit_api_with_an_audit_read_token(
    visit: Visit, site: Site
) -> None:
    tenant = site.tenant("con-auditor", "auditor")
    site.events(tenant, 3)
    page = visit.page
    sign_in_as(page, tenant, "auditor")
    expect(page.locator("#who-text")).to_contain_text("auditor")
    page.get_by_role("link", name="Audit trail").click()
    expect(page.locator("#events-table tbody tr")).to_have_count(4)  # login + 3 seeded
    page.get_by_role("link", name="Integrity").click()
    page.get_by_role("button", name="Check the chain now").click()
    expect(page.locator("#verify-headline")).to_have_text("Intact: all 4 events verified")
    base = f"/v1/tenants/{tenant.slug}"
    for request in visit.paths():
        assert request.startswith(
            ("GET /console", "POST /token", "GET /v1/me", f"GET {base}/audit/")
        ), request
    assert "/items" not in " ".join(visit.paths())
    (token,) = visit.bearer_tokens()
    assert jwt_part(token, 1)["scope"] == "audit:read"
    # Nothing of the session is kept outside the page's memory.
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0
    assert page.context.cookies() == []


def test_a_viewer_gets_a_plain_refusal_page(visit: Visit, site: Site) -> None:
    tenant = site.tenant("con-viewer", "viewer")
    page = visit.page
    sign_in_as(page, tenant, "viewer")
    expect(
        page.get_by_role("heading", name="Your role cannot read the audit trail")
    ).to_be_visible()
    expect(page.locator("#refused-detail")).to_have_text(
        "You are signed in as viewer@con-viewer.test in tenant con-viewer; "
        "your token holds items:read, reports:read."
    )
    expect(page.locator("#nav")).to_be_hidden()
    expect(page.locator("#error")).to_be_hidden()
    assert not [path for path in visit.paths() if "/audit/" in path]
    visit.shot("console-refused", full_page=False)
    page.locator("#view-refused").get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_a_one_time_password_leads_to_a_new_password_first(visit: Visit, site: Site) -> None:
    tenant = site.tenant("con-invited", one_time=("auditor",))
    email = tenant.email("auditor")
    page = visit.page
    sign_in(page, email, tenant.passwords[email])
    expect(page.get_by_role("heading", name="Set a new password")).to_be_visible()
    page.get_by_label("New password (at least 12 characters)").fill("a passphrase of my own")
    page.get_by_label("Repeat the new password").fill("a passphrase of my owm")
    page.get_by_role("button", name="Set password and continue").click()
    expect(page.locator("#error")).to_have_text("The two passwords differ.")
    visit.shot("console-password", full_page=False)
    page.get_by_label("Repeat the new password").fill("a passphrase of my own")
    page.get_by_role("button", name="Set password and continue").click()
    expect(page.get_by_role("heading", name="Who can do what")).to_be_visible()
    expect(page.locator("#notice")).to_contain_text("Password changed")
    assert "POST /v1/me/password" in visit.paths()
    assert site.password_grant(email, tenant.passwords[email]).status_code == 400
    assert site.password_grant(email, "a passphrase of my own").status_code == 200


def test_a_refused_sign_in_is_shown_in_words_with_its_request_id(visit: Visit, site: Site) -> None:
    tenant = site.tenant("con-wrong", "owner")
    page = visit.page
    with page.expect_response("**/token") as answer:
        sign_in(page, tenant.email("owner"), "not the password")
    request_id = answer.value.headers["x-request-id"]
    expect(page.locator("#error")).to_have_text(
        f"Sign-in refused: invalid username or password (HTTP 400, request id {request_id})"
    )
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert re.fullmatch(r"[\w-]{8,}", request_id)
    visit.shot("console-signin-error", full_page=False)


def test_evaluate_explains_an_answer_as_the_api_gives_it(visit: Visit, site: Site) -> None:
    tenant = site.tenant("con-evaluate", "owner", "member", "viewer")
    site.client(tenant, "Report reader", frozenset({"reports:read"}))
    owner_token = site.token(tenant, "owner", scope="audit:read")
    page = visit.page
    sign_in_as(page, tenant, "owner")
    page.get_by_role("link", name="Evaluate").click()
    expect(page.get_by_role("heading", name="Evaluate access")).to_be_focused()
    principal = page.get_by_label("Principal")
    path = page.get_by_label("Path (a request path or a route template)")
    headline = page.locator("#evaluate-headline")
    url = f"/v1/tenants/{tenant.slug}/access/evaluate"

    def ask(who: str, method: str, where: str) -> dict[str, Any]:
        """The console's answer, checked against the API's to the same question."""
        principal.select_option(who)
        page.get_by_label("Method").select_option(method)
        path.fill(where)
        with page.expect_response(f"**{url}") as answered:
            page.get_by_role("button", name="Evaluate", exact=True).click()
        assert answered.value.status == 200
        question = {"principal": who, "method": method, "path": where}
        expected = site.send("POST", url, owner_token, question)
        assert expected.status_code == 200, expected.text
        answer: dict[str, Any] = expected.json()
        assert answered.value.json() == answer
        reasons = page.locator("#evaluate-reasons li")
        expect(reasons).to_have_text(
            [
                f"{r['code']} at the {r['stage']} stage (HTTP {r['status']}): {r['detail']}"
                for r in answer["reasons"]
            ]
        )
        return answer

    viewer = tenant.user_ids[tenant.email("viewer")]
    denied = ask(viewer, "POST", "/v1/tenants/{tenant}/items")
    assert denied["missing_scopes"] == ["items:write"]
    expect(headline).to_have_text(f"Denied (HTTP 403): {denied['reasons'][0]['detail']}")
    expect(page.locator("#evaluate-result")).to_have_class("verdict fail")
    fields = page.locator("#evaluate-fields")
    expect(fields).to_contain_text("Missing scopesitems:write")
    expect(fields).to_contain_text("Roleviewer")
    visit.shot("console-evaluate", full_page=False)

    member = tenant.user_ids[tenant.email("member")]
    ask(member, "POST", f"/v1/tenants/{tenant.slug}/items")
    expect(headline).to_have_text(
        f"Allowed: {tenant.email('member')} (member) may call POST /v1/tenants/{{tenant}}/items"
    )
    expect(page.locator("#evaluate-result")).to_have_class("verdict pass")

    client = page.locator("#evaluate-principal option", has_text="Report reader")
    subject = client.get_attribute("value")
    assert subject is not None
    assert subject.startswith("client:cli_")
    foreign = ask(subject, "GET", "/v1/tenants/globex/reports/inventory")
    assert [r["code"] for r in foreign["reasons"]] == ["tenant_mismatch"]
    expect(headline).to_contain_text("Denied (HTTP 404)")
    expect(fields).to_contain_text("Rolea client: no role")
    # The console asked with its own audit:read token, and only asked.
    asked = [r for r in visit.paths() if "/access/" in r]
    assert asked == [f"POST {url}"] * 3
    (token,) = visit.bearer_tokens()
    assert jwt_part(token, 1)["scope"] == "audit:read"


def test_someone_in_two_tenants_names_the_tenant_to_sign_in(visit: Visit, site: Site) -> None:
    first = site.tenant("con-multi-a", "auditor")
    site.tenant("con-multi-b")
    email = first.email("auditor")
    user_id = first.user_ids[email]

    async def join(connection: AsyncConnection) -> None:
        await accounts.add_member(connection, "con-multi-b", user_id, "auditor")

    site.write(join)
    page = visit.page
    with page.expect_response("**/token") as answer:
        sign_in(page, email, first.passwords[email])
    request_id = answer.value.headers["x-request-id"]
    expect(page.locator("#error")).to_have_text(
        "Sign-in refused: the user belongs to several tenants: send `tenant` "
        f"(HTTP 400, request id {request_id})"
    )
    sign_in(page, email, first.passwords[email], tenant="con-multi-b")
    expect(page.locator("#who-text")).to_have_text(f"{email} · auditor · tenant con-multi-b")
    (token,) = visit.bearer_tokens()
    assert jwt_part(token, 1)["tid"] == "con-multi-b"
