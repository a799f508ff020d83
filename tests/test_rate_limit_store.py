"""The guard stores count exactly the same way: in-process (embedded default) and Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from storage.guard_memory import MemoryGuardStore
from storage.guard_redis import RedisGuardStore
from storage.guard_state import (
    Admission,
    Counter,
    GuardStore,
    Outcome,
    TenantState,
    Window,
)

STATE = TenantState(True, Window(3, 60), Window(5, 60), {"client:big": Window(10, 30)})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[GuardStore]:
    if request.param == "memory":
        yield MemoryGuardStore()
        return
    url: str = request.getfixturevalue("redis_url")
    prefix: str = request.getfixturevalue("redis_prefix")
    redis_store = RedisGuardStore(Redis.from_url(url), prefix)
    yield redis_store
    await redis_store.close()


def admission(subject: str = "usr_1", tag: str = "acme", jti: str = "j1") -> Admission:
    return Admission(tag=tag, jti=jti, subject=subject, revision=5, tenant=True)


async def test_principal_counter_counts_down_then_limits(store: GuardStore) -> None:
    await store.put_tenant("acme", STATE)
    remaining = []
    for _ in range(3):
        verdict = await store.admit(admission())
        assert verdict.outcome is Outcome.OK
        assert verdict.principal is not None
        remaining.append(verdict.principal.remaining)
    assert remaining == [2, 1, 0]
    limited = await store.admit(admission())
    assert limited.outcome is Outcome.LIMITED
    assert limited.principal is not None
    assert limited.tenant is not None
    assert (limited.principal.limit, limited.principal.remaining) == (3, 0)
    assert 0 < limited.principal.reset_ms <= 60_000
    # A rejected request is counted nowhere: the tenant counter still shows 3 of 5 used.
    assert (limited.tenant.limit, limited.tenant.remaining) == (5, 2)


async def test_tenant_counter_spans_principals(store: GuardStore) -> None:
    await store.put_tenant("acme", STATE)
    outcomes = [(await store.admit(admission(f"usr_{i}"))).outcome for i in range(7)]
    assert outcomes == [Outcome.OK] * 5 + [Outcome.LIMITED] * 2


async def test_override_replaces_the_principal_window(store: GuardStore) -> None:
    await store.put_tenant(
        "acme", TenantState(True, Window(1, 60), Window(100, 60), STATE.overrides)
    )
    verdict = await store.admit(admission("client:big"))
    assert verdict.principal == Counter(10, 9, 30_000, 30)
    assert (await store.admit(admission("client:big"))).outcome is Outcome.OK


async def test_tenants_are_isolated(store: GuardStore) -> None:
    await store.put_tenant("acme", STATE)
    await store.put_tenant("beta", STATE)
    for _ in range(5):
        await store.admit(admission(tag="acme", subject=f"usr_{_}"))
    assert (await store.admit(admission(tag="acme"))).outcome is Outcome.LIMITED
    verdict = await store.admit(admission(tag="beta"))
    assert verdict.outcome is Outcome.OK
    assert verdict.tenant is not None
    assert verdict.tenant.remaining == 4


async def test_revocation_suspension_and_unknown_tenant(store: GuardStore) -> None:
    assert (await store.admit(admission())).outcome is Outcome.UNKNOWN_TENANT
    await store.put_tenant("acme", STATE)
    await store.revoke_token("acme", "j1", 60)
    assert (await store.admit(admission(jti="j1"))).outcome is Outcome.REVOKED
    await store.set_subject_revision("acme", "usr_1", 6, 60)
    assert (await store.admit(admission(jti="j2"))).outcome is Outcome.REVOKED
    await store.put_tenant("acme", TenantState(False, Window(3, 60), Window(5, 60)))
    assert (await store.admit(admission("usr_2", jti="j3"))).outcome is Outcome.SUSPENDED


async def test_hit_is_all_or_nothing(store: GuardStore) -> None:
    ip, user = ("ip:a", Window(3, 60)), ("user:b", Window(1, 60))
    first = await store.hit("_login", [ip, user])
    assert first.allowed
    assert [c.remaining for c in first.counters] == [2, 0]
    second = await store.hit("_login", [ip, user])
    assert not second.allowed
    # The IP window was not charged for the refused attempt.
    assert [c.remaining for c in second.counters] == [2, 0]
    third = await store.hit("_login", [ip])
    assert third.allowed
    assert third.counters[0] == Counter(3, 1, third.counters[0].reset_ms, 60)
    assert 59_000 < third.counters[0].reset_ms <= 60_000


async def test_redis_counter_without_expiry_gets_one(redis_url: str, redis_prefix: str) -> None:
    """A counter left without a TTL (a script aborted half-way) must not lock anyone out."""
    redis = Redis.from_url(redis_url)
    store = RedisGuardStore(redis, redis_prefix)
    key = f"{redis_prefix}:{{_login}}:rl:ip:a"
    await redis.set(key, 5)
    tally = await store.hit("_login", [("ip:a", Window(5, 60))])
    assert not tally.allowed
    assert 0 < await redis.pttl(key) <= 60_000
    assert tally.counters[0].reset_ms == 60_000
    await store.close()


def memory_store(clock: Callable[[], float]) -> MemoryGuardStore:
    return MemoryGuardStore(clock=clock, sweep_interval=10)


async def test_memory_windows_expire() -> None:
    clock = Clock()
    store = memory_store(clock)
    await store.put_tenant("acme", STATE)
    for _ in range(3):
        await store.admit(admission())
    assert (await store.admit(admission())).outcome is Outcome.LIMITED
    clock.now += 59.9
    limited = await store.admit(admission())
    assert limited.principal is not None
    assert limited.principal.reset_ms == 100
    clock.now += 0.1
    verdict = await store.admit(admission())
    assert verdict.outcome is Outcome.OK
    assert verdict.principal == Counter(3, 2, 60_000, 60)


async def test_memory_store_purges_expired_entries() -> None:
    """Entries nobody asks for again must not pile up (one counter per subject and IP)."""
    clock = Clock()
    store = memory_store(clock)
    await store.put_tenant("acme", STATE)
    for i in range(100):
        await store.admit(admission(f"usr_{i}", tag="acme"))
        await store.hit("_login", [(f"ip:{i}", Window(5, 1))])
        await store.revoke_token("acme", f"jti-{i}", 30)
        await store.set_subject_revision("acme", f"usr_{i}", 7, 30)
    assert store.size() > 300
    clock.now += 61
    await store.hit("_login", [("ip:late", Window(5, 1))])
    # Only the tenant state and the one fresh counter remain.
    assert store.size() == 2


async def test_redis_windows_expire(redis_url: str, redis_prefix: str) -> None:
    """Redis forgets a spent window by itself (PEXPIRE): the next one starts from zero."""
    redis = Redis.from_url(redis_url)
    store = RedisGuardStore(redis, redis_prefix)
    try:
        await store.put_tenant("acme", TenantState(True, Window(2, 1), Window(50, 1)))
        outcomes = [(await store.admit(admission())).outcome for _ in range(3)]
        assert outcomes == [Outcome.OK, Outcome.OK, Outcome.LIMITED]
        login = [(await store.hit("_login", [("ip:a", Window(1, 1))])).allowed for _ in range(2)]
        assert login == [True, False]
        limited = await store.admit(admission())
        assert limited.principal is not None
        assert 0 < limited.principal.reset_ms <= 1000
        key = f"{redis_prefix}:{{acme}}:rl:p:usr_1"
        assert 0 < await redis.pttl(key) <= 1000
        await asyncio.sleep(limited.principal.reset_ms / 1000 + 0.05)
        assert await redis.exists(key) == 0
        verdict = await store.admit(admission())
        assert verdict.outcome is Outcome.OK
        assert verdict.principal is not None
        assert verdict.principal == Counter(2, 1, verdict.principal.reset_ms, 1)
        assert (await store.hit("_login", [("ip:a", Window(1, 1))])).allowed
    finally:
        await store.close()
