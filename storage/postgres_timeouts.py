"""asyncpg connection arguments that bound every wait on a server that is down or hung.

`timeout` bounds opening a connection and `command_timeout` every statement. One more wait hides
in SQLAlchemy: a connection it invalidates is first closed gracefully, for up to 2 s, which on a
frozen server adds 2 s to the 503. A broken connection has nothing worth waiting for, so this
connection class caps the graceful close (asyncpg's `connection_class` hook), and a close that
runs out of time is not an error: asyncpg has dropped the connection by then. (SQLAlchemy logs
any exception a close raises at ERROR, and it closes connections in normal work too, e.g. the
pool's overflow: a soak on a busy machine logged those as errors.)
"""

from __future__ import annotations

from typing import Any

import asyncpg

from config.settings import Settings

# Enough for the Terminate message and the server's EOF on a healthy connection.
CLOSE_TIMEOUT = 0.25


class QuickClosingConnection(asyncpg.Connection):  # type: ignore[misc]
    async def close(self, *, timeout: float | None = None) -> None:  # noqa: ASYNC109 - asyncpg's signature
        capped = CLOSE_TIMEOUT if timeout is None else min(timeout, CLOSE_TIMEOUT)
        try:
            await super().close(timeout=capped)
        except TimeoutError:
            # The server did not answer the goodbye in time; asyncpg has already aborted the
            # connection (its socket is closed), which is all a close must achieve.
            return


def connect_args(settings: Settings) -> dict[str, Any]:
    """For the engine: its writes are the audited ones, which queue on their chain's lock, and a
    wait in that queue is not an outage, so they get the lock allowance (the data path's
    single statements keep TENANTGATE_DATABASE_TIMEOUT)."""
    arguments: dict[str, Any] = {
        "timeout": settings.database_connect_timeout,
        "command_timeout": max(settings.database_timeout, settings.database_busy_timeout),
        "connection_class": QuickClosingConnection,
    }
    if not settings.database_prepared_statements:
        arguments.update(without_named_statements())
    return arguments


def without_named_statements() -> dict[str, Any]:
    """For a pooler in transaction mode: no statement cache in asyncpg or SQLAlchemy, and the
    statements SQLAlchemy prepares (to learn their result columns) unnamed. asyncpg parses an
    unnamed statement again in the same message as its run when its cache is off, so it never
    relies on finding it on the server connection; and the next one replaces it there, so none
    piles up (named ones, even with unique names, would stay on the server connection)."""
    return {
        "statement_cache_size": 0,
        "prepared_statement_cache_size": 0,
        "prepared_statement_name_func": _unnamed,
    }


def _unnamed() -> str:
    return ""
