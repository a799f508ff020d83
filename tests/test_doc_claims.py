"""Claims of README.md and docs/ that are numbers or recipes, checked against the real thing."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from storage.audit_queries import verify
from storage.tables import audit_events, memberships, signing_keys, tenants, users
from tests.support import TEST_ISSUER, World, make_settings
from tests.support_clients import admin_token, client_token, create_client

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


async def _token_sizes(template: Path, directory: Path, algorithm: str) -> list[int]:
    """Sizes of a platform token, a client token, a viewer's and an owner's, on a fresh
    database (whose first signing key is of `algorithm`)."""
    path = directory / f"{algorithm}.db"
    shutil.copy(template, path)
    settings = make_settings(f"sqlite+aiosqlite:///{path}", signing_algorithm=algorithm)
    async with World.start(settings) as world:
        await world.user("root@platform.test", platform_admin=True)
        sizes = [len(await world.login("root@platform.test"))]
        admin = await admin_token(world, "acme")
        client = await create_client(world, admin, "acme", ["items:read"])
        sizes.append(len(await client_token(world.client, client)))
        for role in ("viewer", "owner"):
            await world.member("acme", f"{role}@acme.test", role)
            sizes.append(len(await world.login(f"{role}@acme.test")))
    return sizes


async def test_token_sizes_are_what_the_readme_says(sqlite_template: Path, tmp_path: Path) -> None:
    claim = re.search(
        r"token: (\d+) bytes more\s.*?RS256 (\d+)-(\d+) bytes against ES256 or EdDSA (\d+)-(\d+)"
        r"\s+\(measured with a (\d+)-character issuer",
        README,
        re.DOTALL,
    )
    assert claim, "the README's token size sentence changed: update this test with it"
    more, rs_low, rs_high, ec_low, ec_high, issuer = map(int, claim.groups())
    assert issuer == len(TEST_ISSUER)
    rs256 = await _token_sizes(sqlite_template, tmp_path, "RS256")
    for algorithm in ("ES256", "EdDSA"):
        sizes = await _token_sizes(sqlite_template, tmp_path, algorithm)
        assert [a - b for a, b in zip(rs256, sizes, strict=True)] == [more] * len(sizes)
        assert (ec_low, ec_high) == (min(sizes) - min(sizes) % 5, -(-max(sizes) // 5) * 5), sizes
    assert (rs_low, rs_high) == (min(rs256) - min(rs256) % 10, -(-max(rs256) // 10) * 10), rs256


# docs/operations.md, "Database backup" ------------------------------------------------------

BACKED_UP = (users, tenants, memberships, signing_keys, audit_events)


async def _rows(database_url: str) -> list[list[tuple[object, ...]]]:
    async with World.start(make_settings(database_url)) as world, world.database.read() as db:
        return [
            sorted(tuple(row) for row in await db.execute(sa.select(table))) for table in BACKED_UP
        ]


async def _run_admin(url: str, statement: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.execute(sa.text(statement))
    finally:
        await engine.dispose()


async def _sh(script: str, cwd: Path, database_url: str) -> None:
    """A shell block of the guide, as an operator runs it, with the app's database URL."""
    env = {**os.environ, "TENANTGATE_DATABASE_URL": database_url}
    command = ["bash", "-euo", "pipefail", "-c", script]
    await asyncio.to_thread(subprocess.run, command, cwd=cwd, env=env, check=True)


def _backup_blocks() -> list[str]:
    guide = (ROOT / "docs" / "operations.md").read_text()
    section = guide.split("## Database backup", 1)[1].split("\n## ", 1)[0]
    return [block.split("```", 1)[0] for block in section.split("```sh\n")[1:]]


async def test_the_backup_recipe_restores_a_verifiable_copy(
    database_url: str, tmp_path: Path
) -> None:
    async with World.start(make_settings(database_url)) as world:
        await world.tenant("acme")
        await world.member("acme", "ann@acme.test", "owner")
        await world.login("ann@acme.test")
    before = await _rows(database_url)
    url = sa.make_url(database_url)
    if url.get_backend_name() == "sqlite":
        # The guide's one-liner, on this database's file.
        copy = tmp_path / "backup.db"
        await _sh(f'sqlite3 "{url.database}" ".backup {copy}"', tmp_path, database_url)
        restored = f"sqlite+aiosqlite:///{copy}"
        assert await _rows(restored) == before
        async with World.start(make_settings(restored)) as world:
            assert (await verify(world.database, "acme")).ok
        return
    dump, restore = _backup_blocks()
    await _sh(dump, tmp_path, database_url)
    name = f"{url.database}_restored"
    restored = url.set(database=name).render_as_string(hide_password=False)
    await _run_admin(database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await _run_admin(database_url, f'CREATE DATABASE "{name}"')
    try:
        await _sh(restore, tmp_path, restored)
        assert await _rows(restored) == before
        async with World.start(make_settings(restored)) as world:
            assert (await verify(world.database, "acme")).ok
    finally:
        await _run_admin(database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
