"""Stage 1: bearer token verification on /v1/me, and offline verification from the JWKS alone."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from auth.keys import KeyRing
from auth.tokens import issue
from tests.support import World, bearer, jwt_part


@pytest.fixture
async def viewer(world: World) -> tuple[World, str]:
    await world.tenant("acme")
    await world.member("acme", "viewer@acme.test", "viewer")
    return world, await world.login("viewer@acme.test")


def forge(
    token: str,
    *,
    header: dict[str, Any] | None = None,
    claims: dict[str, Any] | None = None,
    key: Any = None,
    algorithm: str = "RS256",
) -> str:
    """Re-sign a token's claims with changes (and another key, when given)."""
    original_header, original_claims = jwt_part(token, 0), jwt_part(token, 1)
    headers = {**original_header, **(header or {})}
    payload = {**original_claims, **(claims or {})}
    signing_key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(payload, signing_key, algorithm=algorithm, headers=headers)


def sign_with_service_key(world: World, token: str, **changes: Any) -> str:
    """Sign changed claims with the service's own active key: only the claim checks stand."""
    keyring: KeyRing = world.app.state.keyring
    key = keyring.signing_key
    payload = {**jwt_part(token, 1), **changes}
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(
        payload, key.key, algorithm=key.algorithm, headers={"typ": "at+jwt", "kid": key.kid}
    )


async def test_me_describes_the_caller(viewer: tuple[World, str]) -> None:
    world, token = viewer
    response = await world.client.get("/v1/me", headers=bearer(token))
    assert response.status_code == 200
    body = response.json()
    assert body["tenant"] == "acme"
    assert body["kind"] == "user"
    assert body["client_id"] == "tenantgate"
    assert body["expires_at"] == jwt_part(token, 1)["exp"]


async def test_missing_token_is_401_without_error_code(world: World) -> None:
    response = await world.client.get("/v1/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="tenantgate"'
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:tenantgate:problem:unauthenticated"


def assert_invalid_token(response: Any) -> None:
    assert response.status_code == 401, response.text
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="tenantgate", error="invalid_token"')
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "urn:tenantgate:problem:invalid-token"
    assert body["status"] == 401


@pytest.mark.parametrize(
    "authorization",
    ["Bearer garbage", "Bearer a.b.c", "Bearer " + "x" * 10_000, b"Bearer \xe9.\xe9.\xe9"],
)
async def test_garbage_tokens(world: World, authorization: str | bytes) -> None:
    value = authorization if isinstance(authorization, bytes) else authorization.encode()
    response = await world.client.get("/v1/me", headers={b"Authorization": value})
    assert_invalid_token(response)


async def test_basic_scheme_is_not_a_bearer_token(world: World) -> None:
    response = await world.client.get("/v1/me", headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="tenantgate"'


async def test_token_signed_by_another_key_is_rejected(viewer: tuple[World, str]) -> None:
    world, token = viewer
    assert_invalid_token(await world.client.get("/v1/me", headers=bearer(forge(token))))


async def test_unknown_kid_is_rejected(viewer: tuple[World, str]) -> None:
    world, token = viewer
    forged = forge(token, header={"kid": "not-a-key"})
    assert_invalid_token(await world.client.get("/v1/me", headers=bearer(forged)))


async def test_alg_none_is_rejected(viewer: tuple[World, str]) -> None:
    world, token = viewer
    header = base64.urlsafe_b64encode(
        json.dumps({**jwt_part(token, 0), "alg": "none"}).encode()
    ).rstrip(b"=")
    unsigned = header.decode() + "." + token.split(".")[1] + "."
    assert_invalid_token(await world.client.get("/v1/me", headers=bearer(unsigned)))


async def test_hmac_with_the_public_key_is_rejected(viewer: tuple[World, str]) -> None:
    """Algorithm confusion: HS256 keyed with the published public key."""
    world, token = viewer
    jwk = (await world.client.get("/.well-known/jwks.json")).json()["keys"][0]
    public_json = json.dumps(jwk).encode()
    header = {**jwt_part(token, 0), "alg": "HS256"}
    payload = jwt_part(token, 1)
    signing_input = (
        base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=")
        + b"."
        + base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=")
    )
    signature = base64.urlsafe_b64encode(
        hmac.new(public_json, signing_input, hashlib.sha256).digest()
    ).rstrip(b"=")
    forged = (signing_input + b"." + signature).decode()
    assert_invalid_token(await world.client.get("/v1/me", headers=bearer(forged)))


@pytest.mark.parametrize(
    "changes",
    [
        {"iss": "https://evil.test"},
        {"aud": "someone-else"},
        {"aud": ["tenantgate-test", "other"]},
        {"exp": int(time.time()) - 1},
        {"jti": None},
        {"client_id": None},
        {"sub": None},
        {"iat": None},
        {"scope": None},
        {"scope": ["items:read"]},
    ],
)
async def test_claims_are_checked_exactly(
    viewer: tuple[World, str], changes: dict[str, Any]
) -> None:
    world, token = viewer
    forged = sign_with_service_key(world, token, **changes)
    assert_invalid_token(await world.client.get("/v1/me", headers=bearer(forged)))


async def test_wrong_typ_is_rejected(viewer: tuple[World, str]) -> None:
    world, token = viewer
    keyring: KeyRing = world.app.state.keyring
    key = keyring.signing_key
    forged = jwt.encode(
        jwt_part(token, 1), key.key, algorithm=key.algorithm, headers={"typ": "JWT", "kid": key.kid}
    )
    assert_invalid_token(await world.client.get("/v1/me", headers=bearer(forged)))


async def test_expired_token_is_rejected_even_from_the_cache(viewer: tuple[World, str]) -> None:
    world, _ = viewer
    keyring: KeyRing = world.app.state.keyring
    token, _claims = issue(
        keyring,
        issuer=world.settings.issuer,
        audience=world.settings.audience,
        ttl=1,
        subject="usr_x",
        client_id="tenantgate",
        scopes=frozenset({"items:read"}),
        tenant="acme",
        revision=0,
    )
    assert (await world.client.get("/v1/me", headers=bearer(token))).status_code == 200
    await asyncio.sleep(1.1)
    response = await world.client.get("/v1/me", headers=bearer(token))
    assert_invalid_token(response)
    assert "expired" in response.headers["www-authenticate"]


async def test_a_third_party_verifies_with_nothing_but_the_jwks(
    viewer: tuple[World, str],
) -> None:
    world, token = viewer
    document = (await world.client.get("/.well-known/jwks.json")).json()
    assert all("d" not in key and "p" not in key for key in document["keys"])
    keys = {key.key_id: key for key in jwt.PyJWKSet.from_dict(document).keys}
    kid = jwt.get_unverified_header(token)["kid"]
    claims = jwt.decode(
        token,
        keys[kid].key,
        algorithms=[keys[kid].algorithm_name],
        audience=world.settings.audience,
        issuer=world.settings.issuer,
    )
    assert claims["tid"] == "acme"
