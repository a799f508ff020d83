"""Report bodies cached per tenant, never served after a write of the tenant's data.

Each tenant has a generation that every item write bumps (after the write committed, before its
response is sent). An entry is stored together with the generation it was computed under, and
only if that generation is still current; it is served only while it is. So a report computed
from data older than a write is never served after that write, whichever worker computed it:
a reader that raced the write stored its entry under the old generation, or not at all.

Redis when configured (shared by every worker; keys `<prefix>:{<tenant>}:reports:...`, one hash
tag per tenant), else in-process (one worker only). If Redis fails, the cache is bypassed: reads
are computed from the database, and this worker's invalidations are owed and delivered before it
uses the cache again. Entries expire after `ttl` seconds regardless, which bounds what a worker
that could not reach Redis for an invalidation can leave behind for the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio.cluster import RedisCluster

from config.settings import Settings
from storage.redis_client import REDIS_FAILURES, RedisClient, create_redis, ping
from storage.redis_wire import RedisWire, WireScript

log = logging.getLogger("tenantgate.reports")

REPORTS = ("inventory",)

# KEYS: generation, entry; ARGV: the generation it was computed under, the entry, ttl (ms)
STORE = """
if (redis.call('GET', KEYS[1]) or '0') == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
end
"""
# KEYS: generation, then every entry of the tenant; ARGV: how long the generation outlives them
INVALIDATE = """
local generation = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
for i = 2, #KEYS do redis.call('DEL', KEYS[i]) end
return generation
"""


@dataclass(frozen=True, slots=True)
class CachedReport:
    etag: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Lookup:
    """`generation` None: the cache cannot be used now (compute, and do not store)."""

    generation: int | None
    entry: CachedReport | None = None


BYPASS = Lookup(None)


class ReportCache(Protocol):
    async def lookup(self, tenant: str, report: str) -> Lookup: ...

    async def store(
        self, tenant: str, report: str, generation: int, entry: CachedReport
    ) -> None: ...

    async def invalidate(self, tenant: str) -> None:
        """Every cached report of `tenant` is out of date (call after the write committed)."""
        ...

    async def close(self) -> None: ...


class DisabledReportCache:
    """No cache (TTL 0, or several workers without Redis to tell each other of writes)."""

    async def lookup(self, tenant: str, report: str) -> Lookup:
        return BYPASS

    async def store(self, tenant: str, report: str, generation: int, entry: CachedReport) -> None:
        return None

    async def invalidate(self, tenant: str) -> None:
        return None

    async def close(self) -> None:
        return None


class MemoryReportCache:
    """In-process: exact within the one process there is (no await between check and use)."""

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._generations: dict[str, int] = {}
        self._entries: dict[tuple[str, str], tuple[int, float, CachedReport]] = {}

    async def lookup(self, tenant: str, report: str) -> Lookup:
        generation = self._generations.get(tenant, 0)
        found = self._entries.get((tenant, report))
        if found is not None and found[0] == generation and found[1] > time.monotonic():
            return Lookup(generation, found[2])
        return Lookup(generation)

    async def store(self, tenant: str, report: str, generation: int, entry: CachedReport) -> None:
        if self._generations.get(tenant, 0) == generation:
            self._entries[(tenant, report)] = (generation, time.monotonic() + self._ttl, entry)

    async def invalidate(self, tenant: str) -> None:
        self._generations[tenant] = self._generations.get(tenant, 0) + 1
        for report in REPORTS:
            self._entries.pop((tenant, report), None)

    async def close(self) -> None:
        return None


class RedisReportCache:
    """Shared by every worker; bypassed (with a background probe) while Redis fails."""

    def __init__(self, redis: RedisClient, prefix: str, *, ttl: float, cooldown: float) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl_ms = max(1, int(ttl * 1000))
        self._cooldown = cooldown
        self._store = redis.register_script(STORE)
        self._invalidate = redis.register_script(INVALIDATE)
        # One Redis: the calls of every report read and item write (a lookup, an invalidation)
        # go on a pipelined connection of their own, as admissions do (storage/redis_wire.py);
        # a cluster's go through redis-py's cluster client, which follows its slot map.
        self._wire = None if isinstance(redis, RedisCluster) else RedisWire(redis)
        self._invalidate_on_wire = (
            None if self._wire is None else WireScript(self._wire, INVALIDATE)
        )
        self._broken = False
        self._owed: set[str] = set()
        self._probe: asyncio.Task[None] | None = None

    def _key(self, tenant: str, *parts: str) -> str:
        return ":".join((self._prefix, "{" + tenant + "}", "reports", *parts))

    async def lookup(self, tenant: str, report: str) -> Lookup:
        if self._broken:
            return BYPASS
        keys = (self._key(tenant, "generation"), self._key(tenant, report))
        try:
            if self._wire is not None:
                generation, raw = await self._wire.call("MGET", *keys)
            else:
                generation, raw = await self._redis.mget(*keys)
        except REDIS_FAILURES as error:
            self._trip(error)
            return BYPASS
        current = int(generation or 0)
        if raw is None:
            return Lookup(current)
        data = raw if isinstance(raw, bytes) else raw.encode()
        stored, etag, body = data.split(b"\n", 2)
        if int(stored) != current:
            return Lookup(current)
        return Lookup(current, CachedReport(etag.decode(), body))

    async def store(self, tenant: str, report: str, generation: int, entry: CachedReport) -> None:
        if self._broken:
            return
        value = b"%d\n%s\n%s" % (generation, entry.etag.encode(), entry.body)
        keys = [self._key(tenant, "generation"), self._key(tenant, report)]
        try:
            await self._store(keys=keys, args=[generation, value, self._ttl_ms])
        except REDIS_FAILURES as error:
            self._trip(error)

    async def invalidate(self, tenant: str) -> None:
        if self._broken:
            self._owed.add(tenant)
            return
        try:
            await self._bump(tenant)
        except REDIS_FAILURES as error:
            # Delivered before this worker uses the cache again (see _recover).
            self._owed.add(tenant)
            log.error("report cache: invalidation of %s owed (%s)", tenant, type(error).__name__)
            self._trip(error)

    async def _bump(self, tenant: str) -> None:
        keys = [self._key(tenant, "generation"), *(self._key(tenant, r) for r in REPORTS)]
        # The generation outlives every entry stored under it, so a generation that expires
        # and starts again at 1 can never match an entry of an earlier 1.
        args = [2 * self._ttl_ms]
        if self._invalidate_on_wire is not None:
            await self._invalidate_on_wire(keys, args)
        else:
            await self._invalidate(keys=keys, args=args)

    def _trip(self, error: BaseException) -> None:
        if not self._broken:
            log.warning("report cache bypassed: redis unavailable (%s)", type(error).__name__)
        self._broken = True
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._recover())

    async def _recover(self) -> None:
        while self._broken:
            await asyncio.sleep(self._cooldown)
            try:
                await ping(self._redis)
                for tenant in sorted(self._owed):
                    await self._bump(tenant)
                    self._owed.discard(tenant)
            except REDIS_FAILURES:
                continue
            self._broken = False
            log.warning("report cache: redis answers again, cache in use")

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
        if self._wire is not None:
            self._wire.close()
        await self._redis.aclose()


def open_report_cache(settings: Settings) -> ReportCache:
    """Redis when configured; in-process for one worker; none for several workers without
    Redis (a worker could not tell the others of a write) or a TTL of 0."""
    if settings.report_cache_ttl == 0:
        return DisabledReportCache()
    if settings.redis_url is not None:
        return RedisReportCache(
            create_redis(settings),
            settings.redis_prefix,
            ttl=settings.report_cache_ttl,
            cooldown=settings.redis_breaker_cooldown,
        )
    if settings.workers > 1:
        log.warning("report cache off: %d workers without TENANTGATE_REDIS_URL", settings.workers)
        return DisabledReportCache()
    return MemoryReportCache(settings.report_cache_ttl)
