"""The tenant's OAuth2 clients: create, list, get, delete, rotate the secret; the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from storage.tables import clients
from tests.support import World, bearer
from tests.support_clients import (
    admin_token,
    client_token,
    client_token_response,
    create_client,
)

TENANTGATE = str(Path(sys.executable).with_name("tenantgate"))
PROBLEM = "urn:tenantgate:problem:"


async def test_create_returns_the_secret_once_and_stores_only_a_hash(world: World) -> None:
    admin = await admin_token(world, "acme")
    response = await world.client.post(
        "/v1/tenants/acme/clients",
        json={"name": "Billing sync", "scopes": ["items:write", "items:read"], "description": "x"},
        headers=bearer(admin),
    )
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert response.headers["location"] == f"/v1/tenants/acme/clients/{body['client_id']}"
    assert body["client_id"].startswith("cli_")
    assert body["client_secret"].startswith("tgcs_")
    assert len(body["client_secret"]) >= 40
    assert body["scopes"] == ["items:read", "items:write"]
    assert body["name"] == "Billing sync"
    assert body["description"] == "x"
    me = (await world.client.get("/v1/me", headers=bearer(admin))).json()
    assert body["created_by"] == me["subject"]
    assert body["last_used_at"] is None
    assert body["created_at"].endswith(("Z", "+00:00"))

    async with world.database.read() as connection:
        row = (await connection.execute(sa.select(clients))).one()
    assert body["client_secret"] not in row.secret_hash
    assert row.secret_hash.startswith("hmac-sha256$")
    assert row.tenant == "acme"

    listed = await world.client.get("/v1/tenants/acme/clients", headers=bearer(admin))
    one = await world.client.get(
        f"/v1/tenants/acme/clients/{body['client_id']}", headers=bearer(admin)
    )
    for shown in (listed.json()["clients"][0], one.json()):
        assert "client_secret" not in shown
        assert body["client_secret"] not in json.dumps(shown)
        assert shown == {k: v for k, v in body.items() if k != "client_secret"}


async def test_scopes_cannot_exceed_the_creators_own(world: World) -> None:
    admin = await admin_token(world, "acme")
    # An admin has no audit:read: it cannot hand it to a client.
    response = await world.client.post(
        "/v1/tenants/acme/clients",
        json={"name": "too much", "scopes": ["items:read", "audit:read"]},
        headers=bearer(admin),
    )
    assert response.status_code == 403
    assert response.json()["type"] == PROBLEM + "insufficient-scope"
    assert response.json()["required_scopes"] == ["audit:read"]
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]

    # The ceiling is the token, not the role: a narrowed token narrows what it can grant.
    narrowed = await world.login("admin@acme.test", scope="clients:write clients:read")
    response = await world.client.post(
        "/v1/tenants/acme/clients",
        json={"name": "narrow", "scopes": ["items:read"]},
        headers=bearer(narrowed),
    )
    assert response.status_code == 403
    assert response.json()["required_scopes"] == ["items:read"]
    async with world.database.read() as connection:
        assert (await connection.execute(sa.select(sa.func.count()).select_from(clients))).one()[
            0
        ] == 0


async def test_invalid_bodies_are_422(world: World) -> None:
    admin = await admin_token(world, "acme")
    bodies = [
        {"name": "x", "scopes": []},
        {"name": "x", "scopes": ["items:delete"]},
        {"name": "x", "scopes": ["platform:admin"]},
        {"name": "", "scopes": ["items:read"]},
        {"name": "x" * 201, "scopes": ["items:read"]},
        {"name": "x", "scopes": ["items:read"], "tenant": "other"},
        {"name": "x", "scopes": ["items:read"], "client_secret": "tgcs_chosen"},
        {"scopes": ["items:read"]},
    ]
    for body in bodies:
        response = await world.client.post(
            "/v1/tenants/acme/clients", json=body, headers=bearer(admin)
        )
        assert response.status_code == 422, body
        assert response.json()["type"] == PROBLEM + "validation-error"


async def test_read_and_write_scopes_are_required(world: World) -> None:
    await admin_token(world, "acme")
    await world.member("acme", "viewer@acme.test", "viewer")
    viewer = await world.login("viewer@acme.test")
    response = await world.client.get("/v1/tenants/acme/clients", headers=bearer(viewer))
    assert response.status_code == 403
    reader = await world.login("admin@acme.test", scope="clients:read")
    assert (
        await world.client.get("/v1/tenants/acme/clients", headers=bearer(reader))
    ).status_code == 200
    response = await world.client.post(
        "/v1/tenants/acme/clients",
        json={"name": "x", "scopes": ["items:read"]},
        headers=bearer(reader),
    )
    assert response.status_code == 403
    assert response.json()["required_scopes"] == ["clients:write"]


async def test_list_is_paginated_and_tenant_bound(world: World) -> None:
    admin = await admin_token(world, "acme")
    other = await admin_token(world, "globex")
    made = [
        (await create_client(world, admin, "acme", ["items:read"], name=f"c{i}")).client_id
        for i in range(3)
    ]
    foreign = await create_client(world, other, "globex", ["items:read"])
    first = await world.client.get("/v1/tenants/acme/clients?limit=2", headers=bearer(admin))
    assert first.status_code == 200
    page = first.json()
    assert [c["client_id"] for c in page["clients"]] == made[:2]
    assert page["next_cursor"]
    second = await world.client.get(
        f"/v1/tenants/acme/clients?limit=2&cursor={page['next_cursor']}", headers=bearer(admin)
    )
    assert [c["client_id"] for c in second.json()["clients"]] == made[2:]
    assert second.json()["next_cursor"] is None
    assert foreign.client_id not in json.dumps(first.json()) + json.dumps(second.json())
    for query in ("cursor=not-a-cursor", "limit=0", "limit=101"):
        response = await world.client.get(
            f"/v1/tenants/acme/clients?{query}", headers=bearer(admin)
        )
        assert response.status_code == 422, query


async def test_unknown_and_foreign_clients_are_404(world: World) -> None:
    admin = await admin_token(world, "acme")
    other = await admin_token(world, "globex")
    foreign = await create_client(world, other, "globex", ["items:read"])
    for client_id in (foreign.client_id, "cli_00000000000000000000aa", "nope"):
        path = f"/v1/tenants/acme/clients/{client_id}"
        for method, url in (
            ("GET", path),
            ("DELETE", path),
            ("POST", path + "/secret"),
        ):
            response = await world.client.request(method, url, headers=bearer(admin))
            assert response.status_code == 404, (method, url)
            assert response.json()["type"] == PROBLEM + "client-not-found"
    # The foreign client is untouched: not deleted, and its secret not rotated.
    still = await client_token_response(world.client, foreign.client_id, foreign.client_secret)
    assert still.status_code == 200, still.text
    path = f"/v1/tenants/globex/clients/{foreign.client_id}"
    assert (await world.client.get(path, headers=bearer(other))).status_code == 200


async def test_delete_revokes_the_client_and_its_tokens(world: World) -> None:
    admin = await admin_token(world, "acme")
    client = await create_client(world, admin, "acme", ["clients:read"])
    token = await client_token(world.client, client)
    assert (
        await world.client.get("/v1/tenants/acme/clients", headers=bearer(token))
    ).status_code == 200

    path = f"/v1/tenants/acme/clients/{client.client_id}"
    response = await world.client.delete(path, headers=bearer(admin))
    assert response.status_code == 204
    assert response.content == b""

    response = await world.client.get("/v1/tenants/acme/clients", headers=bearer(token))
    assert response.status_code == 401
    assert response.json()["type"] == PROBLEM + "invalid-token"
    again = await client_token_response(world.client, client.client_id, client.client_secret)
    assert again.status_code == 401
    assert again.json()["error"] == "invalid_client"
    assert (await world.client.get(path, headers=bearer(admin))).status_code == 404
    assert (await world.client.delete(path, headers=bearer(admin))).status_code == 404


async def test_secret_rotation_replaces_the_secret_and_ends_old_tokens(world: World) -> None:
    admin = await admin_token(world, "acme")
    client = await create_client(world, admin, "acme", ["clients:read"])
    old_token = await client_token(world.client, client)

    response = await world.client.post(
        f"/v1/tenants/acme/clients/{client.client_id}/secret", headers=bearer(admin)
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    new_secret = response.json()["client_secret"]
    assert response.json()["client_id"] == client.client_id
    assert new_secret.startswith("tgcs_")
    assert new_secret != client.client_secret

    old = await client_token_response(world.client, client.client_id, client.client_secret)
    assert old.status_code == 401
    assert old.json()["error"] == "invalid_client"
    # A token minted before the rotation may have been minted by whoever leaked the old secret.
    response = await world.client.get("/v1/tenants/acme/clients", headers=bearer(old_token))
    assert response.status_code == 401
    new = await client_token_response(world.client, client.client_id, new_secret)
    assert new.status_code == 200
    response = await world.client.get(
        "/v1/tenants/acme/clients", headers=bearer(new.json()["access_token"])
    )
    assert response.status_code == 200
    assert response.json()["clients"][0]["last_used_at"] is not None

    # Rotation needs clients:write.
    reader = await world.login("admin@acme.test", scope="clients:read")
    response = await world.client.post(
        f"/v1/tenants/acme/clients/{client.client_id}/secret", headers=bearer(reader)
    )
    assert response.status_code == 403


async def test_cli_creates_a_client(world: World, tmp_path: Path) -> None:
    await world.tenant("acme")
    env = {
        **os.environ,
        "TENANTGATE_DATABASE_URL": world.settings.database_url,
        "TENANTGATE_ISSUER": world.settings.issuer,
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [TENANTGATE, "clients", "create", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    created = run("acme", "Nightly export", "--scope", "items:read", "--scope", "reports:read")
    assert created.returncode == 0, created.stderr
    assert "tgcs_" in created.stdout
    result = run("acme", "Nightly export", "--scope", "items:read", "--json")
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["tenant"] == "acme"
    assert body["scopes"] == ["items:read"]
    assert body["client_secret"].startswith("tgcs_")
    response = await client_token_response(world.client, body["client_id"], body["client_secret"])
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "items:read"

    listed = await world.client.get(
        "/v1/tenants/acme/clients", headers=bearer(await admin_token(world, "acme"))
    )
    assert [c["created_by"] for c in listed.json()["clients"]] == ["cli", "cli"]

    for args, message in (
        (("nowhere", "x", "--scope", "items:read"), "tenant not found"),
        (("acme", "x", "--scope", "items:fly"), "unknown scope"),
    ):
        failed = run(*args)
        assert failed.returncode != 0, args
        assert message in failed.stderr, failed.stderr
