"""The console's audit trail: filters, pages, one event, exports; and the integrity check."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from playwright.sync_api import Page, WebSocketRoute, expect
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.tables import audit_events
from tests.browser.conftest import BROWSER_GROUP, Visit
from tests.browser.console import rows, sign_in_as
from tests.browser.site import Site, Tenant

pytestmark = BROWSER_GROUP


def events_url(tenant: Tenant) -> str:
    return f"/v1/tenants/{tenant.slug}/audit/events"


def api_page(site: Site, token: str, tenant: Tenant, **params: str) -> dict[str, Any]:
    response = site.get(events_url(tenant), token, params=params)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def shown_seqs(page: Page) -> list[int]:
    return [int(row[0]) for row in rows(page, "events-table")]


def open_audit(page: Page) -> None:
    page.get_by_role("link", name="Audit trail").click()
    expect(page.get_by_role("heading", name="Audit trail")).to_be_focused()


def test_filters_and_cursor_pages_show_what_the_api_answers(visit: Visit, site: Site) -> None:
    tenant = site.tenant("aud-pages", "auditor")
    site.events(tenant, 27, minutes_from=datetime(2024, 3, 1, 10, 0, tzinfo=UTC))
    token = site.token(tenant, "auditor")
    page = visit.page
    sign_in_as(page, tenant, "auditor")
    open_audit(page)
    expect(page.locator("#events-table tbody tr")).to_have_count(29)  # two sign-ins + 27

    page.get_by_label("Action").fill("access.denied")
    page.get_by_label("Outcome").select_option("denied")
    page.get_by_label("Per page").select_option("10")
    page.get_by_role("button", name="Apply filters").click()
    filters = {"action": "access.denied", "outcome": "denied", "limit": "10"}
    first = api_page(site, token, tenant, **filters)
    expect(page.locator("#page-label")).to_have_text(
        f"Page 1: seq {first['events'][0]['seq']} to {first['events'][-1]['seq']}"
    )
    assert shown_seqs(page) == [event["seq"] for event in first["events"]]
    assert len(shown_seqs(page)) == 9
    expect(page.get_by_role("button", name="Next page")).to_be_disabled()

    page.get_by_label("Action").fill("")
    page.get_by_label("Outcome").select_option("")
    page.get_by_label("Actor").fill("usr_seed1")
    page.get_by_role("button", name="Apply filters").click()
    filters = {"actor": "usr_seed1", "limit": "10"}
    one = api_page(site, token, tenant, **filters)
    expect(page.locator("#page-label")).to_contain_text("Page 1")
    assert shown_seqs(page) == [event["seq"] for event in one["events"]]
    page.get_by_role("button", name="Next page").click()
    expect(page.locator("#page-label")).to_contain_text("Page 2")
    two = api_page(site, token, tenant, **filters, cursor=one["next_cursor"])
    assert shown_seqs(page) == [event["seq"] for event in two["events"]]
    expect(page.get_by_role("button", name="Next page")).to_be_disabled()  # 13 events
    page.get_by_role("button", name="Previous page").click()
    expect(page.locator("#page-label")).to_contain_text("Page 1")
    assert shown_seqs(page) == [event["seq"] for event in one["events"]]
    visit.shot("console-audit")

    # A time range: 10:04 inclusive to 10:07 exclusive holds the seeded events 5, 6 and 7.
    page.get_by_label("Actor").fill("")
    page.get_by_label("From (UTC)").fill("2024-03-01T10:04:00")
    page.get_by_label("Until (UTC, exclusive)").fill("2024-03-01T10:07:00")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("#page-label")).to_have_text("Page 1: seq 5 to 7")
    assert shown_seqs(page) == [5, 6, 7]
    times = [row[1] for row in rows(page, "events-table")]
    assert times == ["2024-03-01 10:04:00", "2024-03-01 10:05:00", "2024-03-01 10:06:00"]
    page.get_by_role("button", name="Clear").click()
    expect(page.locator("#events-table tbody tr")).to_have_count(29)
    expect(page.get_by_label("From (UTC)")).to_have_value("")


def test_one_event_opens_in_full(visit: Visit, site: Site) -> None:
    tenant = site.tenant("aud-event", "auditor")
    site.events(tenant, 2)
    token = site.token(tenant, "auditor")
    stored = api_page(site, token, tenant, action="member.added")["events"][0]
    page = visit.page
    sign_in_as(page, tenant, "auditor")
    open_audit(page)
    page.get_by_role("button", name=f"Open event {stored['seq']}").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("heading")).to_have_text(f"Event {stored['seq']}: member.added")
    fields = dict(
        zip(
            dialog.locator("dt").all_inner_texts(),
            dialog.locator("dd").all_inner_texts(),
            strict=True,
        )
    )
    assert list(fields) == list(stored)
    assert fields["hash"] == stored["hash"]
    assert fields["prev_hash"] == stored["prev_hash"]
    assert fields["user_agent"] == stored["user_agent"]  # a formula, shown as text
    assert 'comma, \\"quote\\"' in fields["details"]
    visit.shot("console-event", full_page=False)
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("button", name=f"Open event {stored['seq']}")).to_be_focused()


def test_exports_download_the_filtered_range_as_the_api_gives_it(visit: Visit, site: Site) -> None:
    tenant = site.tenant("aud-export", "auditor")
    site.events(tenant, 12)
    page = visit.page
    sign_in_as(page, tenant, "auditor")
    open_audit(page)
    page.get_by_label("Action").fill("token.refused")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("#events-table tbody tr")).to_have_count(4)
    token = site.token(tenant, "auditor")
    for button, accept in (
        ("Download CSV", "text/csv"),
        ("Download NDJSON", "application/x-ndjson"),
    ):
        with page.expect_download() as download:
            page.get_by_role("button", name=button).click()
        path = download.value.path()
        expected = site.get(
            events_url(tenant), token, params={"action": "token.refused"}, accept=accept
        )
        assert path.read_bytes() == expected.content, button
        extension = "csv" if accept == "text/csv" else "ndjson"
        assert download.value.suggested_filename == f"audit-{tenant.slug}.{extension}"
        expect(page.locator("#notice")).to_contain_text(
            f"Downloaded audit-{tenant.slug}.{extension}"
        )
    csv = site.get(events_url(tenant), token, params={"action": "token.refused"}, accept="text/csv")
    assert len(csv.text.splitlines()) == 1 + 4  # the header and the four refusals


def test_integrity_turns_to_broken_at_the_altered_row(visit: Visit, site: Site) -> None:
    tenant = site.tenant("aud-chain", "auditor")
    site.events(tenant, 5)
    page = visit.page
    sign_in_as(page, tenant, "auditor")
    page.get_by_role("link", name="Integrity").click()
    page.get_by_role("button", name="Check the chain now").click()
    headline = page.locator("#verify-headline")
    expect(headline).to_have_text("Intact: all 6 events verified")
    expect(page.locator("#verify-result")).to_have_class("verdict pass")
    visit.shot("console-integrity-ok", full_page=False)

    async def tamper(connection: AsyncConnection) -> None:
        await connection.execute(
            sa.update(audit_events)
            .where(audit_events.c.chain == tenant.slug, audit_events.c.seq == 4)
            .values(target="user:usr_innocent")
        )

    site.write(tamper)
    page.get_by_role("button", name="Check the chain now").click()
    expect(headline).to_have_text("Broken at seq 4")
    expect(page.locator("#verify-result")).to_have_class("verdict fail")
    expect(page.locator("#verify-fields")).to_contain_text(
        "the event's contents do not match its hash"
    )
    expect(page.locator("#verify-fields")).to_contain_text("Events verified before it3")
    visit.shot("console-integrity-broken", full_page=False)


def test_follow_live_shows_events_as_they_commit(visit: Visit, site: Site) -> None:
    tenant = site.tenant("aud-live", "auditor")
    page = visit.page
    sockets: list[str] = []
    page.on("websocket", lambda socket: sockets.append(socket.url))
    sign_in_as(page, tenant, "auditor")
    open_audit(page)
    page.get_by_role("button", name="Follow live").click()
    expect(page.locator("#live-status")).to_contain_text("Live: new events appear below")
    token = site.token(tenant, "auditor")  # a sign-in through the server: token.issued
    site.events(tenant, 2)  # written beside the server (as the CLI would): found by its poll
    live = page.locator("#live-table tbody tr")
    expect(live).to_have_count(3)
    seqs = [int(row[0]) for row in rows(page, "live-table")]
    assert seqs == sorted(seqs, reverse=True)  # newest first
    assert seqs == list(range(seqs[0], seqs[0] - 3, -1))  # in order, none missing
    expect(page.locator("#live-status")).to_contain_text(f"(latest: seq {seqs[0]})")
    assert [row[3] for row in rows(page, "live-table")][-1] == "token.issued"
    visit.shot("console-live", full_page=False)
    # The token went as a subprotocol, never in the URL.
    assert sockets
    assert all(token not in url and "token" not in url for url in sockets)
    assert all(held not in url for url in sockets for held in visit.bearer_tokens())
    page.get_by_role("button", name="Stop following").click()
    expect(page.locator("#live-status")).to_have_text("Stopped.")


def test_follow_live_resumes_after_a_drop_and_stops_on_suspension(visit: Visit, site: Site) -> None:
    tenant = site.tenant("aud-resume", "auditor")
    page = visit.page
    connections: list[WebSocketRoute] = []

    def through(socket: WebSocketRoute) -> None:
        """Pass the console's stream through to the server, keeping a handle to drop it."""
        socket.connect_to_server()
        connections.append(socket)

    page.route_web_socket("**/audit/stream*", through)
    sign_in_as(page, tenant, "auditor")
    open_audit(page)
    page.get_by_role("button", name="Follow live").click()
    expect(page.locator("#live-status")).to_contain_text("Live: new events appear below")
    site.events(tenant, 2)
    live = page.locator("#live-table tbody tr")
    expect(live).to_have_count(2)
    last = int(rows(page, "live-table")[0][0])

    connections[0].close(code=1012, reason="service restart")  # the page's side drops
    expect(page.locator("#live-status")).to_have_text("Reconnecting…")
    site.events(tenant, 3)  # while away, or just back: either way shown once
    expect(live).to_have_count(5)
    seqs = [int(row[0]) for row in rows(page, "live-table")]
    assert seqs == list(range(last + 3, last - 2, -1)), "a gap or a repeat"
    assert len(connections) == 2
    assert connections[1].url.endswith(f"?from_seq={last + 1}")
    expect(page.locator("#live-status")).to_contain_text(f"(latest: seq {last + 3})")
    # A suspended tenant stops the stream for good, and the page says why.
    suspended = site.send(
        "PATCH", f"/v1/tenants/{tenant.slug}", site.platform_token(), {"status": "suspended"}
    )
    assert suspended.status_code == 200, suspended.text
    expect(page.locator("#live-status")).to_have_text("Stopped: the tenant is suspended.")
    expect(page.get_by_role("button", name="Follow live")).to_be_visible()
    assert len(connections) == 2  # no reconnection attempt
