"""The data path on PostgreSQL: asyncpg connections and prepared statements, one round trip each.

asyncpg prepares each statement once per connection and keeps it (its statement cache), so a
hot statement is parsed and planned once, then only bound and executed. Connections come from
a lean pool of our own (storage/pg_pool.py: asyncpg's cost more CPU per checkout than the
statement) and go back without a reset query: the data path never changes session state, and
every statement is its own transaction.

With `prepared_statements` off (TENANTGATE_DATABASE_PREPARED_STATEMENTS=false, for PgBouncer in
transaction pooling mode, where consecutive statements may run on different server connections)
asyncpg keeps no statement: each one is parsed again, as an unnamed statement, on every run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg

from storage import failures
from storage.driver import Row, StatementHook
from storage.errors import ConstraintViolation, NumericOverflow
from storage.pg_pool import Pool
from storage.statements import Statement


async def _codecs(connection: asyncpg.Connection) -> None:
    """JSON travels as text, exactly as SQLAlchemy's asyncpg dialect sends and reads it."""
    await connection.set_type_codec(
        "json",
        encoder=str.encode,
        decoder=lambda data: json.loads(data.decode()),
        schema="pg_catalog",
        format="binary",
    )


def asyncpg_dsn(url: sa.URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresDriver:
    def __init__(
        self,
        url: sa.URL,
        *,
        pool_size: int,
        connect_timeout: float,
        timeout: float,
        pool_timeout: float,
        prepared_statements: bool = True,
    ) -> None:
        self._connect_timeout = connect_timeout
        # asyncpg's default cache holds 100 statements per connection; 0 turns it off.
        self._statement_cache_size = 100 if prepared_statements else 0
        self._timeout = timeout
        self.dialect: sa.Dialect = PGDialect_asyncpg()  # type: ignore[no-untyped-call]
        self.hook: StatementHook | None = None
        self._dsn = asyncpg_dsn(url)
        self._pool = Pool(self._connect, size=pool_size, wait=pool_timeout)

    async def start(self) -> None:
        """One connection now: a database out of reach fails start-up, not the first request."""
        self._pool.release(await self._pool.acquire())

    async def _connect(self) -> asyncpg.Connection:
        connection = await asyncpg.connect(
            self._dsn,
            timeout=self._connect_timeout,
            command_timeout=self._timeout,
            statement_cache_size=self._statement_cache_size,
        )
        await _codecs(connection)
        return connection

    async def one(self, statement: Statement, params: Mapping[str, Any]) -> Row | None:
        compiled = statement.compiled(self.dialect)
        args = compiled.arguments(params)
        if self.hook is not None:
            self.hook(compiled.sql)
        records = await self._fetch(compiled.sql, args, writes=False)
        return compiled.row(records[0]) if records else None

    async def all(self, statement: Statement, params: Mapping[str, Any]) -> list[Row]:
        compiled = statement.compiled(self.dialect)
        args = compiled.arguments(params)
        if self.hook is not None:
            self.hook(compiled.sql)
        try:
            records = await self._fetch(compiled.sql, args, writes=False)
        except asyncpg.NumericValueOutOfRangeError as error:
            raise NumericOverflow(str(error)) from None
        return [compiled.row(record) for record in records]

    async def write(self, statement: Statement, params: Mapping[str, Any]) -> list[Row]:
        compiled = statement.compiled(self.dialect)
        args = compiled.arguments(params)
        if self.hook is not None:
            self.hook(compiled.sql)
        try:
            records = await self._fetch(compiled.sql, args, writes=True)
        except asyncpg.IntegrityConstraintViolationError as error:
            raise ConstraintViolation(str(error)) from None
        return [compiled.row(record) for record in records]

    async def _fetch(self, sql: str, args: Sequence[Any], *, writes: bool) -> list[Any]:
        """One statement on a pooled connection, every wait bounded; an out-of-reach server is
        DatabaseUnavailable, or CommitUnknown for a write already sent (it is its own
        transaction, and a frozen server may still run it once it wakes up)."""
        # Plain try/except rather than failures.translated(): a context manager per step cost
        # more than the rest of this method.
        try:
            connection = await self._pool.acquire()
        except Exception as error:
            unavailable = failures.translation(error)
            if unavailable is None:
                raise
            raise unavailable from error
        try:
            records: list[Any] = await connection.fetch(sql, *args)
        except BaseException as error:
            unavailable = failures.translation(error, commit=writes, outcome_known=False)
            if unavailable is None:
                self._pool.release(connection)
                raise
            # Broken, or stuck behind the cancellation of a timed-out statement: not reused.
            self._pool.discard(connection)
            raise unavailable from error
        self._pool.release(connection)
        return records

    async def close(self) -> None:
        await self._pool.close()
