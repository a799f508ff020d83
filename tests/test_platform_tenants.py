"""Platform tenant administration: POST/GET/PATCH /v1/tenants, suspension, platform token limits."""

from __future__ import annotations

from tests.support import World, bearer
from tests.support_members import (
    assert_problem,
    login_pair,
    member_headers,
    platform_headers,
    refresh,
)


async def test_create_then_read_a_tenant(world: World) -> None:
    admin = await platform_headers(world)
    response = await world.client.post(
        "/v1/tenants", json={"slug": "acme-co", "name": "Acme Co", "plan": "pro"}, headers=admin
    )
    assert response.status_code == 201, response.text
    assert response.headers["location"] == "/v1/tenants/acme-co"
    created = response.json()
    assert created["slug"] == "acme-co"
    assert created["name"] == "Acme Co"
    assert created["plan"] == "pro"
    assert created["status"] == "active"
    assert created["owner"] is None
    assert created["created_at"].endswith(("Z", "+00:00"))

    read = await world.client.get("/v1/tenants/acme-co", headers=admin)
    assert read.status_code == 200
    assert {k: read.json()[k] for k in ("slug", "name", "plan", "status")} == {
        "slug": "acme-co",
        "name": "Acme Co",
        "plan": "pro",
        "status": "active",
    }


async def test_plan_defaults_to_free(world: World) -> None:
    admin = await platform_headers(world)
    response = await world.client.post(
        "/v1/tenants", json={"slug": "plain", "name": "Plain"}, headers=admin
    )
    assert response.status_code == 201
    assert response.json()["plan"] == "free"


async def test_existing_slug_is_a_conflict(world: World) -> None:
    admin = await platform_headers(world)
    await world.tenant("acme")
    response = await world.client.post(
        "/v1/tenants", json={"slug": "acme", "name": "Other"}, headers=admin
    )
    assert_problem(response, 409, "conflict")


INVALID_CREATIONS: list[dict[str, str]] = [
    {"slug": "ab", "name": "Too short"},
    {"slug": "UPPER", "name": "Upper case"},
    {"slug": "under_score", "name": "Underscore"},
    {"slug": "x" * 41, "name": "Too long"},
    {"slug": "fine", "name": ""},
    {"slug": "fine", "name": "Fine", "plan": "platinum"},
    {"slug": "fine", "name": "Fine", "status": "suspended"},
    {"slug": "fine", "name": "Fine", "owner_email": "not-an-email"},
    {"name": "No slug"},
]


async def test_invalid_creation_bodies_are_422(world: World) -> None:
    admin = await platform_headers(world)
    for body in INVALID_CREATIONS:
        response = await world.client.post("/v1/tenants", json=body, headers=admin)
        assert_problem(response, 422, "validation-error")
    assert (await world.client.get("/v1/tenants", headers=admin)).json()["items"] == []


async def test_new_owner_is_invited_with_a_one_time_password(world: World) -> None:
    admin = await platform_headers(world)
    response = await world.client.post(
        "/v1/tenants",
        json={"slug": "initech", "name": "Initech", "owner_email": "Boss@Initech.test"},
        headers=admin,
    )
    assert response.status_code == 201, response.text
    owner = response.json()["owner"]
    assert owner["email"] == "boss@initech.test"
    assert owner["role"] == "owner"
    password = owner["initial_password"]
    assert len(password) >= 16
    token = await world.client.post(
        "/token",
        data={"grant_type": "password", "username": "boss@initech.test", "password": password},
    )
    assert token.status_code == 200, token.text
    # The one-time password opens nothing but the identity routes until it is replaced.
    assert token.json()["scope"] == ""
    one_time = bearer(token.json()["access_token"])
    denied = await world.client.get("/v1/tenants/initech/members", headers=one_time)
    assert denied.status_code == 403
    asking = await world.client.post(
        "/token",
        data={
            "grant_type": "password",
            "username": "boss@initech.test",
            "password": password,
            "scope": "members:read",
        },
    )
    assert asking.json()["error"] == "invalid_scope"
    changed = await world.client.post(
        "/v1/me/password",
        json={"current_password": password, "new_password": "a passphrase of my own"},
        headers=one_time,
    )
    assert changed.status_code == 204
    token = await world.client.post(
        "/token",
        data={
            "grant_type": "password",
            "username": "boss@initech.test",
            "password": "a passphrase of my own",
        },
    )
    assert "members:write" in token.json()["scope"].split()
    members = await world.client.get(
        "/v1/tenants/initech/members", headers=bearer(token.json()["access_token"])
    )
    assert members.status_code == 200
    assert [m["role"] for m in members.json()["items"]] == ["owner"]


async def test_existing_user_becomes_owner_without_a_password(world: World) -> None:
    admin = await platform_headers(world)
    user_id = await world.user("known@example.test")
    response = await world.client.post(
        "/v1/tenants",
        json={"slug": "known-co", "name": "Known", "owner_email": "known@example.test"},
        headers=admin,
    )
    assert response.status_code == 201, response.text
    owner = response.json()["owner"]
    assert owner["user_id"] == user_id
    assert owner["initial_password"] is None
    assert await world.login("known@example.test", tenant="known-co")


async def test_list_is_paginated_with_an_opaque_cursor(world: World) -> None:
    admin = await platform_headers(world)
    slugs = ["t-a", "t-b", "t-c", "t-d", "t-e"]
    for slug in reversed(slugs):
        await world.tenant(slug)
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        response = await world.client.get("/v1/tenants", params=params, headers=admin)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 2
        seen += [tenant["slug"] for tenant in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert "t-" not in cursor  # opaque, not the raw slug
    assert seen == slugs
    assert pages == 3


async def test_default_page_holds_everything_small(world: World) -> None:
    admin = await platform_headers(world)
    await world.tenant("only")
    page = (await world.client.get("/v1/tenants", headers=admin)).json()
    assert [tenant["slug"] for tenant in page["items"]] == ["only"]
    assert page["next_cursor"] is None


async def test_bad_paging_parameters_are_422(world: World) -> None:
    admin = await platform_headers(world)
    bad: list[dict[str, str]] = [
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "x"},
        {"cursor": "garbage!"},
        {"cursor": "Zm9v"},
        {"cursor": "x" * 201},
    ]
    for params in bad:
        response = await world.client.get("/v1/tenants", params=params, headers=admin)
        assert_problem(response, 422, "validation-error")


async def test_unknown_tenant_is_a_404_problem(world: World) -> None:
    admin = await platform_headers(world)
    assert_problem(
        await world.client.get("/v1/tenants/nope", headers=admin), 404, "tenant-not-found"
    )
    assert_problem(
        await world.client.patch("/v1/tenants/nope", json={"name": "X"}, headers=admin),
        404,
        "tenant-not-found",
    )


async def test_patch_changes_name_and_plan(world: World) -> None:
    admin = await platform_headers(world)
    await world.tenant("acme")
    response = await world.client.patch(
        "/v1/tenants/acme", json={"name": "Acme Corp", "plan": "enterprise"}, headers=admin
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Acme Corp"
    assert response.json()["plan"] == "enterprise"
    assert response.json()["status"] == "active"
    read = await world.client.get("/v1/tenants/acme", headers=admin)
    assert read.json()["plan"] == "enterprise"


async def test_invalid_patch_bodies_are_422(world: World) -> None:
    admin = await platform_headers(world)
    await world.tenant("acme")
    bad: list[dict[str, str]] = [
        {"status": "deleted"},
        {"plan": "platinum"},
        {"slug": "renamed"},
        {"name": ""},
        {"created_at": "2020-01-01T00:00:00Z"},
    ]
    for body in bad:
        response = await world.client.patch("/v1/tenants/acme", json=body, headers=admin)
        assert_problem(response, 422, "validation-error")
    read = (await world.client.get("/v1/tenants/acme", headers=admin)).json()
    assert (read["slug"], read["status"], read["plan"]) == ("acme", "active", "free")


async def test_suspension_blocks_tenant_routes_and_token_issuance(world: World) -> None:
    admin = await platform_headers(world)
    await world.tenant("acme")
    _, owner = await member_headers(world, "acme", "owner@acme.test", "owner")
    _, refresh_token = await login_pair(world, "owner@acme.test", "acme")
    assert (await world.client.get("/v1/tenants/acme/members", headers=owner)).status_code == 200

    suspended = await world.client.patch(
        "/v1/tenants/acme", json={"status": "suspended"}, headers=admin
    )
    assert suspended.status_code == 200
    assert suspended.json()["status"] == "suspended"

    assert_problem(
        await world.client.get("/v1/tenants/acme/members", headers=owner), 403, "tenant-suspended"
    )
    login = await world.token_response("owner@acme.test", tenant="acme")
    assert login.status_code == 400
    assert login.json()["error"] == "invalid_grant"
    refreshed = await refresh(world, refresh_token)
    assert refreshed.status_code == 400
    assert refreshed.json()["error"] == "invalid_grant"

    active = await world.client.patch("/v1/tenants/acme", json={"status": "active"}, headers=admin)
    assert active.json()["status"] == "active"
    assert (await world.client.get("/v1/tenants/acme/members", headers=owner)).status_code == 200
    assert (await world.token_response("owner@acme.test", tenant="acme")).status_code == 200


async def test_platform_token_gets_no_tenant_data(world: World) -> None:
    admin = await platform_headers(world)
    await world.tenant("acme")
    await world.member("acme", "owner@acme.test", "owner")
    response = await world.client.get("/v1/tenants/acme/members", headers=admin)
    assert_problem(response, 404, "tenant-not-found")


async def test_tenant_tokens_cannot_administer_tenants(world: World) -> None:
    await world.tenant("acme")
    _, owner = await member_headers(world, "acme", "owner@acme.test", "owner")
    calls = [
        world.client.get("/v1/tenants", headers=owner),
        world.client.get("/v1/tenants/acme", headers=owner),
        world.client.post("/v1/tenants", json={"slug": "mine", "name": "Mine"}, headers=owner),
        world.client.patch("/v1/tenants/acme", json={"plan": "enterprise"}, headers=owner),
    ]
    for call in calls:
        response = await call
        body = assert_problem(response, 403, "insufficient-scope")
        assert body["required_scopes"] == ["platform:admin"]
        assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


async def test_platform_routes_need_a_token(world: World) -> None:
    await world.tenant("acme")
    for response in (
        await world.client.get("/v1/tenants"),
        await world.client.get("/v1/tenants/acme"),
        await world.client.post("/v1/tenants", json={"slug": "new-one", "name": "N"}),
        await world.client.patch("/v1/tenants/acme", json={"status": "suspended"}),
    ):
        assert_problem(response, 401, "unauthenticated")
    admin = await platform_headers(world)
    read = await world.client.get("/v1/tenants/acme", headers=admin)
    assert read.json()["status"] == "active"


async def test_platform_routes_are_documented_with_their_scope(world: World) -> None:
    schema = (await world.client.get("/openapi.json")).json()
    for method in ("get", "post"):
        operation = schema["paths"]["/v1/tenants"][method]
        assert {"OAuth2PasswordBearer": ["platform:admin"]} in operation["security"]
        assert {"401", "403", "422"} <= set(operation["responses"])
    for method in ("get", "patch"):
        operation = schema["paths"]["/v1/tenants/{tenant}"][method]
        assert {"OAuth2PasswordBearer": ["platform:admin"]} in operation["security"]
        assert {"401", "403", "404", "422"} <= set(operation["responses"])
