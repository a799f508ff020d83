"""Audit events to every worker through Redis pub/sub: one channel per tenant with listeners.

Channels are `<prefix>:{<tenant>}:audit`. A worker follows a tenant's channel (on the worker's one
pub/sub connection, storage/redis_pubsub.py) while one of its streams follows that tenant, and
publishes every event it commits; messages carry the publishing worker's id, so a worker skips
its own (it has delivered them already). Pub/sub is at most once: a message lost while Redis
restarts (or a cluster node fails over) is found by the feed's database poll instead
(storage/audit_feed.py), so Redis failures cost latency, never events.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Callable, Sequence

from redis.asyncio.cluster import RedisCluster

from config.settings import Settings
from storage.audit import Event, event_from_fields
from storage.redis_client import REDIS_FAILURES, create_redis
from storage.redis_pubsub import Subscriber

log = logging.getLogger("tenantgate.audit.stream")

MAX_PUBLISHING = 64  # batches in flight; beyond that the database poll delivers
CLOSE_SECONDS = 1.0


class RedisFanout:
    def __init__(
        self, settings: Settings, subscriber: Subscriber, deliver: Callable[[Event], None]
    ) -> None:
        assert settings.redis_url is not None
        self._prefix = settings.redis_prefix
        self._deliver = deliver
        self._origin = secrets.token_hex(8)
        self._publisher = create_redis(settings)
        self._subscriber = subscriber
        self._publishing: set[asyncio.Task[None]] = set()
        self._failing = False

    def channel(self, tenant: str) -> str:
        return f"{self._prefix}:{{{tenant}}}:audit"

    async def start(self) -> None:
        """Nothing to do until a stream follows a tenant."""

    async def subscribe(self, tenant: str) -> None:
        await self._subscriber.follow(self.channel(tenant), self._receive)

    async def unsubscribe(self, tenant: str) -> None:
        await self._subscriber.unfollow(self.channel(tenant))

    def publish(self, events: Sequence[Event]) -> None:
        """Fire and forget: a commit never waits for Redis."""
        if len(self._publishing) >= MAX_PUBLISHING:
            return
        task = asyncio.get_running_loop().create_task(self._publish(events))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def _publish(self, events: Sequence[Event]) -> None:
        messages = []
        for event in events:
            assert event.tenant is not None
            message = json.dumps({"o": self._origin, "e": event.fields()})
            messages.append((self.channel(event.tenant), message))
        try:
            if isinstance(self._publisher, RedisCluster):
                # A cluster pipeline refuses PUBLISH (it has no key): each on its own, at once.
                await asyncio.gather(*(self._publisher.publish(c, m) for c, m in messages))
            else:
                async with self._publisher.pipeline(transaction=False) as pipe:
                    for channel, message in messages:
                        pipe.publish(channel, message)
                    await pipe.execute()
        except REDIS_FAILURES as error:
            self._warn(error)
        else:
            self._failing = False

    def _receive(self, data: bytes) -> None:
        try:
            decoded = json.loads(data)
            if decoded["o"] == self._origin:
                return  # delivered locally at commit time
            event = event_from_fields(decoded["e"])
        except (ValueError, KeyError, TypeError):
            log.warning("audit stream: an unreadable message on the fan-out channel")
            return
        self._deliver(event)

    def _warn(self, error: BaseException) -> None:
        if not self._failing:
            log.warning(
                "audit stream: redis unavailable (%s); events come from the database poll",
                type(error).__name__,
            )
        self._failing = True

    async def close(self) -> None:
        tasks = list(self._publishing)
        for task in tasks:
            task.cancel()
        if tasks:
            # Bounded: redis-py can hold a cancellation back while a connection is being made.
            await asyncio.wait(tasks, timeout=CLOSE_SECONDS)
        await self._publisher.aclose()
