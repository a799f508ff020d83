"""The data path on SQLite: stdlib `sqlite3`, point reads on the event loop, writes on one thread.

In WAL mode a read never waits for a writer, and a primary-key read costs microseconds: less than
one hop to a thread. So bounded reads run on the loop thread itself, on a connection that never
waits (busy timeout 0); in the rare case SQLite still answers "busy" (a checkpoint resetting the
WAL, recovery after a crash) the read is retried off the loop, where waiting is harmless. Reads
of unbounded size (`Statement.scan`) run off the loop too. Writes run on a single writer thread
with the full busy timeout, so writers queue (in this process and against other processes)
instead of failing with "database is locked", and the loop never blocks on a lock.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

from storage import failures
from storage.driver import Row, StatementHook
from storage.errors import ConstraintViolation, DatabaseUnavailable, NumericOverflow
from storage.statements import Compiled, Statement


def connect(path: str, *, busy_timeout_ms: int, read_only: bool) -> sqlite3.Connection:
    connection = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, cached_statements=256
    )
    connection.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    connection.execute("PRAGMA foreign_keys=ON")
    connection.execute("PRAGMA synchronous=NORMAL")
    if read_only:
        connection.execute("PRAGMA query_only=ON")
    return connection


def _fetch(connection: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> list[Any]:
    """Run and finish one statement (an unfinished one would hold its snapshot or its lock)."""
    cursor = connection.execute(sql, args)
    try:
        return cursor.fetchall()
    finally:
        cursor.close()


class SqliteDriver:
    def __init__(self, path: str, *, busy_timeout_ms: int) -> None:
        self.path = path
        self._busy_timeout_ms = busy_timeout_ms
        # Bumped when a connection saw the file broken: every connection is then reopened, so a
        # restored file is read at once (a SQLite connection keeps the broken file's state).
        self._generation = 0
        self.dialect: sa.Dialect = SQLiteDialect_pysqlite()
        self.hook: StatementHook | None = None
        # One non-waiting reader per thread that runs an event loop (normally just one).
        self._loop_readers: dict[tuple[int, int], sqlite3.Connection] = {}
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._readers = ThreadPoolExecutor(2, thread_name_prefix="sqlite-read")
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-write")

    async def start(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._writer, self._thread_writer)
        self._loop_reader()

    async def one(self, statement: Statement, params: Mapping[str, Any]) -> Row | None:
        compiled = statement.compiled(self.dialect)
        rows = await self._read(statement, compiled, compiled.arguments(params))
        return compiled.row(rows[0]) if rows else None

    async def all(self, statement: Statement, params: Mapping[str, Any]) -> list[Row]:
        compiled = statement.compiled(self.dialect)
        rows = await self._read(statement, compiled, compiled.arguments(params))
        return [compiled.row(raw) for raw in rows]

    async def write(self, statement: Statement, params: Mapping[str, Any]) -> list[Row]:
        compiled = statement.compiled(self.dialect)
        args = compiled.arguments(params)
        if self.hook is not None:
            self.hook(compiled.sql)
        loop = asyncio.get_running_loop()
        try:
            with self._translated():
                rows = await loop.run_in_executor(
                    self._writer, self._write_sync, compiled.sql, args
                )
        except sqlite3.IntegrityError as error:
            raise ConstraintViolation(str(error)) from None
        return [compiled.row(raw) for raw in rows]

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """A failed autocommit statement changed nothing: its outcome is known."""
        try:
            yield
        except Exception as error:
            unavailable = self._unavailable(error)
            if unavailable is None:
                raise
            raise unavailable from error

    def _unavailable(self, error: BaseException) -> DatabaseUnavailable | None:
        unavailable = failures.translation(error)
        if unavailable is not None and failures.spoils_sqlite_connection(error):
            self._generation += 1
        return unavailable

    async def _read(
        self, statement: Statement, compiled: Compiled, args: tuple[Any, ...]
    ) -> list[Any]:
        if self.hook is not None:
            self.hook(compiled.sql)
        try:  # not `with self._translated()`: a context manager per read costs more than it
            return await self._read_once(statement, compiled, args)
        except Exception as error:
            unavailable = self._unavailable(error)
            if unavailable is None:
                raise
            raise unavailable from error

    async def _read_once(
        self, statement: Statement, compiled: Compiled, args: tuple[Any, ...]
    ) -> list[Any]:
        try:
            if not statement.scan:
                try:
                    return _fetch(self._loop_reader(), compiled.sql, args)
                except sqlite3.OperationalError as error:
                    if error.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                        raise
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._readers, self._read_sync, compiled.sql, args)
        except sqlite3.OperationalError as error:
            if "overflow" in str(error).lower():
                raise NumericOverflow(str(error)) from None
            raise

    def _loop_reader(self) -> sqlite3.Connection:
        key = (threading.get_ident(), self._generation)
        connection = self._loop_readers.get(key)
        if connection is None:
            connection = self._open(busy_timeout_ms=0, read_only=True)
            self._loop_readers[key] = connection
        return connection

    def _read_sync(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        connection = getattr(self._local, "reader", None)
        if connection is None or self._local.reader_generation != self._generation:
            self._local.reader_generation = self._generation
            connection = self._local.reader = self._open(
                busy_timeout_ms=self._busy_timeout_ms, read_only=True
            )
        return _fetch(connection, sql, args)

    def _thread_writer(self) -> sqlite3.Connection:
        connection = getattr(self._local, "writer", None)
        if connection is None or self._local.writer_generation != self._generation:
            self._local.writer_generation = self._generation
            connection = self._open(busy_timeout_ms=self._busy_timeout_ms, read_only=False)
            connection.execute("PRAGMA journal_mode=WAL")
            self._local.writer = connection
        return connection

    def _write_sync(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        # Autocommit: the statement is its own transaction, and a writing statement takes the
        # write lock when it starts (waiting up to the busy timeout), so it cannot deadlock.
        return _fetch(self._thread_writer(), sql, args)

    def _open(self, *, busy_timeout_ms: int, read_only: bool) -> sqlite3.Connection:
        connection = connect(self.path, busy_timeout_ms=busy_timeout_ms, read_only=read_only)
        with self._lock:
            self._connections.append(connection)
        return connection

    async def close(self) -> None:
        self._readers.shutdown(wait=True)
        self._writer.shutdown(wait=True)
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()
        self._loop_readers.clear()
