"""POST /revoke (RFC 7009), POST /introspect (RFC 7662) and the RFC 8414 metadata document."""

from __future__ import annotations

import secrets
import time
from typing import Any

import jwt
import sqlalchemy as sa

from auth.keys import KeyRing, generate_private_key
from auth.tokens import issue
from config.settings import SigningAlgorithm
from storage.tables import refresh_tokens, tenants
from tests.support import World, bearer, jwt_part, make_settings
from tests.support_clients import (
    Client,
    admin_token,
    basic,
    client_token,
    create_client,
)

SCOPES = ["clients:read", "items:read"]
INACTIVE = {"active": False}


async def _client(world: World, tenant: str = "acme", name: str = "c") -> Client:
    admin = await admin_token(world, tenant, email=f"{name}-admin@{tenant}.test")
    return await create_client(world, admin, tenant, SCOPES, name=name)


async def _revoke(world: World, token: str, client: Client | None = None, **form: str) -> Any:
    headers = basic(client.client_id, client.client_secret) if client else None
    return await world.client.post("/revoke", data={"token": token, **form}, headers=headers)


async def _introspect(world: World, client: Client, token: str) -> dict[str, Any]:
    response = await world.client.post(
        "/introspect", data={"token": token}, headers=basic(client.client_id, client.client_secret)
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    return body


async def _reads(world: World, token: str) -> int:
    response = await world.client.get("/v1/tenants/acme/clients", headers=bearer(token))
    return response.status_code


# --- revocation ---------------------------------------------------------------------------


async def test_revoked_access_token_is_refused_by_every_app_instance(
    database_url: str, redis_url: str, redis_prefix: str
) -> None:
    settings = make_settings(database_url, redis_url=redis_url, redis_prefix=redis_prefix)
    async with World.start(settings) as a, World.start(settings) as b:
        client = await _client(a)
        token = await client_token(a.client, client)
        other = await client_token(a.client, client)
        assert await _reads(a, token) == 200
        assert await _reads(b, token) == 200  # b has verified and cached it

        response = await _revoke(a, token, client, token_type_hint="access_token")
        assert response.status_code == 200
        assert response.content == b""
        assert response.headers["cache-control"] == "no-store"

        for world in (b, a):
            response = await world.client.get("/v1/tenants/acme/clients", headers=bearer(token))
            assert response.status_code == 401
            assert response.json()["type"] == "urn:tenantgate:problem:invalid-token"
            assert 'error="invalid_token"' in response.headers["www-authenticate"]
        # Only that token: the client's other tokens keep working.
        assert await _reads(b, other) == 200

        # Deleting the client on one instance ends its tokens on the other.
        admin = await a.login("c-admin@acme.test")
        deleted = await a.client.delete(
            f"/v1/tenants/acme/clients/{client.client_id}", headers=bearer(admin)
        )
        assert deleted.status_code == 204
        assert await _reads(b, other) == 401


async def test_unknown_tokens_are_always_200(world: World) -> None:
    client = await _client(world)
    expired = _expired_token(world, client)
    for token in ("garbage", "a.b.c", secrets.token_urlsafe(32), expired, "x" * 10_000):
        assert (await _revoke(world, token, client)).status_code == 200
        assert (await _revoke(world, token)).status_code == 200
    response = await _revoke(world, "garbage", client, token_type_hint="something_else")
    assert response.status_code == 200


async def test_revoke_needs_a_token_and_a_valid_client(world: World) -> None:
    client = await _client(world)
    response = await world.client.post(
        "/revoke", data={}, headers=basic(client.client_id, client.client_secret)
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    response = await world.client.post(
        "/revoke", data={"token": "x"}, headers=basic(client.client_id, "tgcs_wrong")
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic")


async def test_a_client_revokes_only_its_own_tokens(world: World) -> None:
    mine = await _client(world, name="mine")
    theirs = await _client(world, name="theirs")
    foreign = await _client(world, tenant="globex", name="foreign")
    token = await client_token(world.client, theirs)
    foreign_token = await client_token(world.client, foreign)
    await world.member("acme", "bob@acme.test", "admin")
    user_token = await world.login("bob@acme.test")
    for caller, victim in ((mine, token), (mine, foreign_token), (mine, user_token)):
        response = await _revoke(world, victim, caller)
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_grant"
    # Without client authentication, a caller is the first-party public client: not the owner.
    assert (await _revoke(world, token)).status_code == 400
    assert await _reads(world, token) == 200
    assert await _reads(world, user_token) == 200


async def test_a_user_revokes_their_own_access_token(world: World) -> None:
    await world.tenant("acme")
    await world.member("acme", "bob@acme.test", "admin")
    token = await world.login("bob@acme.test")
    other = await world.login("bob@acme.test")
    assert (await _revoke(world, token, client_id="tenantgate")).status_code == 200
    assert await _reads(world, token) == 401
    assert await _reads(world, other) == 200
    # The same without naming the client: the public first-party client is the default.
    assert (await _revoke(world, other)).status_code == 200
    assert await _reads(world, other) == 401


async def test_revoking_a_refresh_token_ends_its_family(world: World) -> None:
    await world.tenant("acme")
    await world.member("acme", "bob@acme.test", "viewer")
    first = (await world.token_response("bob@acme.test")).json()
    rotated = await world.client.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    )
    current = rotated.json()["refresh_token"]
    response = await _revoke(world, current, token_type_hint="refresh_token")
    assert response.status_code == 200
    refused = await world.client.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": current}
    )
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    async with world.database.read() as connection:
        revoked = (await connection.execute(sa.select(refresh_tokens.c.revoked_at))).scalars()
        assert all(value is not None for value in revoked)


async def test_a_confidential_client_cannot_revoke_user_refresh_tokens(world: World) -> None:
    client = await _client(world)
    await world.member("acme", "bob@acme.test", "viewer")
    refresh = (await world.token_response("bob@acme.test")).json()["refresh_token"]
    response = await _revoke(world, refresh, client)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    still = await world.client.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": refresh}
    )
    assert still.status_code == 200


# --- introspection ------------------------------------------------------------------------


async def test_introspection_of_an_active_client_token(world: World) -> None:
    client = await _client(world)
    token = await client_token(world.client, client, scope="items:read")
    body = await _introspect(world, client, token)
    claims = jwt_part(token, 1)
    assert body == {
        "active": True,
        "scope": "items:read",
        "client_id": client.client_id,
        "sub": f"client:{client.client_id}",
        "tid": "acme",
        "exp": claims["exp"],
        "iat": claims["iat"],
        "iss": world.settings.issuer,
        "aud": world.settings.audience,
        "jti": claims["jti"],
        "token_type": "Bearer",
    }


async def test_introspection_with_client_secret_post_as_advertised(world: World) -> None:
    """The metadata lists client_secret_post for introspection: credentials in the form."""
    client = await _client(world)
    token = await client_token(world.client, client, scope="items:read")
    form = {"token": token, "client_id": client.client_id}
    response = await world.client.post(
        "/introspect", data={**form, "client_secret": client.client_secret}
    )
    assert response.status_code == 200, response.text
    assert response.json()["active"] is True
    assert response.json()["jti"] == jwt_part(token, 1)["jti"]
    wrong = await world.client.post(
        "/introspect", data={**form, "client_secret": client.client_secret + "x"}
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    # No secret at all is the public client, which may not introspect.
    public = await world.client.post("/introspect", data=form)
    assert public.status_code == 401
    assert public.json()["error"] == "invalid_client"


async def test_introspection_of_a_user_token_of_the_same_tenant(world: World) -> None:
    client = await _client(world)
    user_id = await world.member("acme", "bob@acme.test", "viewer")
    token = await world.login("bob@acme.test")
    body = await _introspect(world, client, token)
    assert body["active"] is True
    assert body["sub"] == user_id
    assert body["client_id"] == "tenantgate"
    assert body["scope"] == "items:read reports:read"


async def test_introspection_says_only_inactive_for_everything_else(world: World) -> None:
    client = await _client(world)
    foreign = await _client(world, tenant="globex", name="foreign")
    foreign_token = await client_token(world.client, foreign)
    await world.user("root@platform.test", platform_admin=True)
    platform_token = await world.login("root@platform.test")
    revoked = await client_token(world.client, client)
    assert (await _revoke(world, revoked, client)).status_code == 200
    refresh = (await world.token_response("c-admin@acme.test")).json()["refresh_token"]
    cases = {
        "expired": _expired_token(world, client),
        "revoked": revoked,
        "foreign tenant": foreign_token,
        "platform": platform_token,
        "garbage": "garbage",
        "jwt-shaped garbage": "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
        "unknown key": _token_signed_elsewhere(world, client),
        "refresh token": refresh,
    }
    for name, token in cases.items():
        assert await _introspect(world, client, token) == INACTIVE, name


async def test_introspection_follows_client_deletion_rotation_and_suspension(
    world: World,
) -> None:
    admin = await admin_token(world, "acme")
    caller = await create_client(world, admin, "acme", SCOPES, name="resource-server")
    deleted = await create_client(world, admin, "acme", SCOPES, name="deleted")
    rotated = await create_client(world, admin, "acme", SCOPES, name="rotated")
    deleted_token = await client_token(world.client, deleted)
    rotated_token = await client_token(world.client, rotated)
    caller_token = await client_token(world.client, caller)
    assert (await _introspect(world, caller, deleted_token))["active"] is True

    path = "/v1/tenants/acme/clients/"
    await world.client.delete(path + deleted.client_id, headers=bearer(admin))
    await world.client.post(path + rotated.client_id + "/secret", headers=bearer(admin))
    assert await _introspect(world, caller, deleted_token) == INACTIVE
    assert await _introspect(world, caller, rotated_token) == INACTIVE
    assert (await _introspect(world, caller, caller_token))["active"] is True

    async with world.database.write() as connection:
        await connection.execute(
            tenants.update().where(tenants.c.slug == "acme").values(status="suspended")
        )
    assert await _introspect(world, caller, caller_token) == INACTIVE


async def test_introspection_requires_client_authentication(world: World) -> None:
    client = await _client(world)
    token = await client_token(world.client, client)
    attempts: list[dict[str, Any]] = [
        {"data": {"token": token}},
        {"data": {"token": token, "client_id": "tenantgate"}},
        {"data": {"token": token}, "headers": basic(client.client_id, "tgcs_nope")},
        {"data": {"token": token, "client_id": client.client_id}},
        {"data": {"token": token}, "headers": bearer(token)},
    ]
    for attempt in attempts:
        response = await world.client.post("/introspect", **attempt)
        assert response.status_code == 401, attempt
        assert response.json()["error"] == "invalid_client"
        assert "active" not in response.json()
    response = await world.client.post(
        "/introspect", data={}, headers=basic(client.client_id, client.client_secret)
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


# --- discovery ----------------------------------------------------------------------------


async def test_authorization_server_metadata(world: World) -> None:
    response = await world.client.get("/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    metadata = response.json()
    issuer = world.settings.issuer
    assert metadata["issuer"] == issuer
    assert metadata["token_endpoint"] == f"{issuer}/token"
    assert metadata["revocation_endpoint"] == f"{issuer}/revoke"
    assert metadata["introspection_endpoint"] == f"{issuer}/introspect"
    assert metadata["jwks_uri"] == f"{issuer}/.well-known/jwks.json"
    assert set(metadata["grant_types_supported"]) == {
        "password",
        "refresh_token",
        "client_credentials",
    }
    assert metadata["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
        "none",
    ]
    assert metadata["introspection_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
    ]
    assert "none" in metadata["revocation_endpoint_auth_methods_supported"]
    assert "items:read" in metadata["scopes_supported"]
    assert "platform:admin" in metadata["scopes_supported"]
    # No authorization endpoint: no response types (RFC 8414 section 3.2 omits empty claims).
    assert "authorization_endpoint" not in metadata
    assert "response_types_supported" not in metadata
    # Every advertised endpoint is served: an empty form lacks what each needs first.
    for endpoint, status, error in (
        ("token_endpoint", 400, "invalid_request"),  # no grant_type
        ("revocation_endpoint", 400, "invalid_request"),  # no token (public clients may revoke)
        ("introspection_endpoint", 401, "invalid_client"),  # callers must authenticate
    ):
        response = await world.client.post(metadata[endpoint].removeprefix(issuer), data={})
        assert (response.status_code, response.json()["error"]) == (status, error), endpoint
    jwks = await world.client.get(metadata["jwks_uri"].removeprefix(issuer))
    assert jwks.json()["keys"]


# --- helpers ------------------------------------------------------------------------------


def _expired_token(world: World, client: Client) -> str:
    keyring: KeyRing = world.app.state.keyring
    token, _ = issue(
        keyring,
        issuer=world.settings.issuer,
        audience=world.settings.audience,
        ttl=-10,
        subject=f"client:{client.client_id}",
        client_id=client.client_id,
        scopes=frozenset(SCOPES),
        tenant=client.tenant,
        revision=time.time_ns() // 1_000_000,
    )
    return token


def _token_signed_elsewhere(world: World, client: Client) -> str:
    """A well-formed token with a kid this server never had."""
    key = generate_private_key(SigningAlgorithm.RS256)
    payload = {
        "iss": world.settings.issuer,
        "aud": world.settings.audience,
        "sub": f"client:{client.client_id}",
        "client_id": client.client_id,
        "scope": "items:read",
        "iat": 1,
        "exp": 2**40,
        "jti": "x",
        "tid": "acme",
        "rev": 0,
    }
    return jwt.encode(payload, key, algorithm="RS256", headers={"typ": "at+jwt", "kid": "other"})
