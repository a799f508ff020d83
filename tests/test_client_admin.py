"""Client administration: PATCH (name, description, scopes, rate limit), the plan's client cap,
no escalation or self-renewal, and the platform's own audit trail through the API."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from tests.support import World, bearer, make_settings
from tests.support_clients import (
    admin_token,
    client_token,
    client_token_response,
    create_client,
)
from tests.support_items import assert_problem
from tests.test_clients import TENANTGATE


async def events_of(world: World, token: str, action: str) -> list[dict[str, object]]:
    response = await world.client.get(
        "/v1/tenants/acme/audit/events", params={"action": action}, headers=bearer(token)
    )
    assert response.status_code == 200, response.text
    events: list[dict[str, object]] = response.json()["events"]
    return events


async def test_patch_changes_only_what_is_sent_and_is_audited(world: World) -> None:
    admin = await admin_token(world, "acme")
    client = await create_client(world, admin, "acme", ["items:read"], description="old")
    path = f"/v1/tenants/acme/clients/{client.client_id}"

    renamed = await world.client.patch(path, json={"name": "Renamed"}, headers=bearer(admin))
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "Renamed"
    assert renamed.json()["description"] == "old"
    assert renamed.json()["rate_limit"] is None
    cleared = await world.client.patch(path, json={"description": None}, headers=bearer(admin))
    assert cleared.json()["description"] is None
    assert cleared.json()["name"] == "Renamed"
    unchanged = await world.client.patch(path, json={}, headers=bearer(admin))
    assert unchanged.status_code == 200
    assert unchanged.json() == cleared.json()
    assert (await world.client.get(path, headers=bearer(admin))).json() == cleared.json()

    invalid: list[dict[str, object]] = [
        {"name": None},
        {"scopes": None},
        {"scopes": []},
        {"scopes": ["items:fly"]},
        {"name": ""},
        {"rate_limit": "lots"},
        {"rate_limit": "0/minute"},
        {"secret_hash": "x"},
    ]
    for body in invalid:
        response = await world.client.patch(path, json=body, headers=bearer(admin))
        assert_problem(response, 422, "validation-error")

    owner = "owner@acme.test"
    await world.member("acme", owner, "owner")
    updates = await events_of(world, await world.login(owner), "client.updated")
    assert [event["details"] for event in updates] == [
        {"name": {"from": "integration", "to": "Renamed"}, "tokens_cut_off": False},
        {"description": {"from": "old", "to": None}, "tokens_cut_off": False},
    ]
    assert {event["target"] for event in updates} == {f"client:{client.client_id}"}


async def test_narrowing_scopes_stops_existing_tokens_widening_does_not(world: World) -> None:
    admin = await admin_token(world, "acme")
    client = await create_client(world, admin, "acme", ["items:read", "reports:read"])
    path = f"/v1/tenants/acme/clients/{client.client_id}"
    before = await client_token(world.client, client)

    widened = await world.client.patch(
        path, json={"scopes": ["items:read", "reports:read", "items:write"]}, headers=bearer(admin)
    )
    assert widened.json()["scopes"] == ["items:read", "items:write", "reports:read"]
    # Gaining a scope leaves the old token working (with its old scopes).
    items = await world.client.get("/v1/tenants/acme/items", headers=bearer(before))
    assert items.status_code == 200

    narrowed = await world.client.patch(
        path, json={"scopes": ["items:read"]}, headers=bearer(admin)
    )
    assert narrowed.json()["scopes"] == ["items:read"]
    stopped = await world.client.get("/v1/tenants/acme/items", headers=bearer(before))
    assert_problem(stopped, 401, "invalid-token")
    fresh = await client_token_response(world.client, client.client_id, client.client_secret)
    assert fresh.json()["scope"] == "items:read"
    after = fresh.json()["access_token"]
    assert (
        await world.client.get("/v1/tenants/acme/items", headers=bearer(after))
    ).status_code == 200
    report = await world.client.get("/v1/tenants/acme/reports/inventory", headers=bearer(after))
    assert_problem(report, 403, "insufficient-scope")

    owner = "owner@acme.test"
    await world.member("acme", owner, "owner")
    cut = await events_of(world, await world.login(owner), "client.updated")
    assert cut[-1]["details"] == {
        "scopes": {"from": ["items:read", "items:write", "reports:read"], "to": ["items:read"]},
        "tokens_cut_off": True,
    }


async def test_nobody_widens_or_touches_a_client_beyond_their_own_scopes(world: World) -> None:
    admin = await admin_token(world, "acme")
    await world.member("acme", "owner@acme.test", "owner")
    owner = await world.login("owner@acme.test")
    # The owner's client can read the audit trail; an admin holds no audit:read.
    auditor = await create_client(world, owner, "acme", ["audit:read"], name="siem")
    mine = await create_client(world, admin, "acme", ["items:read"])

    widen = await world.client.patch(
        f"/v1/tenants/acme/clients/{mine.client_id}",
        json={"scopes": ["items:read", "audit:read"]},
        headers=bearer(admin),
    )
    assert assert_problem(widen, 403, "insufficient-scope")["required_scopes"] == ["audit:read"]
    for method, suffix, body in (
        ("PATCH", "", {"name": "mine now"}),
        ("POST", "/secret", None),
    ):
        response = await world.client.request(
            method,
            f"/v1/tenants/acme/clients/{auditor.client_id}{suffix}",
            json=body,
            headers=bearer(admin),
        )
        assert_problem(response, 403, "insufficient-scope")
    # Nothing changed: the auditor client keeps its name and its secret.
    shown = await world.client.get(
        f"/v1/tenants/acme/clients/{auditor.client_id}", headers=bearer(owner)
    )
    assert shown.json()["name"] == "siem"
    assert await client_token(world.client, auditor)
    # A client managing clients is held to its own token too.
    manager = await create_client(world, admin, "acme", ["clients:read", "clients:write"])
    manager_token = await client_token(world.client, manager)
    response = await world.client.patch(
        f"/v1/tenants/acme/clients/{mine.client_id}",
        json={"scopes": ["clients:read"]},
        headers=bearer(manager_token),
    )
    assert_problem(response, 403, "insufficient-scope")


async def test_a_client_cannot_renew_itself_or_lift_its_own_limit(world: World) -> None:
    admin = await admin_token(world, "acme")
    manager = await create_client(world, admin, "acme", ["clients:read", "clients:write"])
    token = await client_token(world.client, manager)
    own = f"/v1/tenants/acme/clients/{manager.client_id}"

    rotated = await world.client.post(f"{own}/secret", headers=bearer(token))
    body = assert_problem(rotated, 403, "self-management-refused")
    assert "rotate the secret of" in body["detail"]
    assert rotated.headers["www-authenticate"].startswith("Bearer")
    assert "client_secret" not in rotated.text
    # The secret it holds still works, and so does its token: nothing was renewed.
    assert await client_token(world.client, manager)
    limit = await world.client.patch(own, json={"rate_limit": "10/minute"}, headers=bearer(token))
    assert_problem(limit, 403, "self-management-refused")
    renamed = await world.client.patch(own, json={"name": "self-named"}, headers=bearer(token))
    assert renamed.status_code == 200
    # Another client it manages may be renewed (it holds that client's scopes).
    other = await create_client(world, admin, "acme", ["clients:read"])
    renewed = await world.client.post(
        f"/v1/tenants/acme/clients/{other.client_id}/secret", headers=bearer(token)
    )
    assert renewed.status_code == 200, renewed.text


async def test_a_client_rate_limit_within_the_plan_applies_at_the_next_request(
    world: World,
) -> None:
    admin = await admin_token(world, "acme")  # free plan: 60/minute per principal
    client = await create_client(world, admin, "acme", ["items:read"])
    token = await client_token(world.client, client)
    path = f"/v1/tenants/acme/clients/{client.client_id}"

    for too_much in ("61/minute", "2/second", "3600/hour"):
        response = await world.client.patch(
            path, json={"rate_limit": too_much}, headers=bearer(admin)
        )
        body = assert_problem(response, 422, "rate-limit-beyond-plan")
        assert body["plan"] == "free"
        assert too_much in body["detail"]

    response = await world.client.patch(
        path, json={"rate_limit": "2/minute"}, headers=bearer(admin)
    )
    assert response.status_code == 200, response.text
    assert response.json()["rate_limit"] == "2/minute"
    statuses = [
        (await world.client.get("/v1/tenants/acme/items", headers=bearer(token))).status_code
        for _ in range(3)
    ]
    assert statuses == [200, 200, 429]
    lifted = await world.client.patch(path, json={"rate_limit": None}, headers=bearer(admin))
    assert lifted.json()["rate_limit"] is None
    again = await world.client.get("/v1/tenants/acme/items", headers=bearer(token))
    assert again.status_code == 200
    assert again.headers["ratelimit-policy"].startswith('"principal";q=60;w=60')


async def test_the_plans_client_cap_is_a_clear_409(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, plan_limits={"free": {"clients": "2"}})
    async with World.start(settings) as world:
        admin = await admin_token(world, "acme")
        first = await create_client(world, admin, "acme", ["items:read"])
        await create_client(world, admin, "acme", ["items:read"])
        response = await world.client.post(
            "/v1/tenants/acme/clients",
            json={"name": "third", "scopes": ["items:read"]},
            headers=bearer(admin),
        )
        body = assert_problem(response, 409, "client-limit-reached")
        assert (body["plan"], body["limit"]) == ("free", 2)
        assert "free plan allows 2 clients" in body["detail"]
        listed = await world.client.get("/v1/tenants/acme/clients", headers=bearer(admin))
        assert len(listed.json()["clients"]) == 2
        # Another tenant has its own count.
        other = await admin_token(world, "globex")
        await create_client(world, other, "globex", ["items:read"])
        # The command line obeys the same cap.
        env = {
            **os.environ,
            "TENANTGATE_DATABASE_URL": database_url,
            "TENANTGATE_PLAN_LIMITS": json.dumps({"free": {"clients": "2"}}),
        }
        command = [TENANTGATE, "clients", "create", "acme", "cli one", "--scope", "items:read"]
        refused = await asyncio.to_thread(
            subprocess.run,
            command,
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert refused.returncode == 1, refused.stderr
        assert "free plan allows 2 clients" in refused.stderr
        # Room again once one is deleted.
        deleted = await world.client.delete(
            f"/v1/tenants/acme/clients/{first.client_id}", headers=bearer(admin)
        )
        assert deleted.status_code == 204
        await create_client(world, admin, "acme", ["items:read"], name="third")


async def test_platform_admins_read_the_platform_trail_through_the_api(world: World) -> None:
    await world.user("root@platform.test", platform_admin=True)
    root = await world.login("root@platform.test")
    # An unknown user's failed sign-in belongs to no tenant: the platform's trail.
    refused = await world.client.post(
        "/token",
        data={"grant_type": "password", "username": "nobody@x.test", "password": "wrong-pass"},
    )
    assert refused.status_code == 400
    created = await world.client.post(
        "/v1/tenants",
        json={"slug": "acme", "name": "Acme", "plan": "free"},
        headers=bearer(root),
    )
    assert created.status_code == 201

    page = await world.client.get("/v1/platform/audit/events", headers=bearer(root))
    assert page.status_code == 200, page.text
    events = page.json()["events"]
    assert events, page.text
    assert {event["tenant"] for event in events} == {None}
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    refusals = await world.client.get(
        "/v1/platform/audit/events",
        params={"action": "token.refused", "limit": 1},
        headers=bearer(root),
    )
    (refusal,) = refusals.json()["events"]
    assert refusal["details"]["username"] == "nobody@x.test"
    assert "tenant.created" not in refusals.text  # the tenant's own trail holds that one

    export = await world.client.get(
        "/v1/platform/audit/events", headers={**bearer(root), "Accept": "application/x-ndjson"}
    )
    assert export.headers["content-type"].startswith("application/x-ndjson")
    assert 'filename="audit-_platform.ndjson"' in export.headers["content-disposition"]
    lines = [json.loads(line) for line in export.text.splitlines()]
    assert [line["seq"] for line in lines] == [event["seq"] for event in events]
    as_csv = await world.client.get(
        "/v1/platform/audit/events", headers={**bearer(root), "Accept": "text/csv"}
    )
    assert as_csv.text.splitlines()[0].startswith("id,seq,tenant,time")
    await platform_filters_pages_and_exports(world, root)

    # A tenant's owner, even holding audit:read, is no platform admin.
    await world.member("acme", "owner@acme.test", "owner")
    owner = await world.login("owner@acme.test")
    denied = await world.client.get("/v1/platform/audit/events", headers=bearer(owner))
    assert assert_problem(denied, 403, "insufficient-scope")["required_scopes"] == [
        "platform:admin"
    ]
    assert_problem(await world.client.get("/v1/platform/audit/events"), 401, "unauthenticated")


async def platform_filters_pages_and_exports(world: World, root: str) -> None:
    """The tenant trail's filters, cursor pages and filtered exports, on the platform trail."""
    for username in ("a@x.test", "b@x.test"):
        form = {"grant_type": "password", "username": username, "password": "wrong-pass"}
        assert (await world.client.post("/token", data=form)).status_code == 400
    await world.login("root@platform.test")
    url = "/v1/platform/audit/events"

    async def shown(**params: str) -> list[dict[str, Any]]:
        page = await world.client.get(url, params=params, headers=bearer(root))
        assert page.status_code == 200, page.text
        found: list[dict[str, Any]] = page.json()["events"]
        return found

    everything = await shown()
    assert len(everything) >= 5
    root_id = (await world.client.get("/v1/me", headers=bearer(root))).json()["subject"]
    by_root = await shown(actor=root_id)
    assert by_root == [e for e in everything if e["actor_subject"] == root_id]
    assert len(by_root) >= 2
    failures = await shown(outcome="failure")
    assert failures == [e for e in everything if e["outcome"] == "failure"]
    assert {e["action"] for e in failures} == {"token.refused"}
    assert len(failures) == 3
    # A time range: from the second event (inclusive) to the third (exclusive).
    second, third = everything[1], everything[2]
    assert await shown(since=second["time"], until=third["time"]) == [second]
    # Cursor pages of one event walk the same trail, in order, once each.
    walked: list[dict[str, Any]] = []
    params: dict[str, str] = {"limit": "1"}
    while True:
        page = (await world.client.get(url, params=params, headers=bearer(root))).json()
        walked += page["events"]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert walked == everything
    # An export of a filtered range holds the rows the filter shows, no more.
    export = await world.client.get(
        url, params={"outcome": "failure"}, headers={**bearer(root), "Accept": "text/csv"}
    )
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert [int(row["seq"]) for row in rows] == [e["seq"] for e in failures]


async def test_a_plan_downgrade_never_leaves_a_client_above_the_new_plan(world: World) -> None:
    await world.tenant("acme", plan="pro")  # 600/minute per principal
    admin = await admin_token(world, "acme")
    client = await create_client(world, admin, "acme", ["items:read"])
    token = await client_token(world.client, client)
    path = f"/v1/tenants/acme/clients/{client.client_id}"
    set_limit = await world.client.patch(
        path, json={"rate_limit": "300/minute"}, headers=bearer(admin)
    )
    assert set_limit.status_code == 200, set_limit.text
    policy = (await world.client.get("/v1/tenants/acme/items", headers=bearer(token))).headers
    assert policy["ratelimit-policy"].startswith('"principal";q=300;w=60')

    await world.user("root@platform.test", platform_admin=True)
    root = await world.login("root@platform.test")
    downgraded = await world.client.patch(
        "/v1/tenants/acme", json={"plan": "free"}, headers=bearer(root)
    )
    assert downgraded.status_code == 200, downgraded.text
    policy = (await world.client.get("/v1/tenants/acme/items", headers=bearer(token))).headers
    assert policy["ratelimit-policy"].startswith('"principal";q=60;w=60')
