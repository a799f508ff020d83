"""SQLite out of reach, with real files: a lock held past the busy timeout, a file that is no
longer a database, a full disk (a real ENOSPC: a tiny tmpfs). Each is a clean 503, then recovers.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support import World, bearer, make_settings
from tests.support_items import create_item, item_body, items_url, tenant_with_owner
from tests.support_ops import capture_logs
from tests.support_outage import assert_one_error_line, assert_unavailable, timed


def _database_file(world: World) -> Path:
    return Path(world.settings.database_url.removeprefix("sqlite+aiosqlite:///"))


def _checkpoint(path: Path) -> None:
    """Move the WAL into the file and empty it: the next write must grow the WAL again, and every
    connection of the app re-reads pages from the file on its next transaction."""
    with sqlite3.connect(path) as connection:
        busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    assert busy == 0


@pytest.fixture
async def world(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[World]:
    path = tmp_path / "tenantgate.db"
    shutil.copy(sqlite_template, path)
    # A short busy timeout: "locked past the busy timeout" in a second, not in ten.
    settings = make_settings(f"sqlite+aiosqlite:///{path}", database_busy_timeout=1.0)
    async with World.start(settings) as started:
        yield started


async def test_a_lock_held_past_the_busy_timeout_is_a_503_for_writes_only(world: World) -> None:
    token = await tenant_with_owner(world, "locked")
    item = await create_item(world, token, "locked", sku="BEFORE")
    other = sqlite3.connect(_database_file(world), isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with capture_logs() as logs:
            write, elapsed = await timed(
                world.client.post(
                    items_url("locked"), json=item_body("DURING"), headers=bearer(token)
                )
            )
        assert_unavailable(write, elapsed)
        assert_one_error_line(logs, [write])
        # WAL: readers are not blocked by a writer's lock.
        read = await world.client.get(items_url("locked", item["id"]), headers=bearer(token))
        assert read.status_code == 200
    finally:
        other.execute("ROLLBACK")
        other.close()
    created = await world.client.post(
        items_url("locked"), json=item_body("AFTER"), headers=bearer(token)
    )
    assert created.status_code == 201, created.text
    listing = await world.client.get(items_url("locked"), headers=bearer(token))
    assert [i["sku"] for i in listing.json()["items"]] == ["BEFORE", "AFTER"]


async def test_a_file_that_is_no_longer_a_database_is_a_503_until_restored(world: World) -> None:
    token = await tenant_with_owner(world, "broken")
    item = await create_item(world, token, "broken", sku="BEFORE")
    path = _database_file(world)
    _checkpoint(path)
    original = path.read_bytes()
    path.write_bytes(os.urandom(len(original)))
    try:
        with capture_logs() as logs:
            read, elapsed = await timed(
                world.client.get(items_url("broken", item["id"]), headers=bearer(token))
            )
            assert_unavailable(read, elapsed)
            write, elapsed = await timed(
                world.client.post(
                    items_url("broken"), json=item_body("DURING"), headers=bearer(token)
                )
            )
            assert_unavailable(write, elapsed)
        assert_one_error_line(logs, [read, write])
        assert (await world.client.get("/ready")).status_code == 503
    finally:
        path.write_bytes(original)
    again = await world.client.get(items_url("broken", item["id"]), headers=bearer(token))
    assert again.status_code == 200, again.text


@pytest.fixture
def tiny_disk() -> Iterator[Path]:
    """A 2 MiB tmpfs of the test's own: a full disk with a real ENOSPC."""
    mountpoint = Path(tempfile.mkdtemp(prefix="tenantgate-disk-"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        mountpoint.rmdir()
        pytest.fail(f"the disk-full test mounts a 2 MiB tmpfs and needs root: {mounted.stderr}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)
        mountpoint.rmdir()


def _fill(directory: Path) -> Path:
    filler = directory / "filler"
    with filler.open("wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError:
            pass
    return filler


async def test_a_full_disk_is_a_503_and_nothing_acknowledged_is_lost(
    sqlite_template: Path, tiny_disk: Path
) -> None:
    path = tiny_disk / "tenantgate.db"
    shutil.copy(sqlite_template, path)
    async with World.start(make_settings(f"sqlite+aiosqlite:///{path}")) as world:
        token = await tenant_with_owner(world, "full")
        await create_item(world, token, "full", sku="BEFORE")
        _checkpoint(path)
        filler = _fill(tiny_disk)
        with capture_logs() as logs:
            write, elapsed = await timed(
                world.client.post(
                    items_url("full"),
                    json=item_body("DURING", description="x" * 1500),
                    headers=bearer(token),
                )
            )
        assert_unavailable(write, elapsed)
        assert_one_error_line(logs, [write])
        read = await world.client.get(items_url("full"), headers=bearer(token))
        assert [i["sku"] for i in read.json()["items"]] == ["BEFORE"]
        filler.unlink()
        created = await world.client.post(
            items_url("full"), json=item_body("AFTER"), headers=bearer(token)
        )
        assert created.status_code == 201, created.text
        listing = await world.client.get(items_url("full"), headers=bearer(token))
        assert [i["sku"] for i in listing.json()["items"]] == ["BEFORE", "AFTER"]
