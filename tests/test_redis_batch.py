"""Admissions of one event-loop turn share one round trip to Redis, and every count stays exact."""

from __future__ import annotations

import asyncio
from pathlib import Path

from redis.asyncio import Redis

from storage.guard_redis import RedisGuardStore
from storage.guard_state import Admission, Outcome, TenantState, Window
from tests.support_redis import own_redis

STATE = TenantState(True, Window(10, 60), Window(1000, 60))


def admission(subject: str) -> Admission:
    return Admission(tag="acme", jti=f"j-{subject}", subject=subject, revision=1, tenant=True)


async def _reads_processed(redis: Redis) -> int:
    """Read events the server handled: a pipelined batch arrives as one (on loopback)."""
    stats = await redis.info("stats")
    return int(stats["total_reads_processed"])


async def test_concurrent_admissions_share_a_round_trip_and_count_exactly(tmp_path: Path) -> None:
    with own_redis(tmp_path) as server:
        observer = Redis.from_url(server.url)
        store = RedisGuardStore(Redis.from_url(server.url), "batch")
        try:
            await store.put_tenant("acme", STATE)
            await store.admit(admission("warm"))  # connection made, script loaded
            before = await _reads_processed(observer)
            verdicts = await asyncio.gather(*(store.admit(admission("ann")) for _ in range(25)))
            reads = await _reads_processed(observer) - before
        finally:
            await store.close()
            await observer.aclose()
    outcomes = [verdict.outcome for verdict in verdicts]
    assert outcomes.count(Outcome.OK) == 10  # the principal's limit, exactly
    assert outcomes.count(Outcome.LIMITED) == 15
    # 25 admissions, 1 batch (+1 for the INFO call itself); one by one they would be 25.
    assert reads <= 3, reads


async def test_a_redis_that_forgot_the_script_is_taught_again(tmp_path: Path) -> None:
    with own_redis(tmp_path) as server:
        store = RedisGuardStore(Redis.from_url(server.url), "batch")
        admin = Redis.from_url(server.url)
        try:
            await store.put_tenant("acme", STATE)
            assert (await store.admit(admission("ann"))).outcome is Outcome.OK
            await admin.script_flush()
            verdicts = await asyncio.gather(*(store.admit(admission("bob")) for _ in range(3)))
            assert [v.outcome for v in verdicts] == [Outcome.OK] * 3
            assert verdicts[-1].principal is not None
            assert verdicts[-1].principal.remaining == 7  # each counted once, not retried twice
        finally:
            await store.close()
            await admin.aclose()


async def test_a_failed_batch_fails_each_admission(tmp_path: Path) -> None:
    with own_redis(tmp_path) as server:
        store = RedisGuardStore(Redis.from_url(server.url, socket_timeout=0.5), "batch")
        try:
            await store.put_tenant("acme", STATE)
            server.stop()
            results = await asyncio.gather(
                *(store.admit(admission("ann")) for _ in range(3)), return_exceptions=True
            )
        finally:
            await store.close()
    assert all(isinstance(result, Exception) for result in results), results
