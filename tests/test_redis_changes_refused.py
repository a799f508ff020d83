"""Redis down during a security change: 503 `state-store-unavailable`, and nothing half-done.

Member removal and downgrade, suspension, token revocation, client deletion and secret rotation
are written to the database and to Redis in one step. When Redis does not take the change, the
request answers 503 (with Retry-After) and the database is as it was: once Redis is back (empty,
re-seeded from the database) every token the change would have ended still works.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from storage.tables import audit_events, clients, memberships, refresh_tokens, revocations, tenants
from tests.support import World, bearer, make_settings
from tests.support_clients import Client, basic, client_token, create_client
from tests.support_members import PLATFORM_EMAIL, assert_problem
from tests.support_redis import RedisProcess, own_redis

MEMBERS = "/v1/tenants/acme/members"


@dataclass
class Scene:
    world: World
    redis: RedisProcess
    owner: str
    root: str
    tokens: dict[str, str]
    ids: dict[str, str]
    client: Client


@pytest.fixture
async def scene(database_url: str, tmp_path: Path) -> AsyncIterator[Scene]:
    with own_redis(tmp_path) as redis:
        settings = make_settings(
            database_url, redis_url=redis.url, redis_prefix="tgrefused", redis_timeout=0.5
        )
        async with World.start(settings) as world:
            for tenant in ("acme", "globex"):
                await world.tenant(tenant, plan="enterprise")
            await world.user(PLATFORM_EMAIL, platform_admin=True)
            ids = {"owner": await world.member("acme", "owner@acme.test", "owner")}
            for who in ("leaver", "lowered"):
                ids[who] = await world.member("acme", f"{who}@acme.test", "admin")
            await world.member("acme", "revoked@acme.test", "viewer")
            await world.member("globex", "owner@globex.test", "owner")
            owner = await world.login("owner@acme.test")
            client = await create_client(world, owner, "acme", ["items:read"])
            tokens = {who: await world.login(f"{who}@acme.test") for who in ("leaver", "lowered")}
            tokens["revoked"] = await world.login("revoked@acme.test")
            tokens["globex"] = await world.login("owner@globex.test")
            tokens["client"] = await client_token(world.client, client)
            root = await world.login(PLATFORM_EMAIL)
            yield Scene(world, redis, owner, root, tokens, ids, client)


# Where each token is checked: a route it may use before the change.
CHECKS = {
    "leaver": MEMBERS,
    "lowered": MEMBERS,
    "revoked": "/v1/tenants/acme/items",
    "globex": "/v1/tenants/globex/items",
    "client": "/v1/tenants/acme/items",
}


async def statuses(scene: Scene) -> dict[str, int]:
    found = {}
    for who, path in CHECKS.items():
        response = await scene.world.client.get(path, headers=bearer(scene.tokens[who]))
        found[who] = response.status_code
    return found


async def database_state(world: World) -> dict[str, object]:
    """Everything the changes below would write (the audit trail included)."""
    async with world.database.read() as connection:

        async def rows(query: sa.Select[Any]) -> list[tuple[object, ...]]:
            return [tuple(row) for row in await connection.execute(query)]

        return {
            "memberships": await rows(sa.select(memberships).order_by(memberships.c.user_id)),
            "tenants": await rows(sa.select(tenants.c.slug, tenants.c.status)),
            "clients": await rows(sa.select(clients).order_by(clients.c.client_id)),
            "revocations": await rows(sa.select(revocations)),
            "refresh": await rows(sa.select(refresh_tokens.c.id, refresh_tokens.c.revoked_at)),
            "audit": await rows(sa.select(sa.func.count()).select_from(audit_events)),
        }


async def the_changes(scene: Scene) -> list[httpx.Response]:
    http, owner = scene.world.client, bearer(scene.owner)
    client_path = f"/v1/tenants/acme/clients/{scene.client.client_id}"
    return [
        await http.delete(f"{MEMBERS}/{scene.ids['leaver']}", headers=owner),
        await http.patch(
            f"{MEMBERS}/{scene.ids['lowered']}", json={"role": "viewer"}, headers=owner
        ),
        await http.patch(
            "/v1/tenants/globex", json={"status": "suspended"}, headers=bearer(scene.root)
        ),
        await http.post("/revoke", data={"token": scene.tokens["revoked"]}),
        await http.delete(client_path, headers=owner),
        await http.post(client_path + "/secret", headers=owner),
    ]


async def test_security_changes_fail_whole_while_redis_is_down(scene: Scene) -> None:
    world = scene.world
    assert await statuses(scene) == dict.fromkeys(CHECKS, 200)
    before = await database_state(world)

    scene.redis.stop()  # refused, and its data is gone
    responses = await the_changes(scene)
    revoked = responses.pop(3)  # /revoke answers in RFC 6749 terms (RFC 7009 section 2.2.1)
    assert revoked.status_code == 503
    assert revoked.json() == {
        "error": "temporarily_unavailable",
        "error_description": "the shared state store is unreachable, nothing was revoked; "
        "retry shortly",
    }
    for response in [revoked, *responses]:
        assert response.headers["retry-after"] == "5"
    for response in responses:
        body = assert_problem(response, 503, "state-store-unavailable")
        assert "nothing was changed" in body["detail"]
    assert await database_state(world) == before

    scene.redis.start()  # empty: re-seeded from the database, which holds no change
    assert await statuses(scene) == dict.fromkeys(CHECKS, 200)
    grant = await world.client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers=basic(scene.client.client_id, scene.client.client_secret),
    )
    assert grant.status_code == 200, "the client and its secret are as they were"
    # The same changes go through once Redis takes them, and end those tokens.
    assert [r.status_code for r in await the_changes(scene)] == [204, 200, 200, 200, 204, 404]
    assert await statuses(scene) == {
        "leaver": 401,
        "lowered": 401,
        "revoked": 401,
        "globex": 403,
        "client": 401,
    }
