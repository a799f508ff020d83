"""NUL characters: PostgreSQL refuses them in text, so they must be a clean 4xx before any query."""

from __future__ import annotations

import base64

import pytest

from tests.support import World, bearer


@pytest.fixture
async def owner(world: World) -> tuple[World, str]:
    await world.tenant("acme")
    await world.member("acme", "owner@acme.test", "owner")
    return world, await world.login("owner@acme.test")


@pytest.mark.parametrize(
    "form",
    [
        {"grant_type": "password", "username": "a\x00@acme.test", "password": "x"},
        {"grant_type": "password", "username": "owner@acme.test", "password": "x\x00"},
        {"grant_type": "password", "username": "o@a.test", "password": "x", "tenant": "a\x00"},
        {"grant_type": "refresh_token", "refresh_token": "r\x00"},
        {"grant_type": "client_credentials", "client_id": "c\x00", "client_secret": "s"},
    ],
)
async def test_token_endpoint_refuses_nul(world: World, form: dict[str, str]) -> None:
    response = await world.client.post("/token", data=form)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_basic_credentials_with_nul_are_refused(world: World) -> None:
    basic = base64.b64encode(b"client\x00:secret").decode()
    response = await world.client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "parameters must not contain NUL characters",
    }


async def test_json_bodies_refuse_nul_like_paths_and_queries(owner: tuple[World, str]) -> None:
    world, token = owner
    for path, body in (
        ("/v1/tenants/acme/members", {"email": "x\x00@acme.test", "role": "viewer"}),
        ("/v1/tenants/acme/clients", {"name": "bad\x00name", "scopes": ["items:read"]}),
        ("/v1/tenants/acme/clients", {"name": "n", "scopes": ["items:read"], "x\x00": 1}),
        ("/v1/me/password", {"current_password": "a\x00", "new_password": "b" * 20}),
        (
            "/v1/tenants/acme/items",
            {
                "sku": "S-1",
                "name": "n",
                "category": "c",
                "price": "1",
                "quantity": 1,
                "tags": ["a\x00"],
            },
        ),
        ("/v1/tenants/acme/items", {"sku": "S\x00", "name": "n", "category": "c", "price": "1"}),
    ):
        response = await world.client.post(path, json=body, headers=bearer(token))
        assert response.status_code == 400, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == "urn:tenantgate:problem:invalid-text"
        assert response.json()["detail"] == "text must not contain NUL characters"


async def test_path_and_query_values_with_nul_are_400_problems(owner: tuple[World, str]) -> None:
    world, token = owner
    for path in (
        "/v1/tenants/acme/members/usr_%00",
        "/v1/tenants/acme/clients/cli_%00",
        "/v1/tenants/acme/audit/events?actor=%00",
    ):
        response = await world.client.get(path, headers=bearer(token))
        assert response.status_code == 400, (path, response.text)
        assert response.json()["type"] == "urn:tenantgate:problem:invalid-text"


async def test_oauth_endpoints_answer_nul_in_rfc_6749_terms(world: World) -> None:
    response = await world.client.post(
        "/introspect", data={"token": "t", "client_id": "cli\x00", "client_secret": "s"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
