"""POST /token with the password grant (RFC 6749 4.3, errors per 5.2)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from pwdlib.hashers.bcrypt import BcryptHasher

from storage.accounts import add_member
from storage.tables import users
from tests.support import World, jwt_part


@pytest.fixture
async def acme(world: World) -> World:
    await world.tenant("acme")
    await world.member("acme", "owner@acme.test", "owner")
    await world.member("acme", "viewer@acme.test", "viewer")
    return world


async def test_success_body_headers_and_claims(acme: World) -> None:
    response = await acme.token_response("viewer@acme.test")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope", "refresh_token"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["scope"] == "items:read reports:read"
    header, claims = jwt_part(body["access_token"], 0), jwt_part(body["access_token"], 1)
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "RS256"
    assert header["kid"]
    assert {"iss", "aud", "sub", "exp", "iat", "jti", "client_id", "scope", "tid"} <= set(claims)
    assert claims["tid"] == "acme"
    assert claims["iss"] == acme.settings.issuer
    assert claims["aud"] == acme.settings.audience
    assert claims["exp"] - claims["iat"] == 900


async def test_empty_scope_grants_everything_the_role_allows(acme: World) -> None:
    response = await acme.token_response("owner@acme.test", scope="")
    assert response.json()["scope"].split() == sorted(
        [
            "audit:read",
            "clients:read",
            "clients:write",
            "items:read",
            "items:write",
            "members:read",
            "members:write",
            "reports:read",
        ]
    )


async def test_scope_can_be_narrowed(acme: World) -> None:
    response = await acme.token_response("owner@acme.test", scope="items:read")
    assert response.status_code == 200
    assert response.json()["scope"] == "items:read"
    assert jwt_part(response.json()["access_token"], 1)["scope"] == "items:read"


@pytest.mark.parametrize("scope", ["items:write", "items:read platform:admin", "nonsense"])
async def test_asking_for_more_than_the_role_is_invalid_scope(acme: World, scope: str) -> None:
    response = await acme.token_response("viewer@acme.test", scope=scope)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"
    assert response.headers["cache-control"] == "no-store"


async def test_unknown_user_wrong_password_and_foreign_tenant_read_the_same(acme: World) -> None:
    await acme.tenant("globex")
    responses = [
        await acme.client.post(
            "/token",
            data={"grant_type": "password", "username": "ghost@acme.test", "password": "x" * 12},
        ),
        await acme.client.post(
            "/token",
            data={"grant_type": "password", "username": "viewer@acme.test", "password": "wrong!"},
        ),
        await acme.token_response("viewer@acme.test", tenant="globex"),
        await acme.token_response("viewer@acme.test", tenant="no-such-tenant"),
    ]
    expected = {"error": "invalid_grant", "error_description": "invalid username or password"}
    for response in responses:
        assert response.status_code == 400
        assert response.json() == expected
        assert response.headers["cache-control"] == "no-store"
        assert "www-authenticate" not in response.headers


async def test_email_is_case_insensitive(acme: World) -> None:
    response = await acme.client.post(
        "/token",
        data={
            "grant_type": "password",
            "username": "  VIEWER@Acme.TEST ",
            "password": acme.passwords["viewer@acme.test"],
        },
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({}, "invalid_request"),
        ({"grant_type": "password", "password": "x"}, "invalid_request"),
        ({"grant_type": "password", "username": "a@b.c"}, "invalid_request"),
        ({"grant_type": "authorization_code", "code": "x"}, "unsupported_grant_type"),
        ({"grant_type": "refresh_token"}, "invalid_request"),
    ],
)
async def test_malformed_requests(acme: World, form: dict[str, str], error: str) -> None:
    response = await acme.client.post("/token", data=form)
    assert response.status_code == 400
    assert response.json()["error"] == error


async def test_json_body_is_an_invalid_request_not_a_crash(acme: World) -> None:
    response = await acme.client.post("/token", json={"grant_type": "password"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    ("password", "status", "error"),
    [
        ("p" * 100_000, 400, "invalid_request"),
        ("nul\x00byte", 400, "invalid_request"),
        ("ünïcødé 🔐", 400, "invalid_grant"),
        ("", 400, "invalid_request"),
    ],
)
async def test_long_or_odd_passwords_are_4xx(
    acme: World, password: str, status: int, error: str
) -> None:
    response = await acme.client.post(
        "/token",
        data={"grant_type": "password", "username": "viewer@acme.test", "password": password},
    )
    assert response.status_code == status
    assert response.json()["error"] == error


async def test_bcrypt_hash_is_verified_and_upgraded_to_argon2(acme: World) -> None:
    legacy = BcryptHasher().hash("legacy-password")
    async with acme.database.write() as connection:
        await connection.execute(
            users.update().where(users.c.email == "viewer@acme.test").values(password_hash=legacy)
        )
    acme.passwords["viewer@acme.test"] = "legacy-password"
    assert (await acme.token_response("viewer@acme.test")).status_code == 200
    async with acme.database.read() as connection:
        stored = (
            await connection.execute(
                sa.select(users.c.password_hash).where(users.c.email == "viewer@acme.test")
            )
        ).scalar_one()
    assert stored.startswith("$argon2id$")
    assert (await acme.token_response("viewer@acme.test")).status_code == 200


async def test_bcrypt_user_with_overlong_password_is_refused_cleanly(acme: World) -> None:
    async with acme.database.write() as connection:
        await connection.execute(
            users.update()
            .where(users.c.email == "viewer@acme.test")
            .values(password_hash=BcryptHasher().hash("short"))
        )
    response = await acme.client.post(
        "/token",
        data={"grant_type": "password", "username": "viewer@acme.test", "password": "x" * 200},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_inactive_user_cannot_log_in(acme: World) -> None:
    async with acme.database.write() as connection:
        await connection.execute(
            users.update().where(users.c.email == "viewer@acme.test").values(is_active=False)
        )
    response = await acme.token_response("viewer@acme.test")
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "invalid username or password",
    }


async def test_several_tenants_need_the_tenant_parameter(acme: World) -> None:
    await acme.tenant("globex")
    user_id = await acme.member("globex", "multi@x.test", "member")
    async with acme.database.write() as connection:
        await add_member(connection, "acme", user_id, "viewer")
    response = await acme.token_response("multi@x.test")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    for tenant, scope in (("globex", "items:read items:write reports:read"), ("acme", None)):
        chosen = await acme.token_response("multi@x.test", tenant=tenant)
        assert jwt_part(chosen.json()["access_token"], 1)["tid"] == tenant
        if scope:
            assert chosen.json()["scope"] == scope


async def test_platform_admin_without_tenant_gets_a_platform_token(acme: World) -> None:
    await acme.user("root@platform.test", platform_admin=True)
    response = await acme.token_response("root@platform.test")
    assert response.status_code == 200
    assert response.json()["scope"] == "platform:admin"
    claims = jwt_part(response.json()["access_token"], 1)
    assert "tid" not in claims
    foreign = await acme.token_response("root@platform.test", tenant="acme")
    assert foreign.json()["error"] == "invalid_grant"


async def test_user_without_any_tenant_cannot_log_in(acme: World) -> None:
    await acme.user("lonely@x.test")
    response = await acme.token_response("lonely@x.test")
    assert response.json()["error"] == "invalid_grant"
