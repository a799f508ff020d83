"""One pub/sub connection per worker for every channel it follows, made again after a failure.

Channels: the audit fan-out's `<prefix>:{<tenant>}:audit` (storage/audit_fanout.py) and the
signing keys' `<prefix>:keys` (auth/keys.py). Classic PUBLISH/SUBSCRIBE: on a Redis Cluster a
message published on any node reaches subscribers on every node, so the connection goes to one
node, picked at random, and to another one after a failure.

Pub/sub is at most once: what is published while the connection is down is lost. Followers say
how they make up for it (`on_connect`, called after every connection, the first included): the
audit feed polls the database anyway; the key ring re-reads the key table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from config.settings import Settings
from storage.redis_client import REDIS_FAILURES, Rediscovery, create_redis, subscriber_url

log = logging.getLogger("tenantgate.redis")

RECONNECT_SECONDS = 0.5
CLOSE_SECONDS = 1.0

Handler = Callable[[bytes], None]


class Subscriber:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client = create_redis(settings)  # to find a node of a cluster
        self._rediscovery = Rediscovery(self._client)
        self._control = f"{settings.redis_prefix}:_control"  # keeps the connection subscribed
        self._handlers: dict[str, Handler] = {}
        self._on_connect: list[Callable[[], None]] = []
        self._connection: Redis | None = None
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._failing = False

    def on_connect(self, callback: Callable[[], None]) -> None:
        self._on_connect.append(callback)

    async def follow(self, channel: str, handler: Handler) -> None:
        self._handlers[channel] = handler
        if self._reader is None:
            self._reader = asyncio.get_running_loop().create_task(self._read(), name="pubsub")
        elif self._pubsub is not None:
            with contextlib.suppress(*REDIS_FAILURES):  # the reader subscribes on reconnect
                await self._pubsub.subscribe(channel)

    async def unfollow(self, channel: str) -> None:
        self._handlers.pop(channel, None)
        if self._pubsub is not None:
            with contextlib.suppress(*REDIS_FAILURES):
                await self._pubsub.unsubscribe(channel)

    async def _read(self) -> None:
        while True:
            try:
                if self._pubsub is None:
                    await self._connect()
                assert self._pubsub is not None
                message = await self._pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=1.0
                )
            except REDIS_FAILURES as error:
                self._warn(error)
                await self._drop()
                self._rediscovery.after_failure()
                await asyncio.sleep(RECONNECT_SECONDS)
                continue
            if message is not None and message.get("type") == "message":
                channel = message["channel"]
                name = channel.decode() if isinstance(channel, bytes) else str(channel)
                handler = self._handlers.get(name)
                if handler is not None:
                    handler(message["data"])

    async def _connect(self) -> None:
        url = await subscriber_url(self._settings, self._client)
        # Reads wait for messages with their own timeout; commands (SUBSCRIBE) fail fast.
        connection: Redis = Redis.from_url(
            url,
            socket_connect_timeout=self._settings.redis_timeout,
            socket_timeout=max(self._settings.redis_timeout, 1.0),
            health_check_interval=30,
        )
        pubsub = connection.pubsub(ignore_subscribe_messages=True)
        try:
            subscribed = set(self._handlers)
            await pubsub.subscribe(self._control, *sorted(subscribed))
            # Channels followed while SUBSCRIBE was on its way (follow() saw no connection).
            while missing := set(self._handlers) - subscribed:
                subscribed |= missing
                await pubsub.subscribe(*sorted(missing))
        except BaseException:
            await _close(connection, pubsub)
            raise
        self._connection, self._pubsub = connection, pubsub
        if self._failing:
            log.warning("pub/sub: redis answers again")
        self._failing = False
        for callback in self._on_connect:
            callback()

    def _warn(self, error: BaseException) -> None:
        if not self._failing:
            log.warning(
                "pub/sub: redis unavailable (%s); audit events come from the database poll, "
                "key rotations from the periodic re-read",
                type(error).__name__,
            )
        self._failing = True

    async def _drop(self) -> None:
        connection, pubsub = self._connection, self._pubsub
        self._connection = self._pubsub = None
        if connection is not None and pubsub is not None:
            await _close(connection, pubsub)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            # Bounded: redis-py can hold a cancellation back while a connection is being made.
            await asyncio.wait([self._reader], timeout=CLOSE_SECONDS)
        await self._drop()
        await self._rediscovery.close()
        await self._client.aclose()


async def _close(connection: Redis, pubsub: PubSub) -> None:
    with contextlib.suppress(*REDIS_FAILURES):
        await pubsub.aclose()  # type: ignore[no-untyped-call]
    with contextlib.suppress(*REDIS_FAILURES):
        await connection.aclose()
