"""POST /token grant_type=client_credentials: client authentication, scope ceiling, tenant."""

from __future__ import annotations

import base64

import pytest
import sqlalchemy as sa

from storage.audit_queries import EventFilter, events
from storage.tables import clients, tenants
from tests.support import World, bearer, jwt_part
from tests.support_clients import (
    Client,
    admin_token,
    basic,
    client_token,
    client_token_response,
    create_client,
)

SCOPES = ["clients:read", "items:read", "items:write"]


async def _client(world: World, tenant: str = "acme", scopes: list[str] = SCOPES) -> Client:
    admin = await admin_token(world, tenant)
    return await create_client(world, admin, tenant, scopes)


def _invalid_client(response_status: int, body: dict[str, str], challenge: str | None) -> None:
    assert response_status == 401
    assert body["error"] == "invalid_client"
    assert challenge is not None
    assert challenge.startswith("Basic")


@pytest.mark.parametrize("method", ["basic", "post"])
async def test_both_authentication_methods_issue_a_tenant_bound_client_token(
    world: World, method: str
) -> None:
    client = await _client(world)
    response = await client_token_response(
        world.client, client.client_id, client.client_secret, method=method
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == world.settings.access_token_ttl
    assert body["scope"] == " ".join(SCOPES)
    claims = jwt_part(body["access_token"], 1)
    assert claims["sub"] == f"client:{client.client_id}"
    assert claims["client_id"] == client.client_id
    assert claims["tid"] == "acme"
    assert isinstance(claims["rev"], int)
    assert claims["rev"] > 0

    token = body["access_token"]
    me = (await world.client.get("/v1/me", headers=bearer(token))).json()
    assert me["kind"] == "client"
    assert me["tenant"] == "acme"
    listed = await world.client.get("/v1/tenants/acme/clients", headers=bearer(token))
    assert listed.status_code == 200
    assert listed.json()["clients"][0]["last_used_at"] is not None


async def test_requested_scope_is_capped_by_the_clients_scopes(world: World) -> None:
    client = await _client(world)
    narrowed = await client_token_response(
        world.client, client.client_id, client.client_secret, scope="items:read"
    )
    assert narrowed.status_code == 200
    assert narrowed.json()["scope"] == "items:read"
    token = narrowed.json()["access_token"]
    response = await world.client.get("/v1/tenants/acme/clients", headers=bearer(token))
    assert response.status_code == 403

    for scope in ("items:read members:write", "audit:read", "platform:admin", "nonsense"):
        response = await client_token_response(
            world.client, client.client_id, client.client_secret, scope=scope
        )
        assert response.status_code == 400, scope
        assert response.json()["error"] == "invalid_scope"


async def test_client_tokens_do_not_reach_another_tenant(world: World) -> None:
    client = await _client(world)
    await admin_token(world, "globex")
    token = await client_token(world.client, client)
    response = await world.client.get("/v1/tenants/globex/clients", headers=bearer(token))
    assert response.status_code == 404
    assert response.json()["type"] == "urn:tenantgate:problem:tenant-not-found"


async def test_bad_client_authentication_is_401_invalid_client(world: World) -> None:
    client = await _client(world)
    grant = {"grant_type": "client_credentials"}
    attempts: list[dict[str, dict[str, str]]] = [
        {"headers": basic(client.client_id, client.client_secret + "x")},
        {"headers": basic(client.client_id, "")},
        {"headers": basic("cli_0000000000000000000000", client.client_secret)},
        {"headers": basic("tenantgate", "")},
        {"headers": {"Authorization": "Basic not-base64!"}},
        {"headers": {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()}},
        {"headers": {"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:x").decode()}},
        {"data": {"client_id": client.client_id, "client_secret": "tgcs_wrong"}},
        {"data": {"client_id": client.client_id}},
        {"data": {"client_id": "tenantgate"}},
        {"data": {}},
        {"headers": {"Authorization": "Bearer something"}},
    ]
    for attempt in attempts:
        data = {**grant, **attempt.get("data", {})}
        response = await world.client.post("/token", data=data, headers=attempt.get("headers"))
        _invalid_client(
            response.status_code, response.json(), response.headers.get("www-authenticate")
        )
        assert client.client_secret not in response.text


async def test_two_authentication_methods_at_once_are_refused(world: World) -> None:
    client = await _client(world)
    response = await world.client.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client.client_id,
            "client_secret": client.client_secret,
        },
        headers=basic(client.client_id, client.client_secret),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_basic_credentials_are_form_decoded(world: World) -> None:
    # RFC 6749 2.3.1: id and secret are application/x-www-form-urlencoded before Base64.
    client = await _client(world)
    encoded = client.client_secret.replace("_", "%5F").replace("-", "%2D")
    pair = f"{client.client_id}:{encoded}".encode()
    response = await world.client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": "Basic " + base64.b64encode(pair).decode()},
    )
    assert response.status_code == 200, response.text


async def test_a_suspended_tenant_gets_no_tokens(world: World) -> None:
    client = await _client(world)
    async with world.database.write() as connection:
        await connection.execute(
            tenants.update().where(tenants.c.slug == "acme").values(status="suspended")
        )
    response = await client_token_response(world.client, client.client_id, client.client_secret)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert "access_token" not in response.json()


async def test_last_used_at_is_recorded(world: World) -> None:
    client = await _client(world)

    async def last_used() -> object:
        async with world.database.read() as connection:
            query = sa.select(clients.c.last_used_at).where(clients.c.client_id == client.client_id)
            return (await connection.execute(query)).scalar_one()

    assert await last_used() is None
    await client_token(world.client, client)
    first = await last_used()
    assert first is not None
    await client_token(world.client, client, method="post")
    second = await last_used()
    assert second is not None
    assert second >= first  # type: ignore[operator]


async def test_third_party_clients_cannot_use_the_password_grant(world: World) -> None:
    client = await _client(world)
    await world.member("acme", "bob@acme.test", "viewer")
    form = {
        "grant_type": "password",
        "username": "bob@acme.test",
        "password": world.passwords["bob@acme.test"],
    }
    response = await world.client.post(
        "/token", data=form, headers=basic(client.client_id, client.client_secret)
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"
    # The first-party client may name itself.
    response = await world.client.post("/token", data={**form, "client_id": "tenantgate"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"grant_type": "password", "username": "bob@acme.test", "password": "x"}, None),
        ({"grant_type": "refresh_token", "refresh_token": "x"}, None),
        ({}, "invalid_request"),
        ({"grant_type": "authorization_code"}, "unsupported_grant_type"),
    ],
)
async def test_a_third_party_client_is_authenticated_before_its_grant_is_checked(
    world: World, form: dict[str, str], error: str | None
) -> None:
    """RFC 6749 section 5.2: a wrong secret is invalid_client (401), whatever the grant; only
    an authenticated client hears what is wrong with its request."""
    client = await _client(world)
    wrong = await world.client.post(
        "/token", data=form, headers=basic(client.client_id, client.client_secret + "x")
    )
    _invalid_client(wrong.status_code, wrong.json(), wrong.headers.get("www-authenticate"))
    right = await world.client.post(
        "/token", data=form, headers=basic(client.client_id, client.client_secret)
    )
    assert right.status_code == 400
    assert right.json()["error"] == (error or "unauthorized_client")
    # The wrong secret is in the audit trail like any refused client authentication.
    async with world.database.read() as connection:
        refused = await events(connection, "acme", EventFilter(action="token.refused"), limit=10)
    assert [e.details["reason"] for e in refused] == ["invalid_client"]


async def test_unsupported_grant_lists_client_credentials(world: World) -> None:
    response = await world.client.post("/token", data={"grant_type": "authorization_code"})
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"
    assert "client_credentials" in response.json()["error_description"]
