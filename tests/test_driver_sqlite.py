"""The SQLite data-path driver: reads on the loop never wait, writes queue on their own thread."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from storage.database import Database
from storage.driver_sqlite import SqliteDriver
from storage.errors import ConstraintViolation, InvalidText
from storage.statements import Statement
from tests.support import make_settings

things = sa.Table(
    "things",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String, unique=True),
)
INSERT = Statement(
    things.insert().values(id=sa.bindparam("id"), name=sa.bindparam("name")).returning(things.c.id)
)
BY_ID = Statement(sa.select(things.c.name).where(things.c.id == sa.bindparam("id")))
COUNT = Statement(sa.select(sa.func.count()).select_from(things), scan=True)


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(make_settings(f"sqlite+aiosqlite:///{tmp_path}/driver.db"))
    async with db.write() as connection:
        await connection.run_sync(things.metadata.create_all)
    await db.driver.start()
    yield db
    await db.dispose()


async def _ticks_while(task: asyncio.Task[object]) -> int:
    """How often the loop ran other work while `task` was pending (0 = the loop was blocked)."""
    ticks = 0
    while not task.done():
        await asyncio.sleep(0.01)
        ticks += 1
    return ticks


async def test_a_busy_database_moves_the_read_off_the_loop(tmp_path: Path) -> None:
    """WAL readers are almost never refused, so refuse one for sure: a rollback-journal file
    under an exclusive lock. The loop's reader (busy timeout 0) gets SQLITE_BUSY at once and
    the read is retried on a reader thread, which waits for the lock instead of the loop."""
    path = str(tmp_path / "journal.db")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT UNIQUE)")
    holder.execute("INSERT INTO things VALUES (1, 'anvil')")
    holder.execute("BEGIN EXCLUSIVE")
    driver = SqliteDriver(
        path, busy_timeout_ms=30_000
    )  # not started: the file stays in rollback-journal mode
    try:
        read = asyncio.create_task(driver.one(BY_ID, {"id": 1}))
        asyncio.get_running_loop().call_later(0.3, holder.rollback)
        ticks = await _ticks_while(read)
        assert await read == ("anvil",)
        assert ticks >= 10  # the loop served other work while the read waited for the lock
    finally:
        holder.close()
        await driver.close()


async def test_a_write_waits_for_another_writer_without_blocking_the_loop(
    database: Database,
) -> None:
    async with database.write() as connection:  # BEGIN IMMEDIATE: holds the write lock
        await connection.execute(sa.text("INSERT INTO things (id, name) VALUES (1, 'first')"))
        write = asyncio.create_task(database.driver.write(INSERT, {"id": 2, "name": "second"}))
        ticks = 0
        for _ in range(20):
            await asyncio.sleep(0.01)
            ticks += 1
        assert not write.done()  # queued behind the open transaction, not failed
    assert await write == [(2,)]
    assert ticks == 20
    assert await database.driver.all(COUNT, {}) == [(2,)]


async def test_reads_see_every_committed_write_at_once(database: Database, tmp_path: Path) -> None:
    other = SqliteDriver(
        str(tmp_path / "driver.db"), busy_timeout_ms=2000
    )  # another worker on the same file
    try:
        for n in range(20):
            await other.write(INSERT, {"id": n, "name": f"n{n}"})
            assert await database.driver.one(BY_ID, {"id": n}) == (f"n{n}",)
    finally:
        await other.close()


async def test_constraint_and_nul_errors(database: Database) -> None:
    await database.driver.write(INSERT, {"id": 1, "name": "dup"})
    with pytest.raises(ConstraintViolation):
        await database.driver.write(INSERT, {"id": 2, "name": "dup"})
    with pytest.raises(InvalidText):
        await database.driver.write(INSERT, {"id": 3, "name": "n\x00ul"})
    assert await database.driver.all(COUNT, {}) == [(1,)]
