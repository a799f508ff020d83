"""Members of a tenant: listing, invitation, role changes, removal, escalation, last owner."""

from __future__ import annotations

import asyncio

import pytest

from storage.members import count_role
from tests.support import World, bearer
from tests.support_members import assert_problem, login_pair, member_headers, refresh

MEMBERS = "/v1/tenants/acme/members"


@pytest.fixture
async def acme(world: World) -> dict[str, str]:
    """Tenant acme with an owner; returns the owner's bearer header."""
    await world.tenant("acme")
    _, owner = await member_headers(world, "acme", "owner@acme.test", "owner")
    return owner


async def test_list_shows_members_with_email_role_and_creation(
    world: World, acme: dict[str, str]
) -> None:
    viewer_id = await world.member("acme", "viewer@acme.test", "viewer")
    await world.tenant("other")
    await world.member("other", "stranger@other.test", "owner")
    response = await world.client.get(MEMBERS, headers=acme)
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["next_cursor"] is None
    by_email = {m["email"]: m for m in page["items"]}
    assert set(by_email) == {"owner@acme.test", "viewer@acme.test"}
    assert by_email["viewer@acme.test"]["user_id"] == viewer_id
    assert by_email["viewer@acme.test"]["role"] == "viewer"
    assert set(by_email["viewer@acme.test"]) == {"user_id", "email", "role", "created_at"}


async def test_list_is_paginated(world: World, acme: dict[str, str]) -> None:
    for index in range(4):
        await world.member("acme", f"m{index}@acme.test", "viewer")
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        page = (await world.client.get(MEMBERS, params=params, headers=acme)).json()
        assert len(page["items"]) <= 2
        seen += [m["user_id"] for m in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 5
    assert seen == sorted(seen)  # stable order: opaque, time-ordered ids
    for bad in ({"limit": "0"}, {"limit": "101"}, {"cursor": "%%%"}):
        response = await world.client.get(MEMBERS, params=bad, headers=acme)
        assert_problem(response, 422, "validation-error")


async def test_get_one_member(world: World, acme: dict[str, str]) -> None:
    user_id = await world.member("acme", "viewer@acme.test", "viewer")
    response = await world.client.get(f"{MEMBERS}/{user_id}", headers=acme)
    assert response.status_code == 200
    assert response.json()["email"] == "viewer@acme.test"
    assert_problem(
        await world.client.get(f"{MEMBERS}/usr_nope", headers=acme), 404, "member-not-found"
    )


async def test_members_of_another_tenant_are_not_found(world: World, acme: dict[str, str]) -> None:
    await world.tenant("other")
    stranger = await world.member("other", "stranger@other.test", "viewer")
    path = f"{MEMBERS}/{stranger}"
    assert_problem(await world.client.get(path, headers=acme), 404, "member-not-found")
    assert_problem(
        await world.client.patch(path, json={"role": "member"}, headers=acme),
        404,
        "member-not-found",
    )
    assert_problem(await world.client.delete(path, headers=acme), 404, "member-not-found")
    assert await world.login("stranger@other.test")  # untouched


async def test_adding_an_existing_user(world: World, acme: dict[str, str]) -> None:
    user_id = await world.user("Known@Example.test")
    response = await world.client.post(
        MEMBERS, json={"email": "KNOWN@example.test", "role": "member"}, headers=acme
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["user_id"] == user_id
    assert body["email"] == "known@example.test"
    assert body["role"] == "member"
    assert body["initial_password"] is None
    assert response.headers["location"] == f"{MEMBERS}/{user_id}"
    token = await world.login("known@example.test", tenant="acme")
    me = await world.client.get("/v1/me", headers=bearer(token))
    assert set(me.json()["scopes"]) == {"items:read", "items:write", "reports:read"}


async def test_invitation_flow(world: World, acme: dict[str, str]) -> None:
    response = await world.client.post(
        MEMBERS, json={"email": "new@acme.test", "role": "viewer"}, headers=acme
    )
    assert response.status_code == 201, response.text
    initial = response.json()["initial_password"]
    assert isinstance(initial, str)
    assert len(initial) >= 16
    listed = (await world.client.get(MEMBERS, headers=acme)).text
    assert initial not in listed

    world.passwords["new@acme.test"] = initial
    token = bearer(await world.login("new@acme.test"))
    change = "/v1/me/password"
    wrong = await world.client.post(
        change,
        json={"current_password": "not-it-at-all", "new_password": "a fresh passphrase"},
        headers=token,
    )
    assert_problem(wrong, 400, "password-rejected")
    short = await world.client.post(
        change, json={"current_password": initial, "new_password": "short"}, headers=token
    )
    assert_problem(short, 422, "validation-error")
    extra = await world.client.post(
        change,
        json={"current_password": initial, "new_password": "a fresh passphrase", "user_id": "x"},
        headers=token,
    )
    assert_problem(extra, 422, "validation-error")
    assert_problem(
        await world.client.post(
            change, json={"current_password": initial, "new_password": "a fresh passphrase"}
        ),
        401,
        "unauthenticated",
    )
    changed = await world.client.post(
        change,
        json={"current_password": initial, "new_password": "a fresh passphrase"},
        headers=token,
    )
    assert changed.status_code == 204, changed.text
    assert (await world.token_response("new@acme.test")).status_code == 400  # old one is spent
    world.passwords["new@acme.test"] = "a fresh passphrase"
    assert await world.login("new@acme.test")


async def test_password_change_signs_out_refresh_tokens(world: World) -> None:
    await world.tenant("acme")
    await world.member("acme", "user@acme.test", "viewer")
    access, refresh_token = await login_pair(world, "user@acme.test", "acme")
    password = world.passwords["user@acme.test"]
    changed = await world.client.post(
        "/v1/me/password",
        json={"current_password": password, "new_password": "another passphrase"},
        headers=bearer(access),
    )
    assert changed.status_code == 204
    assert (await refresh(world, refresh_token)).status_code == 400


async def test_invalid_member_bodies_are_422(world: World, acme: dict[str, str]) -> None:
    bad: list[dict[str, str]] = [
        {"email": "x@acme.test", "role": "superuser"},
        {"email": "not-an-email", "role": "viewer"},
        {"email": "two words@acme.test", "role": "viewer"},
        {"email": "x@acme.test"},
        {"role": "viewer"},
        {"email": "x@acme.test", "role": "viewer", "tenant": "other"},
        {"email": "x@acme.test", "role": "viewer", "user_id": "usr_x"},
    ]
    for body in bad:
        response = await world.client.post(MEMBERS, json=body, headers=acme)
        assert_problem(response, 422, "validation-error")
    assert len((await world.client.get(MEMBERS, headers=acme)).json()["items"]) == 1


async def test_adding_a_member_twice_is_a_conflict(world: World, acme: dict[str, str]) -> None:
    await world.member("acme", "viewer@acme.test", "viewer")
    response = await world.client.post(
        MEMBERS, json={"email": "viewer@acme.test", "role": "member"}, headers=acme
    )
    assert_problem(response, 409, "conflict")


async def test_role_change_and_removal(world: World, acme: dict[str, str]) -> None:
    user_id = await world.member("acme", "viewer@acme.test", "viewer")
    path = f"{MEMBERS}/{user_id}"
    changed = await world.client.patch(path, json={"role": "admin"}, headers=acme)
    assert changed.status_code == 200, changed.text
    assert changed.json()["role"] == "admin"
    assert (await world.client.get(path, headers=acme)).json()["role"] == "admin"
    same = await world.client.patch(path, json={"role": "admin"}, headers=acme)
    assert same.status_code == 200
    removed = await world.client.delete(path, headers=acme)
    assert removed.status_code == 204
    assert removed.content == b""
    assert_problem(await world.client.get(path, headers=acme), 404, "member-not-found")
    assert_problem(await world.client.delete(path, headers=acme), 404, "member-not-found")
    assert_problem(
        await world.client.patch(path, json={"role": "viewer"}, headers=acme),
        404,
        "member-not-found",
    )


async def test_invalid_role_changes_are_422(world: World, acme: dict[str, str]) -> None:
    user_id = await world.member("acme", "viewer@acme.test", "viewer")
    bad: list[dict[str, str]] = [{"role": "root"}, {"role": "viewer", "email": "x@acme.test"}, {}]
    for body in bad:
        response = await world.client.patch(f"{MEMBERS}/{user_id}", json=body, headers=acme)
        assert_problem(response, 422, "validation-error")
    assert (await world.client.get(f"{MEMBERS}/{user_id}", headers=acme)).json()["role"] == "viewer"


async def test_scopes_guard_every_route(world: World, acme: dict[str, str]) -> None:
    target = await world.member("acme", "target@acme.test", "viewer")
    _, viewer = await member_headers(world, "acme", "viewer@acme.test", "viewer")
    _, auditor = await member_headers(world, "acme", "auditor@acme.test", "auditor")
    path = f"{MEMBERS}/{target}"
    for response in (
        await world.client.get(MEMBERS, headers=viewer),
        await world.client.get(path, headers=viewer),
    ):
        assert assert_problem(response, 403, "insufficient-scope")["required_scopes"] == [
            "members:read"
        ]
    assert (await world.client.get(MEMBERS, headers=auditor)).status_code == 200
    for response in (
        await world.client.post(
            MEMBERS, json={"email": "x@acme.test", "role": "viewer"}, headers=auditor
        ),
        await world.client.patch(path, json={"role": "member"}, headers=auditor),
        await world.client.delete(path, headers=auditor),
    ):
        body = assert_problem(response, 403, "insufficient-scope")
        assert "members:write" in body["required_scopes"]
    assert_problem(await world.client.get(MEMBERS), 401, "unauthenticated")


async def test_no_one_grants_scopes_they_do_not_hold(world: World, acme: dict[str, str]) -> None:
    _, admin = await member_headers(world, "acme", "admin@acme.test", "admin")
    for role in ("owner", "auditor"):
        response = await world.client.post(
            MEMBERS, json={"email": f"{role}@new.test", "role": role}, headers=admin
        )
        body = assert_problem(response, 403, "privilege-escalation")
        assert body["missing_scopes"] == ["audit:read"]
        assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
        assert 'scope="audit:read"' in response.headers["www-authenticate"]
    granted = await world.client.post(
        MEMBERS, json={"email": "peer@new.test", "role": "admin"}, headers=admin
    )
    assert granted.status_code == 201
    viewer_id = await world.member("acme", "viewer@acme.test", "viewer")
    promote = await world.client.patch(
        f"{MEMBERS}/{viewer_id}", json={"role": "owner"}, headers=admin
    )
    assert_problem(promote, 403, "privilege-escalation")
    # Nothing was created or changed by the refused calls.
    emails = {m["email"] for m in (await world.client.get(MEMBERS, headers=acme)).json()["items"]}
    assert "owner@new.test" not in emails
    assert (await world.client.get(f"{MEMBERS}/{viewer_id}", headers=acme)).json()[
        "role"
    ] == "viewer"


async def test_a_narrowed_token_grants_only_what_it_holds(
    world: World, acme: dict[str, str]
) -> None:
    token = bearer(
        await world.login("owner@acme.test", scope="members:read members:write", tenant="acme")
    )
    response = await world.client.post(
        MEMBERS, json={"email": "v@acme.test", "role": "viewer"}, headers=token
    )
    body = assert_problem(response, 403, "privilege-escalation")
    assert body["missing_scopes"] == ["items:read", "reports:read"]


async def test_no_one_changes_a_member_holding_more(world: World, acme: dict[str, str]) -> None:
    _, admin = await member_headers(world, "acme", "admin@acme.test", "admin")
    owner_id = (await world.client.get(MEMBERS, headers=acme)).json()["items"][0]["user_id"]
    auditor_id = await world.member("acme", "auditor@acme.test", "auditor")
    for target in (owner_id, auditor_id):
        demote = await world.client.patch(
            f"{MEMBERS}/{target}", json={"role": "viewer"}, headers=admin
        )
        assert assert_problem(demote, 403, "privilege-escalation")["missing_scopes"] == [
            "audit:read"
        ]
        remove = await world.client.delete(f"{MEMBERS}/{target}", headers=admin)
        assert_problem(remove, 403, "privilege-escalation")
    peer_id = await world.member("acme", "peer@acme.test", "admin")
    demoted = await world.client.patch(
        f"{MEMBERS}/{peer_id}", json={"role": "viewer"}, headers=admin
    )
    assert demoted.status_code == 200


async def test_the_last_owner_stays(world: World, acme: dict[str, str]) -> None:
    owner_id = (await world.client.get(MEMBERS, headers=acme)).json()["items"][0]["user_id"]
    path = f"{MEMBERS}/{owner_id}"
    assert_problem(
        await world.client.patch(path, json={"role": "admin"}, headers=acme), 409, "last-owner"
    )
    assert_problem(await world.client.delete(path, headers=acme), 409, "last-owner")
    assert (await world.client.patch(path, json={"role": "owner"}, headers=acme)).status_code == 200

    second_id, second = await member_headers(world, "acme", "second@acme.test", "owner")
    demoted = await world.client.patch(path, json={"role": "admin"}, headers=second)
    assert demoted.status_code == 200
    assert_problem(
        await world.client.delete(f"{MEMBERS}/{second_id}", headers=second), 409, "last-owner"
    )


async def test_two_owners_demoting_each_other_leave_one(world: World, acme: dict[str, str]) -> None:
    first_id = (await world.client.get(MEMBERS, headers=acme)).json()["items"][0]["user_id"]
    second_id, second = await member_headers(world, "acme", "second@acme.test", "owner")
    responses = await asyncio.gather(
        world.client.patch(f"{MEMBERS}/{second_id}", json={"role": "admin"}, headers=acme),
        world.client.patch(f"{MEMBERS}/{first_id}", json={"role": "admin"}, headers=second),
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses in ([200, 401], [200, 409]), [r.text for r in responses]
    async with world.database.read() as connection:
        assert await count_role(connection, "acme", "owner") == 1


async def test_downgrade_stops_existing_tokens_upgrade_does_not(
    world: World, acme: dict[str, str]
) -> None:
    user_id, token = await member_headers(world, "acme", "admin@acme.test", "admin")
    _, viewer_token = await member_headers(world, "acme", "viewer@acme.test", "viewer")
    viewer_id = (await world.client.get("/v1/me", headers=viewer_token)).json()["subject"]
    assert (await world.client.get(MEMBERS, headers=token)).status_code == 200

    raised = await world.client.patch(
        f"{MEMBERS}/{viewer_id}", json={"role": "member"}, headers=acme
    )
    assert raised.status_code == 200
    assert (await world.client.get("/v1/me", headers=viewer_token)).status_code == 200

    lowered = await world.client.patch(
        f"{MEMBERS}/{user_id}", json={"role": "viewer"}, headers=acme
    )
    assert lowered.status_code == 200
    stopped = await world.client.get(MEMBERS, headers=token)
    assert_problem(stopped, 401, "invalid-token")
    assert 'error="invalid_token"' in stopped.headers["www-authenticate"]
    fresh = bearer(await world.login("admin@acme.test"))
    me = await world.client.get("/v1/me", headers=fresh)
    assert set(me.json()["scopes"]) == {"items:read", "reports:read"}


async def test_removal_stops_tokens_and_refresh(world: World, acme: dict[str, str]) -> None:
    user_id = await world.member("acme", "leaver@acme.test", "member")
    access, refresh_token = await login_pair(world, "leaver@acme.test", "acme")
    assert (await world.client.get("/v1/me", headers=bearer(access))).status_code == 200
    removed = await world.client.delete(f"{MEMBERS}/{user_id}", headers=acme)
    assert removed.status_code == 204
    assert_problem(await world.client.get("/v1/me", headers=bearer(access)), 401, "invalid-token")
    refreshed = await refresh(world, refresh_token)
    assert refreshed.status_code == 400
    assert refreshed.json()["error"] == "invalid_grant"
    assert (await world.token_response("leaver@acme.test", tenant="acme")).status_code == 400

    # Re-adding restores access with new tokens; the old ones stay dead.
    again = await world.client.post(
        MEMBERS, json={"email": "leaver@acme.test", "role": "viewer"}, headers=acme
    )
    assert again.status_code == 201
    assert again.json()["initial_password"] is None
    fresh = await world.login("leaver@acme.test", tenant="acme")
    assert (await world.client.get("/v1/me", headers=bearer(fresh))).status_code == 200
    assert (await world.client.get("/v1/me", headers=bearer(access))).status_code == 401
    assert (await refresh(world, refresh_token)).status_code == 400


async def test_members_routes_are_documented(world: World) -> None:
    schema = (await world.client.get("/openapi.json")).json()
    paths = schema["paths"]
    listing = paths["/v1/tenants/{tenant}/members"]
    assert {"OAuth2PasswordBearer": ["members:read"]} in listing["get"]["security"]
    post_scopes = {s for req in listing["post"]["security"] for s in req["OAuth2PasswordBearer"]}
    assert post_scopes == {"members:read", "members:write"}
    one = paths["/v1/tenants/{tenant}/members/{user_id}"]
    for method in ("get", "patch", "delete"):
        assert {"401", "403", "404", "422"} <= set(one[method]["responses"])
    assert "409" in one["patch"]["responses"]
    assert "409" in one["delete"]["responses"]
    assert "409" in listing["post"]["responses"]
