"""What a write transaction produced, handed on once it has committed.

Storage code that writes something others should hear of (an audit event, for the live stream)
notes it with `note()`; Database.write() collects the notes of its transaction and gives them to
its commit listener after the commit, never for a transaction that rolled back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_pending: ContextVar[list[object] | None] = ContextVar("tenantgate_committed", default=None)


def note(item: object) -> None:
    """Hand `item` on if the current write transaction commits (dropped outside of one)."""
    pending = _pending.get()
    if pending is not None:
        pending.append(item)


@contextmanager
def collecting() -> Iterator[list[object]]:
    """The notes of one transaction; a nested one collects its own."""
    pending: list[object] = []
    token = _pending.set(pending)
    try:
        yield pending
    finally:
        _pending.reset(token)
