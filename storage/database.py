"""The database: the data path's driver, and SQLAlchemy's async engines for everything else.

`driver` (storage/driver.py) runs the hot statements on the database driver itself.
The engines serve the rest of storage: autocommit reads, snapshot reads, and writes (BEGIN
IMMEDIATE on SQLite). A single-statement read needs no transaction: skipping BEGIN and ROLLBACK
saves two round trips (PostgreSQL) or two thread hops (aiosqlite) per statement.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from config.settings import Settings
from storage import commit_hooks, failures, postgres_timeouts
from storage.driver import Driver, open_driver
from storage.errors import InvalidText
from storage.sqlite_driver import one_hop_dbapi

# The engines serve admin and audit routes; the data path has its own pool of pool_size.
ENGINE_POOL_SHARE = 4


def _no_rollback(_dbapi_connection: Any) -> None:
    return None


def _sqlite_engine(url: str, settings: Settings, *, begin: str | None) -> AsyncEngine:
    """`begin` is the statement that opens a transaction; None for an autocommit reader."""
    busy_timeout_ms = round(settings.database_busy_timeout * 1000)
    engine = create_async_engine(
        url,
        module=one_hop_dbapi(),
        connect_args={"timeout": settings.database_busy_timeout},
        pool_reset_on_return="rollback" if begin else None,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from pysqlite so BEGIN is ours (see "begin" below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    if begin is None:
        # Autocommit: each statement is its own snapshot and there is nothing to roll back.
        engine.sync_engine.dialect.do_rollback = _no_rollback  # type: ignore[method-assign,assignment]
        return engine

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A writer that starts deferred and upgrades later can fail with "database is locked"
        # regardless of busy_timeout; BEGIN IMMEDIATE queues writers on the lock instead.
        connection.exec_driver_sql(begin)

    return engine


def _refuse_nul(
    _connection: Any, _cursor: Any, _statement: str, parameters: Any, _context: Any, _many: bool
) -> None:
    # PostgreSQL cannot store NUL in text and fails the query; SQLite stores it. Refuse it here,
    # below every route, so both backends answer the same clean 4xx instead of a 500.
    if _has_nul(parameters):
        raise InvalidText("text must not contain NUL characters")


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


class Database:
    """Reads without a transaction, snapshot reads, and write transactions."""

    def __init__(self, settings: Settings) -> None:
        url = make_url(settings.database_url)
        self.is_sqlite = url.get_backend_name() == "sqlite"
        self.driver: Driver = open_driver(
            url,
            pool_size=settings.database_pool_size,
            connect_timeout=settings.database_connect_timeout,
            timeout=settings.database_timeout,
            pool_timeout=settings.database_pool_timeout,
            busy_timeout=settings.database_busy_timeout,
            prepared_statements=settings.database_prepared_statements,
        )
        # Told what each committed write() noted (storage/commit_hooks.py): the audit feed.
        self.on_commit: Callable[[list[object]], None] | None = None
        if self.is_sqlite:
            if url.database and url.database != ":memory:":
                Path(url.database).parent.mkdir(parents=True, exist_ok=True)
            self.reader = _sqlite_engine(settings.database_url, settings, begin=None)
            self.snapshots = _sqlite_engine(settings.database_url, settings, begin="BEGIN")
            self.writer = _sqlite_engine(settings.database_url, settings, begin="BEGIN IMMEDIATE")
        else:
            # No pool_pre_ping: it costs a round trip per checkout; a connection broken by a
            # server restart is invalidated (with its pool) on first use instead.
            engine_pool = max(2, settings.database_pool_size // ENGINE_POOL_SHARE)
            self.writer = create_async_engine(
                settings.database_url,
                pool_size=engine_pool,
                max_overflow=engine_pool,
                pool_recycle=1800,
                # A server that is down or hung must become a 503 within seconds, not minutes.
                pool_timeout=settings.database_pool_timeout,
                connect_args=postgres_timeouts.connect_args(settings),
            )
            self.snapshots = self.writer.execution_options(isolation_level="REPEATABLE READ")
            self.reader = self.writer.execution_options(isolation_level="AUTOCOMMIT")
        for engine in {
            self.reader.sync_engine,
            self.snapshots.sync_engine,
            self.writer.sync_engine,
        }:
            event.listen(engine, "before_cursor_execute", _refuse_nul)
            event.listen(engine, "handle_error", failures.invalidate_spoiled_connection)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection in autocommit: each statement sees the latest committed data."""
        with failures.translated():
            async with self.reader.connect() as connection:
                yield connection

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[AsyncConnection]:
        """A read transaction: every statement sees the same committed state."""
        with failures.translated():
            async with self.snapshots.begin() as connection:
                yield connection

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction committed on success and rolled back on any error.

        A connection lost during COMMIT is CommitUnknown (PostgreSQL cannot say whether it
        landed); SQLite reports a failed COMMIT as not committed.
        """
        with commit_hooks.collecting() as committed, failures.translated():
            async with self.writer.connect() as connection:
                transaction = await connection.begin()
                try:
                    yield connection
                except BaseException:
                    if transaction.is_active:
                        await transaction.rollback()
                    raise
                with failures.translated(commit=True, outcome_known=self.is_sqlite):
                    await transaction.commit()
        if committed and self.on_commit is not None:
            self.on_commit(committed)

    async def dispose(self) -> None:
        await self.driver.close()
        for engine in {self.reader, self.snapshots, self.writer}:
            await engine.dispose()
