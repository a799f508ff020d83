"""Security changes made through one app instance take effect on the very next request in another.

Two app instances in this process share the database and a real Redis; the same changes
across real worker processes (`tenantgate serve --workers 2`) are in
tests/test_workers_propagation.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from tests.support import World, bearer, make_settings
from tests.support_members import (
    assert_problem,
    login_pair,
    member_headers,
    platform_headers,
    refresh,
)

MEMBERS = "/v1/tenants/acme/members"


@dataclass
class Workers:
    a: World
    b: World
    owner: dict[str, str]


@pytest.fixture
async def workers(database_url: str, redis_url: str, redis_prefix: str) -> AsyncIterator[Workers]:
    settings = make_settings(database_url, redis_url=redis_url, redis_prefix=redis_prefix)
    async with World.start(settings) as a, World.start(settings) as b:
        await a.tenant("acme")
        _, owner = await member_headers(a, "acme", "owner@acme.test", "owner")
        # Both workers share one password book, so either can log anyone in.
        b.passwords = a.passwords
        yield Workers(a, b, owner)


async def test_suspension_and_reactivation_reach_the_other_instance(workers: Workers) -> None:
    a, b = workers.a, workers.b
    admin = await platform_headers(a)
    token = bearer(await b.login("owner@acme.test"))
    assert (await b.client.get(MEMBERS, headers=token)).status_code == 200

    suspended = await a.client.patch(
        "/v1/tenants/acme", json={"status": "suspended"}, headers=admin
    )
    assert suspended.status_code == 200
    assert_problem(await b.client.get(MEMBERS, headers=token), 403, "tenant-suspended")
    assert (await b.token_response("owner@acme.test")).status_code == 400

    reactivated = await a.client.patch("/v1/tenants/acme", json={"status": "active"}, headers=admin)
    assert reactivated.status_code == 200
    assert (await b.client.get(MEMBERS, headers=token)).status_code == 200


async def test_removal_reaches_the_other_instance(workers: Workers) -> None:
    a, b = workers.a, workers.b
    user_id = await a.member("acme", "leaver@acme.test", "admin")
    access, refresh_token = await login_pair(b, "leaver@acme.test", "acme")
    assert (await b.client.get(MEMBERS, headers=bearer(access))).status_code == 200

    removed = await a.client.delete(f"{MEMBERS}/{user_id}", headers=workers.owner)
    assert removed.status_code == 204
    assert_problem(await b.client.get(MEMBERS, headers=bearer(access)), 401, "invalid-token")
    assert_problem(await b.client.get("/v1/me", headers=bearer(access)), 401, "invalid-token")
    refreshed = await refresh(b, refresh_token)
    assert refreshed.status_code == 400
    assert refreshed.json()["error"] == "invalid_grant"


async def test_downgrade_reaches_the_other_instance(workers: Workers) -> None:
    a, b = workers.a, workers.b
    user_id = await a.member("acme", "admin@acme.test", "admin")
    access, refresh_token = await login_pair(b, "admin@acme.test", "acme")
    assert (await b.client.get(MEMBERS, headers=bearer(access))).status_code == 200

    lowered = await a.client.patch(
        f"{MEMBERS}/{user_id}", json={"role": "viewer"}, headers=workers.owner
    )
    assert lowered.status_code == 200
    assert_problem(await b.client.get(MEMBERS, headers=bearer(access)), 401, "invalid-token")

    # The refresh token survives a downgrade but only yields what the new role allows.
    refreshed = await refresh(b, refresh_token)
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["scope"] == "items:read reports:read"
    narrowed = bearer(refreshed.json()["access_token"])
    assert (await a.client.get("/v1/me", headers=narrowed)).status_code == 200
    assert_problem(await a.client.get(MEMBERS, headers=narrowed), 403, "insufficient-scope")


async def test_upgrade_keeps_existing_tokens(workers: Workers) -> None:
    a, b = workers.a, workers.b
    user_id = await a.member("acme", "viewer@acme.test", "viewer")
    token = bearer(await b.login("viewer@acme.test"))
    raised = await a.client.patch(
        f"{MEMBERS}/{user_id}", json={"role": "admin"}, headers=workers.owner
    )
    assert raised.status_code == 200
    assert (await b.client.get("/v1/me", headers=token)).status_code == 200
    # The old token keeps its old scopes; a new login carries the new role's.
    assert_problem(await b.client.get(MEMBERS, headers=token), 403, "insufficient-scope")
    fresh = bearer(await b.login("viewer@acme.test"))
    assert (await b.client.get(MEMBERS, headers=fresh)).status_code == 200


async def test_a_change_made_on_b_reaches_a_too(workers: Workers) -> None:
    a, b = workers.a, workers.b
    user_id = await a.member("acme", "leaver@acme.test", "member")
    token = bearer(await a.login("leaver@acme.test"))
    owner_on_b = bearer(await b.login("owner@acme.test"))
    removed = await b.client.delete(f"{MEMBERS}/{user_id}", headers=owner_on_b)
    assert removed.status_code == 204
    assert_problem(await a.client.get("/v1/me", headers=token), 401, "invalid-token")
