"""Redis GuardStore: one Lua script call per guarded request, exact across processes.

Admissions are pipelined: on one Redis over a connection of their own (storage/redis_wire.py),
where the calls of one event-loop turn share a write and a round trip; on a cluster through
redis-py's cluster pipelines, one per node (storage/redis_batch.py).

Keys are `<prefix>:{<tag>}:<kind>:...`; every key of one call shares the hash tag `{<tag>}`, so on
a Redis Cluster each script call runs in one slot, on the master that holds the tenant. Kinds:
`tenant` (hash: status, plan windows, per-client overrides), `jti:<jti>` (revoked token),
`rev:<subject>` (revision cut-off), `rl:p:<subject>` and `rl:t` (the two admission counters),
`rl:<name>` (counters of `hit`, e.g. the login limiter).
Redis must run with `maxmemory-policy noeviction`: an evicted counter would reset a limit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.asyncio.cluster import RedisCluster

from storage.guard_state import Admission, Counter, Outcome, Tally, TenantState, Verdict, Window
from storage.redis_batch import ScriptBatcher
from storage.redis_client import REDIS_FAILURES, RedisClient, Rediscovery, ping
from storage.redis_wire import RedisWire, WireScript

# Fixed windows, all or none: if any counter is at its limit nothing is counted. A counter that
# somehow lost its expiry (a script aborted between INCR and PEXPIRE) gets one again instead of
# locking its key out for ever. Reply: allowed (1/0), then hits and ms-to-reset per counter.
COUNT = """
local function count(keys, first, limits, windows)
  local reply, allowed = {}, 1
  for i = 1, #limits do
    local key = keys[first + i - 1]
    local hits = tonumber(redis.call('GET', key) or '0')
    local ttl = redis.call('PTTL', key)
    if ttl == -1 then
      redis.call('PEXPIRE', key, windows[i] * 1000)
      ttl = windows[i] * 1000
    elseif ttl < 0 then
      ttl = windows[i] * 1000
    end
    if hits >= limits[i] then allowed = 0 end
    reply[2 * i], reply[2 * i + 1] = hits, ttl
  end
  if allowed == 1 then
    for i = 1, #limits do
      local key = keys[first + i - 1]
      reply[2 * i] = redis.call('INCR', key)
      if reply[2 * i] == 1 then redis.call('PEXPIRE', key, windows[i] * 1000) end
    end
  end
  reply[1] = allowed
  return reply
end
"""

# KEYS: tenant hash, revoked jti, subject revision, principal counter, tenant counter
# ARGV: token revision, tenant-bound (0/1), override field
ADMIT = (
    COUNT
    + """
local t = redis.call('HMGET', KEYS[1], 'active', 'pl', 'pw', 'tl', 'tw', ARGV[3])
-- A missing hash means this Redis never saw the tag or lost its data: the caller re-seeds it.
if not t[1] then return {2} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {1} end
local cutoff = tonumber(redis.call('GET', KEYS[3]) or '0')
if tonumber(ARGV[1]) < cutoff then return {1} end
if ARGV[2] == '0' then return {0} end
if t[1] ~= '1' then return {3} end
local pl, pw = tonumber(t[2]), tonumber(t[3])
if t[6] then
  local sep = string.find(t[6], ' ')
  pl, pw = tonumber(string.sub(t[6], 1, sep - 1)), tonumber(string.sub(t[6], sep + 1))
end
local limits, windows = {pl, tonumber(t[4])}, {pw, tonumber(t[5])}
local counted = count(KEYS, 4, limits, windows)
local code = 4
if counted[1] == 1 then code = 0 end
return {code, limits[1], counted[2], counted[3], windows[1],
        limits[2], counted[4], counted[5], windows[2]}
"""
)

# KEYS: the counters; ARGV: limit and window (seconds) of each, in order
HIT = (
    COUNT
    + """
local limits, windows = {}, {}
for i = 1, #KEYS do
  limits[i], windows[i] = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
end
return count(KEYS, 1, limits, windows)
"""
)


class RedisGuardStore:
    def __init__(self, redis: RedisClient, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        # After any failed call a cluster's slot map is read again (a master may have failed
        # over; redis-py does so itself only after a failed single command, not a pipeline or
        # MULTI), and compared with the map of the last write that succeeded. A failover may
        # have lost the last writes a master took (replication is asynchronous): `on_failover`
        # re-seeds the state from the database.
        self.on_failover: Callable[[], None] | None = None
        self._rediscovery = Rediscovery(redis, on_change=self._failed_over)
        # Admissions: the pipelined wire on one Redis; per-node pipelines on a cluster.
        self._wire: RedisWire | None = None
        self._admit: Callable[[Sequence[str], Sequence[str | int]], Awaitable[Any]]
        if isinstance(redis, RedisCluster):
            self._admit = ScriptBatcher(redis, ADMIT, self._rediscovery)
        else:
            self._wire = RedisWire(redis)
            self._admit = WireScript(self._wire, ADMIT)
        self._hit = redis.register_script(HIT)

    def _failed_over(self) -> None:
        if self.on_failover is not None:
            self.on_failover()

    def _key(self, tag: str, *parts: str) -> str:
        return ":".join((self._prefix, "{" + tag + "}", *parts))

    async def admit(self, admission: Admission) -> Verdict:
        tag, subject = admission.tag, admission.subject
        keys = [
            self._key(tag, "tenant"),
            self._key(tag, "jti", admission.jti),
            self._key(tag, "rev", subject),
            self._key(tag, "rl", "p", subject),
            self._key(tag, "rl", "t"),
        ]
        args: list[str | int] = [admission.revision, int(admission.tenant), f"o:{subject}"]
        reply: list[Any] = await self._admit(keys, args)
        outcome = Outcome(int(reply[0]))
        if len(reply) == 1:
            return Verdict(outcome)
        values = [int(v) for v in reply[1:]]
        return Verdict(outcome, _counter(*values[0:4]), _counter(*values[4:8]))

    async def hit(self, tag: str, windows: Sequence[tuple[str, Window]]) -> Tally:
        keys = [self._key(tag, "rl", name) for name, _ in windows]
        args: list[int] = []
        for _, window in windows:
            args += [window.limit, window.seconds]
        try:
            reply: list[Any] = await self._hit(keys=keys, args=args)
        except REDIS_FAILURES:
            self._rediscovery.after_failure()
            raise
        values = [int(v) for v in reply]
        counters = tuple(
            _counter(window.limit, values[1 + 2 * i], values[2 + 2 * i], window.seconds)
            for i, (_, window) in enumerate(windows)
        )
        return Tally(values[0] == 1, counters)

    async def put_tenant(self, tag: str, state: TenantState) -> None:
        key = self._key(tag, "tenant")
        mapping: dict[str | bytes | bytearray | memoryview[int] | int | float, str | int] = {
            "active": int(state.active),
            "pl": state.principal_window.limit,
            "pw": state.principal_window.seconds,
            "tl": state.tenant_window.limit,
            "tw": state.tenant_window.seconds,
        }
        for subject, window in state.overrides.items():
            mapping[f"o:{subject}"] = f"{window.limit} {window.seconds}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping=mapping)
            await self._written(pipe.execute())

    async def revoke_token(self, tag: str, jti: str, ttl_seconds: int) -> None:
        key = self._key(tag, "jti", jti)
        await self._written(self._redis.set(key, 1, ex=max(ttl_seconds, 1)))

    async def set_subject_revision(
        self, tag: str, subject: str, revision: int, ttl_seconds: int
    ) -> None:
        key = self._key(tag, "rev", subject)
        await self._written(self._redis.set(key, revision, ex=max(ttl_seconds, 1)))

    async def _written(self, write: Awaitable[object]) -> None:
        try:
            await write
        except REDIS_FAILURES:
            self._rediscovery.after_failure()
            raise
        self._rediscovery.remember()

    async def ping(self) -> None:
        await ping(self._redis)

    async def close(self) -> None:
        if self._wire is not None:
            self._wire.close()
        await self._rediscovery.close()
        await self._redis.aclose()


def _counter(limit: int, hits: int, reset_ms: int, window: int) -> Counter:
    return Counter(limit, max(limit - hits, 0), reset_ms, window)


__all__ = ["RedisGuardStore", "Window"]
