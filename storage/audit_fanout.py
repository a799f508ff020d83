"""Audit events to every worker through Redis pub/sub: one channel per tenant with listeners.

Channels are `<prefix>:{<tenant>}:audit`. A worker subscribes to a tenant's channel while one of
its streams follows that tenant, and publishes every event it commits; messages carry the
publishing worker's id, so a worker skips its own (it has delivered them already). Pub/sub is
at most once: a message lost while Redis restarts is found by the feed's database poll instead
(storage/audit_feed.py), so Redis failures cost latency, never events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable, Sequence

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from config.settings import Settings
from storage.audit import Event, event_from_fields
from storage.guard_failover import REDIS_FAILURES
from storage.redis_client import create_redis

log = logging.getLogger("tenantgate.audit.stream")

MAX_PUBLISHING = 64  # batches in flight; beyond that the database poll delivers
RECONNECT_SECONDS = 0.5
CLOSE_SECONDS = 1.0


class RedisFanout:
    def __init__(self, settings: Settings, deliver: Callable[[Event], None]) -> None:
        assert settings.redis_url is not None
        self._prefix = settings.redis_prefix
        self._deliver = deliver
        self._origin = secrets.token_hex(8)
        self._publisher = create_redis(settings)
        # Reads wait for messages with their own timeout; commands (SUBSCRIBE) fail fast.
        self._subscriber = Redis.from_url(
            settings.redis_url,
            socket_connect_timeout=settings.redis_timeout,
            socket_timeout=max(settings.redis_timeout, 1.0),
            health_check_interval=30,
        )
        self._control = f"{self._prefix}:audit:_control"  # keeps the connection subscribed
        self._channels: set[str] = set()
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._publishing: set[asyncio.Task[None]] = set()
        self._failing = False

    def channel(self, tenant: str) -> str:
        return f"{self._prefix}:{{{tenant}}}:audit"

    async def start(self) -> None:
        """Nothing to do until a stream follows a tenant: a worker without streams holds no
        pub/sub connection."""

    async def subscribe(self, tenant: str) -> None:
        channel = self.channel(tenant)
        self._channels.add(channel)
        if self._reader is None:
            self._reader = asyncio.get_running_loop().create_task(self._read(), name="audit-fanout")
        elif self._pubsub is not None:
            with contextlib.suppress(*REDIS_FAILURES):  # the reader re-subscribes on reconnect
                await self._pubsub.subscribe(channel)

    async def unsubscribe(self, tenant: str) -> None:
        channel = self.channel(tenant)
        self._channels.discard(channel)
        if self._pubsub is not None:
            with contextlib.suppress(*REDIS_FAILURES):
                await self._pubsub.unsubscribe(channel)

    def publish(self, events: Sequence[Event]) -> None:
        """Fire and forget: a commit never waits for Redis."""
        if len(self._publishing) >= MAX_PUBLISHING:
            return
        task = asyncio.get_running_loop().create_task(self._publish(events))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def _publish(self, events: Sequence[Event]) -> None:
        try:
            async with self._publisher.pipeline(transaction=False) as pipe:
                for event in events:
                    assert event.tenant is not None
                    message = json.dumps({"o": self._origin, "e": event.fields()})
                    pipe.publish(self.channel(event.tenant), message)
                await pipe.execute()
        except REDIS_FAILURES as error:
            self._warn(error)
        else:
            self._failing = False

    async def _read(self) -> None:
        while True:
            try:
                if self._pubsub is None:
                    pubsub = self._subscriber.pubsub(ignore_subscribe_messages=True)
                    await pubsub.subscribe(self._control, *sorted(self._channels))
                    self._pubsub = pubsub
                    self._failing = False
                message = await self._pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=1.0
                )
            except REDIS_FAILURES as error:
                self._warn(error)
                await self._drop_pubsub()
                await asyncio.sleep(RECONNECT_SECONDS)
                continue
            if message is not None and message.get("type") == "message":
                self._receive(message["data"])

    def _receive(self, data: bytes | str) -> None:
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

    async def _drop_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(*REDIS_FAILURES):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        tasks = [*self._publishing, *([self._reader] if self._reader else [])]
        for task in tasks:
            task.cancel()
        if tasks:
            # Bounded: redis-py can hold a cancellation back while a connection is being made.
            await asyncio.wait(tasks, timeout=CLOSE_SECONDS)
        await self._drop_pubsub()
        await self._subscriber.aclose()
        await self._publisher.aclose()
