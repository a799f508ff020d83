"""`tenantgate keys rotate` across two app instances sharing the database, without a restart."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from auth.keys import rotate
from storage.tables import audit_events, signing_keys
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


def _run_rotate(database_url: str, cwd: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TENANTGATE, "keys", "rotate", "--json", *options],
        env={**os.environ, "TENANTGATE_DATABASE_URL": database_url},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _cli_rotate(database_url: str, cwd: Path, *options: str) -> str:
    result = _run_rotate(database_url, cwd, *options)
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

        # Too soon for a plain rotation (kid1's tokens are still valid): it takes --force.
        refused = _run_rotate(database_url, tmp_path)
        assert refused.returncode == 1
        assert "too young" in refused.stderr
        kid3 = _cli_rotate(database_url, tmp_path, "--force")
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


async def test_a_second_rotation_waits_until_no_worker_can_sign_with_the_retired_key(
    database_url: str, tmp_path: Path
) -> None:
    """Refused until KEY_REFRESH_INTERVAL + ACCESS_TOKEN_TTL after the first; audited when done."""
    settings = make_settings(database_url)
    async with World.start(settings) as world:
        first = await _kids(world)
        # The development key is seconds old: even the first rotation needs --force.
        assert _run_rotate(database_url, tmp_path).returncode == 1
        second = _cli_rotate(database_url, tmp_path, "--force")
        refused = _run_rotate(database_url, tmp_path)
        assert refused.returncode == 1
        assert "retry in" in refused.stderr
        async with world.database.read() as connection:
            rows = await connection.execute(sa.select(signing_keys.c.kid, signing_keys.c.status))
            statuses = {row.kid: row.status for row in rows}
            actions = (
                await connection.execute(
                    sa.select(audit_events.c.action, audit_events.c.target).where(
                        audit_events.c.action == "signing_key.rotated"
                    )
                )
            ).all()
        # The refused rotation changed nothing: the first key is still `previous`.
        assert statuses == {**dict.fromkeys(first, "previous"), second: "active"}
        assert [tuple(row) for row in actions] == [("signing_key.rotated", f"signing_key:{second}")]


async def test_a_worker_whose_copy_is_stale_rereads_the_keys_before_signing(
    database_url: str,
) -> None:
    """Its refresher missed its turns (here: stopped); signing re-reads the table first."""
    settings = make_settings(database_url, key_refresh_interval=0.2)
    async with World.start(settings) as world:
        for task in asyncio.all_tasks():
            if task.get_name() == "key-refresh":
                task.cancel()
        admin = await admin_token(world, "acme")
        client = await create_client(world, admin, "acme", ["clients:read"])
        async with world.database.write() as connection:
            new_kid = await rotate(connection, settings.signing_algorithm)
        await asyncio.sleep(0.25)
        _, signed_by = await _token(world, client)
        assert signed_by == new_kid


async def test_workers_starting_together_on_an_empty_key_table_make_one_key(
    database_url: str,
) -> None:
    """Every worker of a first `serve --workers N` generates the development key at once."""
    settings = make_settings(database_url)
    # Empty the table that the first start filled.
    async with World.start(settings) as first, first.database.write() as connection:
        await connection.execute(sa.delete(signing_keys))
    async with contextlib.AsyncExitStack() as stack:
        worlds = await asyncio.gather(
            *(stack.enter_async_context(World.start(settings)) for _ in range(3))
        )
        async with worlds[0].database.read() as connection:
            rows = (await connection.execute(sa.select(signing_keys.c.status))).all()
        assert [row.status for row in rows] == ["active"]
        signing = {world.app.state.keyring.signing_key.kid for world in worlds}
        assert len(signing) == 1
        assert [await _kids(world) for world in worlds] == [signing] * 3
