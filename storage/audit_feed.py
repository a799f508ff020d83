"""The live audit feed of one worker: committed events to the streams that follow their tenant.

Events reach a worker three ways: from its own commits (Database.on_commit, at once), from the
other workers through Redis pub/sub (storage/audit_fanout.py, when Redis is configured), and
from a poll of the tenant's chain head every `poll_interval` seconds while a stream follows
it, which catches whatever the first two missed (a lost message, a write by the CLI). The same
poll reads the tenant's status, so streams of a suspended tenant learn of it within that time.

Each stream has a bounded inbox; one that fills (a consumer that does not keep up) is dropped,
never allowed to grow. Streams put events in `seq` order themselves: an event that arrives
ahead of one still missing makes the stream read the gap from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

import sqlalchemy as sa

from storage.audit import Event, chain_of
from storage.audit_queries import events as chain_events
from storage.database import Database
from storage.tables import audit_heads, tenants

log = logging.getLogger("tenantgate.audit.stream")

POLL_BATCH = 200
# Where a delivered event came from, for the metrics: this worker, another one, the database.
LOCAL, REMOTE, POLLED = "this_worker", "other_worker", "database"


class Transport(Protocol):
    """The cross-worker part (Redis pub/sub); none when every stream is in this worker."""

    async def start(self) -> None: ...

    async def subscribe(self, tenant: str) -> None: ...

    async def unsubscribe(self, tenant: str) -> None: ...

    def publish(self, events: Sequence[Event]) -> None: ...

    async def close(self) -> None: ...


@dataclass(eq=False)
class Listener:
    """One stream's inbox and what the feed has to tell it."""

    tenant: str
    capacity: int
    inbox: asyncio.Queue[Event] = field(init=False)
    dropped: asyncio.Event = field(default_factory=asyncio.Event)
    suspended: asyncio.Event = field(default_factory=asyncio.Event)
    attention: asyncio.Event = field(default_factory=asyncio.Event)  # either of the two

    def __post_init__(self) -> None:
        self.inbox = asyncio.Queue(self.capacity)

    def offer(self, event: Event) -> None:
        if self.dropped.is_set():
            return
        try:
            self.inbox.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped.set()
            self.attention.set()
            while not self.inbox.empty():  # let the memory go at once
                self.inbox.get_nowait()

    def suspend(self) -> None:
        self.suspended.set()
        self.attention.set()


@dataclass(eq=False)
class _Topic:
    listeners: set[Listener] = field(default_factory=set)
    head: int = 0  # the highest seq handed to listeners (or found in the chain)
    poller: asyncio.Task[None] | None = None


class AuditFeed:
    def __init__(
        self,
        database: Database,
        *,
        capacity: int,
        poll_interval: float = 0.5,
        observe: Callable[[str, int], None] | None = None,
    ) -> None:
        self._database = database
        self._capacity = capacity
        self._poll_interval = poll_interval
        self._observe = observe
        self._topics: dict[str, _Topic] = {}
        self._opening = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        self.transport: Transport | None = None

    def listeners(self) -> int:
        return sum(len(topic.listeners) for topic in self._topics.values())

    async def start(self) -> None:
        if self.transport is not None:
            await self.transport.start()

    def committed(self, items: Sequence[object]) -> None:
        """Database.on_commit: hand this worker's new tenant events out, and to the others.

        Runs after the commit, in the writer's path: it must never fail the write (the poll
        delivers what is lost here)."""
        events = [item for item in items if isinstance(item, Event) and item.tenant is not None]
        if not events:
            return
        try:
            for event in events:
                self._dispatch(event, LOCAL)
            if self.transport is not None:
                self.transport.publish(events)
        except Exception as error:  # noqa: BLE001 - the write stands; the poll catches up
            log.error("audit stream: handing events out failed (%s)", type(error).__name__)

    def deliver(self, event: Event) -> None:
        """An event another worker committed."""
        self._dispatch(event, REMOTE)

    def _dispatch(self, event: Event, origin: str) -> None:
        topic = self._topics.get(event.tenant or "")
        if topic is None or not topic.listeners:
            return
        topic.head = max(topic.head, event.seq)
        for listener in list(topic.listeners):
            listener.offer(event)
        if self._observe is not None:
            self._observe(origin, len(topic.listeners))

    @asynccontextmanager
    async def subscribe(self, tenant: str) -> AsyncIterator[Listener]:
        """A listener for `tenant`'s events from now on (read the past with `after`)."""
        listener = Listener(tenant, self._capacity)
        async with self._opening:
            topic = self._topics.get(tenant)
            if topic is None:
                topic = _Topic(head=await self.head(tenant))
                if self.transport is not None:
                    await self.transport.subscribe(tenant)
                topic.poller = asyncio.get_running_loop().create_task(self._poll(tenant, topic))
                self._topics[tenant] = topic
            topic.listeners.add(listener)
        try:
            yield listener
        finally:
            self.leave(listener)

    def leave(self, listener: Listener) -> None:
        """Stop feeding `listener` (also done when its subscription ends)."""
        topic = self._topics.get(listener.tenant)
        if topic is None or listener not in topic.listeners:
            return
        topic.listeners.discard(listener)
        if not topic.listeners:
            del self._topics[listener.tenant]
            if topic.poller is not None:
                topic.poller.cancel()
            if self.transport is not None:
                task = asyncio.get_running_loop().create_task(
                    self.transport.unsubscribe(listener.tenant)
                )
                self._background.add(task)
                task.add_done_callback(self._background.discard)

    async def head(self, tenant: str) -> int:
        """The seq of the tenant's latest committed event (0: none yet)."""
        async with self._database.read() as connection:
            seq = (
                await connection.execute(
                    sa.select(audit_heads.c.seq).where(audit_heads.c.chain == chain_of(tenant))
                )
            ).scalar_one_or_none()
        return int(seq or 0)

    async def after(self, tenant: str, seq: int, limit: int = POLL_BATCH) -> list[Event]:
        """Committed events of `tenant` after `seq`, oldest first."""
        async with self._database.read() as connection:
            return await chain_events(connection, tenant, after_seq=seq, limit=limit)

    async def _poll(self, tenant: str, topic: _Topic) -> None:
        query = (
            sa.select(tenants.c.status, audit_heads.c.seq)
            .select_from(tenants)
            .outerjoin(audit_heads, audit_heads.c.chain == tenants.c.slug)
            .where(tenants.c.slug == tenant)
        )
        while topic.listeners:
            await asyncio.sleep(self._poll_interval)
            try:
                async with self._database.read() as connection:
                    row = (await connection.execute(query)).first()
                if row is None or row.status != "active":
                    for listener in topic.listeners:
                        listener.suspend()
                    continue
                while int(row.seq or 0) > topic.head and topic.listeners:
                    missed = await self.after(tenant, topic.head)
                    if not missed:
                        break
                    for event in missed:
                        self._dispatch(event, POLLED)
            except Exception as error:  # noqa: BLE001 - the next poll tries again
                log.warning("audit stream: polling %s failed (%s)", tenant, type(error).__name__)

    async def close(self) -> None:
        for topic in self._topics.values():
            if topic.poller is not None:
                topic.poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await topic.poller
        self._topics.clear()
        if self.transport is not None:
            await self.transport.close()
