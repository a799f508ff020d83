"""The one-hop aiosqlite cursor: same results and errors as SQLAlchemy's, one thread trip each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiosqlite.core
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from storage.database import Database
from tests.support import make_settings


@pytest.fixture
async def database(tmp_path: Path) -> Any:
    db = Database(make_settings(f"sqlite+aiosqlite:///{tmp_path}/driver.db"))
    async with db.write() as connection:
        await connection.execute(sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)"))
    yield db
    await db.dispose()


async def test_each_statement_is_one_trip_to_the_connection_thread(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    trips: list[str] = []
    original = aiosqlite.core.Connection._execute

    async def counting(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        trips.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)  # type: ignore[no-untyped-call]

    async with database.read() as connection:  # a pooled connection exists from here on
        await connection.execute(sa.text("SELECT 1"))
    monkeypatch.setattr(aiosqlite.core.Connection, "_execute", counting)
    async with database.read() as connection:
        rows = (await connection.execute(sa.text("SELECT 1, 'x'"))).all()
    assert [tuple(row) for row in rows] == [(1, "x")]
    assert trips == ["_run"]


async def test_writes_rowcounts_lastrowid_and_rollback(database: Database) -> None:
    async with database.write() as connection:
        inserted = await connection.execute(sa.text("INSERT INTO t (v) VALUES ('a')"))
        assert inserted.lastrowid == 1
        many = await connection.execute(
            sa.text("INSERT INTO t (v) VALUES (:v)"), [{"v": "b"}, {"v": "c"}]
        )
        assert many.rowcount == 2
        updated = await connection.execute(sa.text("UPDATE t SET v = v || '!' WHERE id > 1"))
        assert updated.rowcount == 2

    async def delete_then_fail() -> None:
        async with database.write() as connection:
            await connection.execute(sa.text("DELETE FROM t"))
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        await delete_then_fail()
    async with database.read() as connection:
        values = (await connection.execute(sa.text("SELECT v FROM t ORDER BY id"))).scalars()
        assert list(values) == ["a", "b!", "c!"]


async def test_driver_errors_are_sqlalchemy_errors(database: Database) -> None:

    async def insert_twice() -> None:
        async with database.write() as connection:
            await connection.execute(sa.text("INSERT INTO t (v) VALUES ('dup'), ('dup')"))

    with pytest.raises(IntegrityError):
        await insert_twice()
    async with database.read() as connection:
        assert (await connection.execute(sa.text("SELECT count(*) FROM t"))).scalar_one() == 0


async def test_snapshot_reads_see_one_state(database: Database) -> None:
    async with database.snapshot() as snapshot:
        before = (await snapshot.execute(sa.text("SELECT count(*) FROM t"))).scalar_one()
        async with database.write() as connection:
            await connection.execute(sa.text("INSERT INTO t (v) VALUES ('new')"))
        after = (await snapshot.execute(sa.text("SELECT count(*) FROM t"))).scalar_one()
    assert before == after == 0
    async with database.read() as connection:
        assert (await connection.execute(sa.text("SELECT count(*) FROM t"))).scalar_one() == 1
