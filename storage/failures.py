"""Driver and SQLAlchemy errors that mean "the database is out of reach" -> DatabaseUnavailable.

One place decides, for every path to the database (SQLAlchemy engines, raw asyncpg, stdlib
sqlite3): a refused, reset or timed-out connection, a server shutting down or out of resources,
and on SQLite a lock held past the busy timeout, a full disk, an I/O error or a file that is not
a database. Anything else (a constraint, a syntax error, a missing table) is a bug or a domain
error and passes through untouched.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
import sqlalchemy.exc

from storage.errors import CommitUnknown, DatabaseUnavailable, DomainError

# SQLSTATE classes and codes of an unreachable or unwell server (PostgreSQL appendix A).
_POSTGRES_CLASSES = ("08", "53", "58")  # connection exception, resources, system error
_POSTGRES_CODES = frozenset(
    {"57014", "57P01", "57P02", "57P03", "57P04", "57P05", "25006"}
)  # cancelled by timeout, shutdown, crash, starting up, idle timeouts, read-only (a standby)
# SQLite primary result codes (https://sqlite.org/rescode.html) that are the file or its lock.
_SQLITE_CODES = {
    3: "SQLITE_PERM",
    5: "SQLITE_BUSY",
    6: "SQLITE_LOCKED",
    7: "SQLITE_NOMEM",
    8: "SQLITE_READONLY",
    10: "SQLITE_IOERR",
    11: "SQLITE_CORRUPT",
    13: "SQLITE_FULL",
    14: "SQLITE_CANTOPEN",
    15: "SQLITE_PROTOCOL",
    26: "SQLITE_NOTADB",
}

# Of those, the codes where the connection itself is spoiled (it keeps the broken file's state):
# drop it, and the next one opens the file afresh (e.g. once it is restored).
_SQLITE_RECONNECT = frozenset({3, 10, 11, 14, 15, 26})


def unavailability(error: BaseException) -> str | None:
    """Why `error` means the database is out of reach (for the log), or None if it does not."""
    for cause in _causes(error):
        reason = _reason(cause)
        if reason is not None:
            return reason
    return None


def _causes(error: BaseException) -> Iterator[BaseException]:
    """The error, the driver error SQLAlchemy wrapped, and their causes."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending.extend([getattr(current, "orig", None), current.__cause__])


def _reason(error: BaseException) -> str | None:
    name = type(error).__name__
    if isinstance(error, sqlalchemy.exc.TimeoutError):
        return "no pooled connection within the connect timeout"
    if isinstance(error, sqlalchemy.exc.DBAPIError) and error.connection_invalidated:
        return f"{name}: connection lost"
    if isinstance(error, sqlite3.Error):
        code = getattr(error, "sqlite_errorcode", None)
        label = _SQLITE_CODES.get(code & 0xFF) if isinstance(code, int) else None
        return f"sqlite3.{name} ({label})" if label else None
    if isinstance(error, asyncpg.PostgresError):
        state = str(getattr(error, "sqlstate", "") or "")
        if state.startswith(_POSTGRES_CLASSES) or state in _POSTGRES_CODES:
            return f"asyncpg.{name} (SQLSTATE {state})"
        return None
    if isinstance(error, asyncpg.InterfaceError | asyncpg.exceptions.InternalClientError):
        return f"asyncpg.{name}"  # closed connection, or one stuck behind a timed-out command
    if isinstance(error, TimeoutError):
        return "TimeoutError: no answer within the database timeout"
    if isinstance(error, OSError):
        return f"{name}: {error.strerror or 'connection failed'}"
    return None


def spoils_sqlite_connection(error: BaseException) -> bool:
    """A SQLite error after which the connection must be dropped and the file opened again."""
    code = getattr(error, "sqlite_errorcode", None)
    return (
        isinstance(error, sqlite3.Error)
        and isinstance(code, int)
        and (code & 0xFF in _SQLITE_RECONNECT)
    )


def invalidate_spoiled_connection(context: sqlalchemy.engine.ExceptionContext) -> None:
    """SQLAlchemy `handle_error` hook: a SQLite file-level failure drops the pooled connection."""
    if spoils_sqlite_connection(context.original_exception):
        context.is_disconnect = True


def translation(
    error: BaseException, *, commit: bool = False, outcome_known: bool = True
) -> DatabaseUnavailable | None:
    """What to raise instead of `error` (from it): DatabaseUnavailable when the database is
    out of reach, CommitUnknown for a failed commit whose outcome the backend does not report
    (SQLite does: a failed COMMIT leaves nothing committed); None when `error` is something
    else and stands as it is. The drivers' hot paths call this from a plain `except`."""
    if isinstance(error, DomainError) or not isinstance(error, Exception):
        return None
    reason = unavailability(error)
    if reason is None:
        return None
    if commit and not outcome_known:
        return CommitUnknown(f"commit outcome unknown: {reason}")
    return DatabaseUnavailable(reason)


@contextmanager
def translated(*, commit: bool = False, outcome_known: bool = True) -> Iterator[None]:
    """Re-raise an out-of-reach database as DatabaseUnavailable (see `translation`)."""
    try:
        yield
    except Exception as error:
        translated_error = translation(error, commit=commit, outcome_known=outcome_known)
        if translated_error is None:
            raise
        raise translated_error from error
