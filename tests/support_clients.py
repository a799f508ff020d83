"""Helpers for the OAuth2 client tests: an admin token, a client, a client_credentials token."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from storage.tables import tenants
from tests.support import World, bearer


@dataclass(frozen=True)
class Client:
    client_id: str
    client_secret: str
    tenant: str
    body: dict[str, Any]


def basic(client_id: str, secret: str) -> dict[str, str]:
    """client_secret_basic: both parts form-encoded first (RFC 6749 section 2.3.1)."""
    pair = f"{quote(client_id, safe='')}:{quote(secret, safe='')}"
    return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}


async def admin_token(world: World, tenant: str, email: str | None = None) -> str:
    """A tenant with an admin member, logged in; the tenant is created when missing."""
    email = email or f"admin@{tenant}.test"
    async with world.database.read() as connection:
        exists = (
            await connection.execute(tenants.select().where(tenants.c.slug == tenant))
        ).first()
    if exists is None:
        await world.tenant(tenant)
    await world.member(tenant, email, "admin")
    return await world.login(email)


async def create_client(
    world: World,
    admin: str,
    tenant: str,
    scopes: list[str],
    name: str = "integration",
    **extra: Any,
) -> Client:
    response = await world.client.post(
        f"/v1/tenants/{tenant}/clients",
        json={"name": name, "scopes": scopes, **extra},
        headers=bearer(admin),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return Client(body["client_id"], body["client_secret"], tenant, body)


async def client_token_response(
    http: httpx.AsyncClient,
    client_id: str,
    secret: str,
    *,
    scope: str | None = None,
    method: str = "basic",
) -> httpx.Response:
    form = {"grant_type": "client_credentials"}
    if scope is not None:
        form["scope"] = scope
    if method == "basic":
        return await http.post("/token", data=form, headers=basic(client_id, secret))
    form |= {"client_id": client_id, "client_secret": secret}
    return await http.post("/token", data=form)


async def client_token(
    http: httpx.AsyncClient, client: Client, *, scope: str | None = None, method: str = "basic"
) -> str:
    response = await client_token_response(
        http, client.client_id, client.client_secret, scope=scope, method=method
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token
