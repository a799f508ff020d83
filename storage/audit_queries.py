"""Reading the audit trail: filtered pages in chain order, and verification of a whole chain."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.audit import GENESIS_HASH, Event, chain_of, event_from_row
from storage.database import Database
from storage.tables import audit_events, audit_heads

BATCH = 500


@dataclass(frozen=True, slots=True)
class EventFilter:
    """`since` is inclusive, `until` exclusive; `actor` is the actor's subject."""

    action: str | None = None
    actor: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None


async def events(
    connection: AsyncConnection,
    tenant: str | None,
    filters: EventFilter = EventFilter(),
    *,
    after_seq: int = 0,
    limit: int = 100,
) -> list[Event]:
    """Up to `limit` events of the tenant's chain (None: the platform's) after `after_seq`."""
    table = audit_events
    query = sa.select(table).where(table.c.chain == chain_of(tenant), table.c.seq > after_seq)
    if filters.action is not None:
        query = query.where(table.c.action == filters.action)
    if filters.actor is not None:
        query = query.where(table.c.actor_subject == filters.actor)
    if filters.outcome is not None:
        query = query.where(table.c.outcome == filters.outcome)
    if filters.since is not None:
        query = query.where(table.c.occurred_at >= filters.since)
    if filters.until is not None:
        query = query.where(table.c.occurred_at < filters.until)
    rows = await connection.execute(query.order_by(table.c.seq).limit(limit))
    return [event_from_row(row) for row in rows]


async def all_events(
    database: Database, tenant: str | None, filters: EventFilter = EventFilter()
) -> AsyncIterator[Event]:
    """Every matching event, read in batches on short-lived connections (for exports).

    Appends commit in `seq` order (the head lock is held until commit), so paging by `seq`
    never skips an event that commits while the export runs.
    """
    after = 0
    while True:
        async with database.read() as connection:
            batch = await events(connection, tenant, filters, after_seq=after, limit=BATCH)
        for event in batch:
            yield event
        if len(batch) < BATCH:
            return
        after = batch[-1].seq


@dataclass(frozen=True, slots=True)
class Break:
    """The first broken link: `seq` is where the chain stops being trustworthy."""

    seq: int
    event_id: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class Verification:
    """`checked` events verified in order from seq 1; `last_hash` is the last one's hash
    (64 zeros when none), so `checked` is also the seq of the last verified event."""

    chain: str
    checked: int
    last_hash: str
    broken: Break | None

    @property
    def ok(self) -> bool:
        return self.broken is None


class _Walk:
    """Checks events one by one, in the order given; stops at the first broken link."""

    def __init__(self) -> None:
        self.expected = 1
        self.prev_hash = GENESIS_HASH
        self.checked = 0
        self.broken: Break | None = None

    def feed(self, events: Iterable[Event]) -> None:
        for event in events:
            if self.broken is not None:
                return
            self.broken = self._check(event)
            if self.broken is None:
                self.checked += 1
                self.expected += 1
                self.prev_hash = event.hash

    def _check(self, event: Event) -> Break | None:
        if event.seq != self.expected:
            return Break(
                self.expected,
                None,
                f"event {self.expected} is missing (the next stored event is {event.seq})",
            )
        if event.computed_hash() != event.hash:
            return Break(event.seq, event.id, "the event's contents do not match its hash")
        if event.prev_hash != self.prev_hash:
            return Break(
                event.seq,
                event.id,
                f"prev_hash does not match the hash of event {event.seq - 1} "
                "(reordered, or an earlier event was replaced)",
            )
        return None

    def finish(self, head_seq: int, head_hash: str) -> None:
        if self.broken is not None:
            return
        if head_seq > self.checked:
            self.broken = Break(
                self.checked + 1,
                None,
                f"the chain head records {head_seq} events but only {self.checked} are stored "
                "(events were deleted from the end, or the head was altered)",
            )
        elif head_seq < self.checked:
            self.broken = Break(
                head_seq + 1,
                None,
                f"events after {head_seq} lie past the chain head "
                "(written without the chain lock, or the head was altered)",
            )
        elif head_hash != self.prev_hash:
            self.broken = Break(
                head_seq, None, f"the chain head's hash differs from event {head_seq}'s"
            )


def verify_events(events: Iterable[Event], chain: str = "export") -> Verification:
    """Verify an unfiltered export (in seq order) offline; the head is not in it, so a
    truncated end goes unnoticed here: compare the last hash with `audit verify` for that."""
    walk = _Walk()
    walk.feed(events)
    return Verification(chain, walk.checked, walk.prev_hash, walk.broken)


async def verify(database: Database, tenant: str | None) -> Verification:
    """Walk the whole chain in `seq` order and compare its end with the chain head.

    One snapshot (REPEATABLE READ on PostgreSQL, a read transaction on SQLite) so a concurrent
    append cannot make a sound chain look broken.
    """
    chain = chain_of(tenant)
    walk = _Walk()
    async with database.snapshot() as connection:
        while walk.broken is None:
            batch = await events(connection, tenant, after_seq=walk.checked, limit=BATCH)
            walk.feed(batch)
            if len(batch) < BATCH:
                break
        head = (
            await connection.execute(
                sa.select(audit_heads.c.seq, audit_heads.c.hash).where(audit_heads.c.chain == chain)
            )
        ).first()
        walk.finish(*((0, GENESIS_HASH) if head is None else (int(head.seq), str(head.hash))))
    return Verification(chain, walk.checked, walk.prev_hash, walk.broken)
