"""`tenantgate serve --workers 2`: a security change made in one worker process holds in the other.

Revocation, suspension, role change, member removal and client deletion, each made through one
worker while the other is stopped, then checked in the other worker (which verified and cached
the tokens before the change) while the first is stopped. Database and Redis as configured for
the suite (PostgreSQL when TENANTGATE_TEST_POSTGRES_URL is set).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from storage import accounts
from tests.support import World, make_settings
from tests.support_clients import basic
from tests.support_ops import ServerProcess, server_env

# With the other tests that start several server processes: one at a time on this machine
# (they are CPU-heavy; some add CPU load on purpose).
pytestmark = pytest.mark.xdist_group("server-processes")

PROBLEM = "urn:tenantgate:problem:"
PASSWORD = "Propagation-Pa55word-qv"
# Who signs in (user@tenant.test), with their tenant and role; root is the platform admin.
EMAILS = {
    "root": ("platform", None),
    "owner": ("acme", "owner"),
    "revoked": ("acme", "viewer"),
    "leaver": ("acme", "admin"),
    "lowered": ("acme", "admin"),
    "globex": ("globex", "owner"),
}


@dataclass
class Served:
    server: ServerProcess
    pids: list[int]
    http: httpx.AsyncClient
    ids: dict[str, str]

    async def token(self, who: str) -> dict[str, Any]:
        tenant = EMAILS[who][0]
        form = {"grant_type": "password", "username": f"{who}@{tenant}.test", "password": PASSWORD}
        response = await self.http.post("/token", data=form)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def get(self, path: str, token: str) -> httpx.Response:
        return await self.http.get(path, headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
async def served(
    database_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> AsyncIterator[Served]:
    settings = make_settings(database_url, redis_url=redis_url, redis_prefix=redis_prefix)
    ids: dict[str, str] = {}
    async with World.start(settings) as world:  # seeds the database (and a signing key)
        for tenant in ("acme", "globex"):
            await world.tenant(tenant, plan="enterprise")
        for who, (tenant, role) in EMAILS.items():
            email = f"{who}@{tenant}.test"
            ids[who] = await world.user(email, PASSWORD, platform_admin=role is None)
            if role is not None:
                async with world.database.write() as connection:
                    await accounts.add_member(connection, tenant, ids[who], role)
    env = server_env(
        database_url,
        TENANTGATE_REDIS_URL=redis_url,
        TENANTGATE_REDIS_PREFIX=redis_prefix,
        TENANTGATE_REDIS_TIMEOUT="5",  # a busy machine must not open the breaker here
    )
    server = ServerProcess(env, "--workers", "2", cwd=tmp_path)
    # No keep-alive: every request is a new connection, accepted by whichever worker runs.
    limits = httpx.Limits(max_keepalive_connections=0)
    try:
        await asyncio.to_thread(server.wait_ready)
        pids = server.worker_pids(2)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=10) as http:
            yield Served(server, pids, http, ids)
    finally:
        server.stop()


def assert_problem(response: httpx.Response, status: int, kind: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["type"] == PROBLEM + kind


async def test_security_changes_made_in_one_worker_hold_in_the_other(served: Served) -> None:
    one, other = served.pids
    server = served.server
    members = "/v1/tenants/acme/members"
    with server.only(one, served.pids):
        tokens = {who: (await served.token(who))["access_token"] for who in EMAILS}
        root, owner = tokens["root"], tokens["owner"]
        leaver_refresh = (await served.token("leaver"))["refresh_token"]
        created = await served.http.post(
            "/v1/tenants/acme/clients",
            json={"name": "sync", "scopes": ["items:read"]},
            headers={"Authorization": f"Bearer {owner}"},
        )
        assert created.status_code == 201, created.text
        client = created.json()
        grant = await served.http.post(
            "/token",
            data={"grant_type": "client_credentials"},
            headers=basic(client["client_id"], client["client_secret"]),
        )
        assert grant.status_code == 200, grant.text
        tokens["client"] = grant.json()["access_token"]

    # The other worker verifies (and caches) every token before the changes.
    checks = {
        "revoked": "/v1/tenants/acme/items",
        "leaver": members,
        "lowered": members,
        "client": "/v1/tenants/acme/items",
        "globex": "/v1/tenants/globex/items",
    }
    with server.only(other, served.pids):
        for who, path in checks.items():
            assert (await served.get(path, tokens[who])).status_code == 200, who

    with server.only(one, served.pids):
        auth = {"Authorization": f"Bearer {owner}"}
        revoked = await served.http.post("/revoke", data={"token": tokens["revoked"]})
        assert revoked.status_code == 200
        removed = await served.http.delete(f"{members}/{served.ids['leaver']}", headers=auth)
        assert removed.status_code == 204
        lowered = await served.http.patch(
            f"{members}/{served.ids['lowered']}", json={"role": "viewer"}, headers=auth
        )
        assert lowered.status_code == 200
        deleted = await served.http.delete(
            f"/v1/tenants/acme/clients/{client['client_id']}", headers=auth
        )
        assert deleted.status_code == 204
        suspended = await served.http.patch(
            "/v1/tenants/globex",
            json={"status": "suspended"},
            headers={"Authorization": f"Bearer {root}"},
        )
        assert suspended.status_code == 200

    with server.only(other, served.pids):
        for who in ("revoked", "leaver", "lowered", "client"):
            assert_problem(await served.get(checks[who], tokens[who]), 401, "invalid-token")
        assert_problem(
            await served.get(checks["globex"], tokens["globex"]), 403, "tenant-suspended"
        )
        refreshed = await served.http.post(
            "/token", data={"grant_type": "refresh_token", "refresh_token": leaver_refresh}
        )
        assert refreshed.status_code == 400
        assert refreshed.json()["error"] == "invalid_grant"
        again = await served.http.post(
            "/token",
            data={"grant_type": "client_credentials"},
            headers=basic(client["client_id"], client["client_secret"]),
        )
        assert again.status_code == 401
        assert again.json()["error"] == "invalid_client"
        # Nothing else changed: the owner's token still works.
        assert (await served.get(members, owner)).status_code == 200

    # Reactivation, made in the other worker this time, reaches the first.
    with server.only(other, served.pids):
        active = await served.http.patch(
            "/v1/tenants/globex",
            json={"status": "active"},
            headers={"Authorization": f"Bearer {root}"},
        )
        assert active.status_code == 200
    with server.only(one, served.pids):
        assert (await served.get(checks["globex"], tokens["globex"])).status_code == 200
