"""The access matrix is derived from the running app: it matches what the routes really enforce."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from api.app import create_app
from auth.tokens import issue
from config.settings import Settings
from policies.access_matrix import WEBSOCKET, RouteAccess, route_matrix
from policies.roles import ROLES
from policies.scopes import TENANT_SCOPES
from storage.tables import clients, refresh_tokens, users, utcnow
from tests.support import World, bearer
from tests.support_audit import get, member_token
from tests.support_ws import handshake

INSUFFICIENT = "urn:tenantgate:problem:insufficient-scope"


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app(Settings(_env_file=None, database_url="sqlite+aiosqlite:///:memory:"))


def find(rows: list[RouteAccess], method: str, path: str) -> RouteAccess:
    (row,) = [r for r in rows if (r.method, r.path) == (method, path)]
    return row


def test_declared_scopes_add_up_along_the_routers(app: FastAPI) -> None:
    rows = route_matrix(app.routes)
    items = "/v1/tenants/{tenant}/items"
    assert find(rows, "GET", items).scopes == {"items:read"}
    assert find(rows, "POST", items).scopes == {"items:read", "items:write"}
    assert find(rows, "GET", "/v1/tenants/{tenant}/audit/events").scopes == {"audit:read"}
    audit = find(rows, "GET", "/v1/tenants/{tenant}/audit/access")
    assert (audit.authenticated, audit.tenant_bound, audit.admitted) == (True, True, True)
    assert audit.roles == ["owner", "auditor"]
    assert find(rows, "GET", items).roles == ["viewer", "member", "admin", "owner"]
    token = find(rows, "POST", "/token")
    assert (token.scopes, token.authenticated, token.roles) == (frozenset(), False, [])
    me = find(rows, "GET", "/v1/me")
    assert (me.authenticated, me.tenant_bound, me.admitted, me.scopes) == (
        True,
        False,
        True,
        frozenset(),
    )
    platform = [r for r in rows if "platform:admin" in r.scopes]
    assert platform
    assert all(not r.tenant_bound and r.roles == [] for r in platform)
    # Every tenant route is guarded, with scopes from the catalogue only.
    tenant_rows = [r for r in rows if r.path.startswith("/v1/tenants/{tenant}/")]
    assert all(r.tenant_bound and r.admitted and r.scopes for r in tenant_rows)
    assert all(r.scopes <= TENANT_SCOPES for r in tenant_rows)
    assert rows == sorted(rows, key=lambda r: (r.path, r.method))


def mint(world: World, user_id: str, scopes: set[str]) -> str:
    """A token of `user_id` for acme with exactly `scopes` (login would widen an empty set)."""
    settings = world.settings
    token, _ = issue(
        world.app.state.keyring,
        issuer=settings.issuer,
        audience=settings.audience,
        ttl=300,
        subject=user_id,
        client_id="tenantgate",
        scopes=frozenset(scopes),
        tenant="acme",
        revision=10**13,
    )
    return token


async def call(world: World, row: RouteAccess, token: str) -> httpx.Response:
    path = row.path.replace("{tenant}", "acme")
    while "{" in path:
        start = path.index("{")
        path = path[:start] + "nonexistent" + path[path.index("}", start) + 1 :]
    if row.method == WEBSOCKET:
        status, denial = await handshake(world.app, path, token)
        return httpx.Response(status, content=denial)
    body: dict[str, Any] = {"json": {}} if row.method in ("POST", "PATCH", "PUT") else {}
    return await world.client.request(row.method, path, headers=bearer(token), **body)


def refused_for_scope(response: httpx.Response) -> bool:
    return response.status_code == 403 and response.json().get("type") == INSUFFICIENT


async def test_the_matrix_is_what_the_routes_enforce(world: World) -> None:
    """For every tenant route: its matrix scopes pass the scope stage, and each one is needed."""
    await world.tenant("acme", plan="enterprise")
    user_id = await world.member("acme", "owner@acme.test", "owner")
    rows = [r for r in route_matrix(world.app.routes) if r.tenant_bound]
    assert len(rows) >= 10
    for row in rows:
        response = await call(world, row, mint(world, user_id, set(row.scopes)))
        assert not refused_for_scope(response), (row.method, row.path, response.text)
        for missing in sorted(row.scopes):
            rest = set(row.scopes) - {missing}
            response = await call(world, row, mint(world, user_id, rest or {"unrelated:scope"}))
            assert refused_for_scope(response), (row.method, row.path, missing)
            assert missing in response.json()["required_scopes"]
            assert set(response.json()["required_scopes"]) <= row.scopes


async def test_roles_in_the_matrix_are_the_roles_that_get_through(world: World) -> None:
    await world.tenant("acme", plan="enterprise")
    ids = {role: await world.member("acme", f"{role}@acme.test", role) for role in ROLES}
    for row in [r for r in route_matrix(world.app.routes) if r.tenant_bound and r.method == "GET"]:
        for role, user_id in ids.items():
            response = await call(world, row, mint(world, user_id, set(ROLES[role])))
            assert refused_for_scope(response) == (role not in row.roles), (row.path, role)


async def test_access_endpoint_lists_routes_roles_members_clients_and_sessions(
    world: World,
) -> None:
    await world.tenant("acme")
    await world.tenant("other")
    token, auditor_id = await member_token(world, "acme", "aud@acme.test", "auditor")
    viewer_id = await world.member("acme", "vic@acme.test", "viewer")
    gone_id = await world.member("acme", "gone@acme.test", "admin")
    await world.member("other", "stranger@other.test", "owner")
    await world.login("vic@acme.test")
    second = (await world.token_response("vic@acme.test")).json()
    await world.login("stranger@other.test")
    now = utcnow()
    async with world.database.write() as connection:
        await connection.execute(
            users.update().where(users.c.id == gone_id).values(is_active=False)
        )
        # A revoked family does not count as an open session.
        await connection.execute(
            refresh_tokens.update()
            .where(refresh_tokens.c.user_id == auditor_id)
            .values(revoked_at=now)
        )
        await connection.execute(
            clients.insert().values(
                client_id="cli_0123456789abcdef012345",
                tenant="acme",
                name="Warehouse sync",
                secret_hash="x",
                scopes="items:read items:write",
                revision=1,
                created_by=viewer_id,
                created_at=now,
                last_used_at=now - timedelta(minutes=5),
            )
        )
    response = await get(world, token, "/v1/tenants/acme/audit/access")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["tenant"] == "acme"
    expected_routes = route_matrix(world.app.routes)
    assert [(r["method"], r["path"], set(r["scopes"])) for r in body["routes"]] == [
        (r.method, r.path, set(r.scopes)) for r in expected_routes
    ]
    assert {r["role"]: set(r["scopes"]) for r in body["roles"]} == ROLES
    members = {m["email"]: m for m in body["members"]}
    assert set(members) == {"aud@acme.test", "vic@acme.test", "gone@acme.test"}
    assert members["vic@acme.test"]["role"] == "viewer"
    assert members["vic@acme.test"]["scopes"] == sorted(ROLES["viewer"])
    assert members["aud@acme.test"]["scopes"] == sorted(ROLES["auditor"])
    assert members["gone@acme.test"]["active"] is False
    assert members["gone@acme.test"]["scopes"] == []
    (client,) = body["clients"]
    assert client["client_id"] == "cli_0123456789abcdef012345"
    assert client["scopes"] == ["items:read", "items:write"]
    assert client["created_by"] == viewer_id
    assert client["last_used_at"] is not None
    assert "secret_hash" not in client
    (sessions,) = body["sessions"]
    assert (sessions["user_id"], sessions["client_id"], sessions["open_sessions"]) == (
        viewer_id,
        "tenantgate",
        2,
    )
    # Refreshing rotates a session; it does not open another one.
    form = {"grant_type": "refresh_token", "refresh_token": second["refresh_token"]}
    assert (await world.client.post("/token", data=form)).status_code == 200
    again = (await get(world, token, "/v1/tenants/acme/audit/access")).json()
    assert again["sessions"][0]["open_sessions"] == 2
    async with world.database.read() as connection:
        open_rows = await connection.execute(
            sa.select(sa.func.count()).where(
                refresh_tokens.c.tenant == "acme", refresh_tokens.c.used_at.is_(None)
            )
        )
        assert open_rows.scalar_one() == 3  # including the auditor's revoked one


async def test_access_needs_audit_read(world: World) -> None:
    await world.tenant("acme")
    token, _ = await member_token(world, "acme", "adm@acme.test", "admin")
    response = await get(world, token, "/v1/tenants/acme/audit/access")
    assert response.status_code == 403
    assert response.json()["required_scopes"] == ["audit:read"]
