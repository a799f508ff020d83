"""Redis GuardStore: one Lua script call per guarded request, exact across processes.

All keys of one call share the hash tag `{tag}`, so the script also runs on Redis Cluster.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from storage.guard_state import Admission, Counter, Outcome, TenantState, Verdict, Window

# KEYS: tenant hash, revoked jti, subject revision, principal counter, tenant counter
# ARGV: token revision, tenant-bound (0/1), override field
ADMIT = """
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
local limits = {pl, tonumber(t[4])}
local windows = {pw, tonumber(t[5])}
local hits, ttls = {}, {}
local code = 0
for i = 1, 2 do
  hits[i] = tonumber(redis.call('GET', KEYS[3 + i]) or '0')
  ttls[i] = redis.call('PTTL', KEYS[3 + i])
  if ttls[i] < 0 then ttls[i] = windows[i] * 1000 end
  if hits[i] >= limits[i] then code = 4 end
end
if code == 0 then
  for i = 1, 2 do
    hits[i] = redis.call('INCR', KEYS[3 + i])
    if hits[i] == 1 then redis.call('PEXPIRE', KEYS[3 + i], windows[i] * 1000) end
  end
end
return {code, limits[1], hits[1], ttls[1], windows[1], limits[2], hits[2], ttls[2], windows[2]}
"""


class RedisGuardStore:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._admit = redis.register_script(ADMIT)

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
        reply: list[Any] = await self._admit(keys=keys, args=args)
        outcome = Outcome(int(reply[0]))
        if len(reply) == 1:
            return Verdict(outcome)
        values = [int(v) for v in reply[1:]]
        return Verdict(outcome, _counter(values[0:4]), _counter(values[4:8]))

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
            await pipe.execute()

    async def revoke_token(self, tag: str, jti: str, ttl_seconds: int) -> None:
        await self._redis.set(self._key(tag, "jti", jti), 1, ex=max(ttl_seconds, 1))

    async def set_subject_revision(
        self, tag: str, subject: str, revision: int, ttl_seconds: int
    ) -> None:
        await self._redis.set(self._key(tag, "rev", subject), revision, ex=max(ttl_seconds, 1))

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()


def _counter(values: list[int]) -> Counter:
    limit, hits, reset_ms, window = values
    return Counter(limit, max(limit - hits, 0), reset_ms, window)


__all__ = ["RedisGuardStore", "Window"]
