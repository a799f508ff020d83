"""The base of every domain error, and storage's own: missing row, conflict, stale version."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error that api/errors.py maps to a documented response."""


class NotFound(DomainError):
    def __init__(self, resource: str) -> None:
        super().__init__(f"{resource} not found")
        self.resource = resource


class Conflict(DomainError):
    """A unique value is taken (e.g. a SKU within a tenant)."""


class PreconditionFailed(DomainError):
    """If-Match named a version that is no longer current."""


class InvalidText(DomainError):
    """Input the database cannot store (a NUL character), refused before the query runs."""


class ConstraintViolation(Exception):
    """A write broke a unique or foreign-key constraint; the query function names the conflict."""


class NumericOverflow(Exception):
    """The database could not compute a value exactly (SQLite sums in 64-bit integers)."""


class DatabaseUnavailable(DomainError):
    """The database cannot serve now (down, hung, full, locked, unreadable); nothing was changed.

    The message names the failure for operators (error class and code, never SQL parameters).
    """

    safe_to_log = True


class CommitUnknown(DatabaseUnavailable):
    """The connection failed while COMMIT was in flight: the change may or may not be stored."""
