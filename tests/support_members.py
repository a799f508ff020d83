"""Helpers for the tenant admin, members and propagation tests."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support import World, bearer

PLATFORM_EMAIL = "root@platform.test"
PROBLEM = "urn:tenantgate:problem:"


def assert_problem(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    """The response is an RFC 9457 problem of the given status and type; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["type"] == PROBLEM + kind, body
    assert body["status"] == status
    return body


async def platform_headers(world: World) -> dict[str, str]:
    """A platform operator's bearer header (token bound to no tenant, scope platform:admin)."""
    if PLATFORM_EMAIL not in world.passwords:
        await world.user(PLATFORM_EMAIL, platform_admin=True)
    return bearer(await world.login(PLATFORM_EMAIL))


async def member_headers(
    world: World, tenant: str, email: str, role: str, *, scope: str | None = None
) -> tuple[str, dict[str, str]]:
    """A new member of `tenant` with `role`, logged in: (user_id, bearer header)."""
    user_id = await world.member(tenant, email, role)
    return user_id, bearer(await world.login(email, scope=scope, tenant=tenant))


async def login_pair(world: World, email: str, tenant: str) -> tuple[str, str]:
    """(access token, refresh token) from a password login."""
    response = await world.token_response(email, tenant=tenant)
    assert response.status_code == 200, response.text
    body = response.json()
    return body["access_token"], body["refresh_token"]


async def refresh(world: World, refresh_token: str) -> httpx.Response:
    return await world.client.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token}
    )
