"""`tenantgate keys rotate` across two app instances sharing the database, without a restart."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from auth.keys import rotate
from tests.support import World, bearer, jwt_part, make_settings
from tests.support_clients import Client, admin_token, client_token, create_client

TENANTGATE = str(Path(sys.executable).with_name("tenantgate"))
REFRESH = 0.05


async def _kids(world: World) -> set[str]:
    response = await world.client.get("/.well-known/jwks.json")
    return {key["kid"] for key in response.json()["keys"]}


async def _status(world: World, token: str) -> int:
    response = await world.client.get("/v1/tenants/acme/clients", headers=bearer(token))
    return response.status_code


async def _converged(worlds: tuple[World, ...], kids: set[str]) -> None:
    """Wait (bounded) until every instance's refresher has read the key table."""
    deadline = time.monotonic() + 10
    while [await _kids(w) for w in worlds] != [kids] * len(worlds):
        assert time.monotonic() < deadline, [await _kids(w) for w in worlds]
        await asyncio.sleep(REFRESH)


async def _token(world: World, client: Client) -> tuple[str, str]:
    token = await client_token(world.client, client)
    return token, str(jwt_part(token, 0)["kid"])


def _cli_rotate(database_url: str, cwd: Path) -> str:
    result = subprocess.run(
        [TENANTGATE, "keys", "rotate", "--json"],
        env={**os.environ, "TENANTGATE_DATABASE_URL": database_url},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    kid: str = json.loads(result.stdout)["kid"]
    return kid


async def test_rotation_keeps_old_tokens_until_the_key_is_retired(
    database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(database_url, key_refresh_interval=REFRESH)
    async with World.start(settings) as a, World.start(settings) as b:
        admin = await admin_token(a, "acme")
        client = await create_client(a, admin, "acme", ["clients:read"])
        first, kid1 = await _token(a, client)
        assert [await _status(w, first) for w in (a, b)] == [200, 200]

        async with a.database.write() as connection:
            kid2 = await rotate(connection, settings.signing_algorithm)
        # Both instances serve both keys, and the other one signs with the new key on its own.
        await _converged((a, b), {kid1, kid2})
        second, signed_by = await _token(b, client)
        assert signed_by == kid2
        # Tokens signed before the rotation keep working until they expire, everywhere.
        assert [await _status(w, t) for w in (a, b) for t in (first, second)] == [200] * 4

        kid3 = _cli_rotate(database_url, tmp_path)
        await _converged((a, b), {kid2, kid3})
        # The retired key's tokens are refused, even by instances that cached them verified.
        for world in (a, b):
            response = await world.client.get("/v1/tenants/acme/clients", headers=bearer(first))
            assert response.status_code == 401
            assert response.json()["type"] == "urn:tenantgate:problem:invalid-token"
        assert [await _status(w, second) for w in (a, b)] == [200, 200]
        third, signed_by = await _token(a, client)
        assert signed_by == kid3
        assert [await _status(w, third) for w in (a, b)] == [200, 200]
