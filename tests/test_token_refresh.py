"""POST /token with the refresh_token grant: rotation, reuse detection, scope narrowing."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from storage.tables import memberships, refresh_tokens, users, utcnow
from tests.support import World, bearer


@pytest.fixture
async def owner(world: World) -> World:
    await world.tenant("acme")
    await world.member("acme", "owner@acme.test", "owner")
    return world


async def refresh(world: World, token: str, scope: str | None = None) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": token}
    if scope is not None:
        form["scope"] = scope
    return await world.client.post("/token", data=form)


async def first_refresh_token(world: World, scope: str | None = None) -> str:
    response = await world.token_response("owner@acme.test", scope=scope)
    token: str = response.json()["refresh_token"]
    return token


async def test_refresh_returns_a_new_pair(owner: World) -> None:
    original = await first_refresh_token(owner)
    response = await refresh(owner, original)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["refresh_token"] != original
    me = await owner.client.get("/v1/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200


async def test_reuse_revokes_the_whole_family(owner: World) -> None:
    first = await first_refresh_token(owner)
    second = (await refresh(owner, first)).json()["refresh_token"]
    reused = await refresh(owner, first)
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    # The legitimate-looking newer token of the family is dead too.
    newer = await refresh(owner, second)
    assert newer.status_code == 400
    assert newer.json()["error"] == "invalid_grant"


async def test_other_families_survive_a_reuse(owner: World) -> None:
    victim = await first_refresh_token(owner)
    other = await first_refresh_token(owner)
    rotated = await refresh(owner, victim)
    assert rotated.status_code == 200
    reused = await refresh(owner, victim)
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    # The reuse was caught (the victim's family is dead) and stopped at that family.
    assert (await refresh(owner, rotated.json()["refresh_token"])).status_code == 400
    assert (await refresh(owner, other)).status_code == 200


async def test_scope_may_narrow_but_never_widen(owner: World) -> None:
    token = await first_refresh_token(owner, scope="items:read items:write")
    narrowed = await refresh(owner, token, scope="items:read")
    assert narrowed.status_code == 200
    assert narrowed.json()["scope"] == "items:read"
    # The new refresh token keeps the original grant (RFC 6749 section 6): narrowing is per call.
    again = await refresh(owner, narrowed.json()["refresh_token"])
    assert again.json()["scope"] == "items:read items:write"
    widened = await refresh(owner, again.json()["refresh_token"], scope="members:read")
    assert widened.status_code == 400
    assert widened.json()["error"] == "invalid_scope"


@pytest.mark.parametrize("token", ["garbage", "x" * 5000, "ñ"])
async def test_unknown_refresh_token_is_invalid_grant(owner: World, token: str) -> None:
    response = await refresh(owner, token)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_expired_refresh_token_is_invalid_grant(owner: World) -> None:
    token = await first_refresh_token(owner)
    async with owner.database.write() as connection:
        await connection.execute(
            refresh_tokens.update().values(expires_at=utcnow() - timedelta(seconds=1))
        )
    response = await refresh(owner, token)
    assert response.json()["error"] == "invalid_grant"


async def test_refresh_reflects_a_lowered_role(owner: World) -> None:
    token = await first_refresh_token(owner)
    async with owner.database.write() as connection:
        await connection.execute(memberships.update().values(role="viewer"))
    response = await refresh(owner, token)
    assert response.status_code == 200
    assert response.json()["scope"] == "items:read reports:read"


async def test_refresh_for_a_deactivated_user_is_invalid_grant(owner: World) -> None:
    token = await first_refresh_token(owner)
    async with owner.database.write() as connection:
        await connection.execute(users.update().values(is_active=False))
    response = await refresh(owner, token)
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "the refresh token is invalid or expired",
    }


async def test_refresh_of_a_platform_token_ends_when_admin_is_withdrawn(world: World) -> None:
    await world.user("root@tenantgate.test", platform_admin=True)
    first = await world.token_response("root@tenantgate.test")
    assert first.json()["scope"] == "platform:admin"
    token = first.json()["refresh_token"]
    still = await refresh(world, token)
    assert still.status_code == 200
    async with world.database.write() as connection:
        await connection.execute(users.update().values(is_platform_admin=False))
    response = await refresh(world, still.json()["refresh_token"])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
