"""The data path's one interface to the database, implemented once per backend.

Query functions (storage/items.py) are written once against `Driver`; `open_driver` picks the
module for the configured URL: stdlib `sqlite3` (storage/driver_sqlite.py) or asyncpg
(storage/driver_postgres.py). SQLAlchemy's async engine stays for the rest of storage (admin,
audit, migrations), where a statement's cost does not matter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import sqlalchemy as sa

from storage.statements import Statement

Row = tuple[Any, ...]
# Called with the SQL of every statement the driver runs (tests count statements with it).
StatementHook = Callable[[str], None]


class Driver(Protocol):
    dialect: sa.Dialect
    hook: StatementHook | None

    async def one(self, statement: Statement, params: Mapping[str, Any]) -> Row | None:
        """The first row of a read, in autocommit: it sees every committed write."""
        ...

    async def all(self, statement: Statement, params: Mapping[str, Any]) -> list[Row]: ...

    async def write(self, statement: Statement, params: Mapping[str, Any]) -> list[Row]:
        """One statement that is its own transaction (committed when this returns); its
        RETURNING rows. A broken constraint is a ConstraintViolation."""
        ...

    async def start(self) -> None:
        """Open connections now (at start-up) rather than on the first request."""
        ...

    async def close(self) -> None: ...


def open_driver(
    url: sa.URL,
    *,
    pool_size: int,
    connect_timeout: float = 5.0,
    timeout: float = 30.0,
    pool_timeout: float = 30.0,
    busy_timeout: float = 30.0,
    prepared_statements: bool = True,
) -> Driver:
    """Every wait bounded: opening a connection, a statement, a pooled connection (PostgreSQL),
    the write lock (SQLite); past them the database is unavailable (a 503)."""
    if url.get_backend_name() == "sqlite":
        from storage.driver_sqlite import SqliteDriver

        return SqliteDriver(url.database or "", busy_timeout_ms=round(busy_timeout * 1000))
    from storage.driver_postgres import PostgresDriver

    return PostgresDriver(
        url,
        pool_size=pool_size,
        connect_timeout=connect_timeout,
        timeout=timeout,
        pool_timeout=pool_timeout,
        prepared_statements=prepared_statements,
    )
