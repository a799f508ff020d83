"""Redis refused, hung (SIGSTOP) or restarting: no stall, no 500, limits per process, recovery.

Each test runs its own redis-server (tests/support_redis.py); the shared one is never touched.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from config.settings import Settings
from policies.guard_sync import revoke_token
from storage.guard_failover import FailoverGuardStore, StateStoreUnavailable
from storage.guard_redis import RedisGuardStore
from storage.guard_state import Admission, Outcome, TenantState, Window
from storage.redis_client import create_redis
from tests.support import World, jwt_part, make_settings
from tests.support_rate_limit import SMALL_PLANS, get, limit_headers, member_token, probe_router
from tests.support_redis import RedisProcess, own_redis

PREFIX = "tgfail"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    with own_redis(tmp_path) as server:
        yield server


def failing_settings(database_url: str, server: RedisProcess, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "redis_url": server.url,
        "redis_prefix": PREFIX,
        "redis_timeout": 0.2,
        "redis_breaker_cooldown": 0.1,
        "plan_limits": SMALL_PLANS,
        "login_rate_limit_username": "3/minute",
        **overrides,
    }
    return make_settings(database_url, **values)


@asynccontextmanager
async def started(settings: Settings) -> AsyncIterator[World]:
    async with World.start(settings) as world:
        world.app.include_router(probe_router())
        yield world


def guard(world: World) -> FailoverGuardStore:
    store = world.app.state.guard
    assert isinstance(store, FailoverGuardStore)
    return store


async def wait_until_recovered(world: World, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while guard(world).degraded:
        assert time.monotonic() < deadline, "the breaker did not close after Redis came back"
        await asyncio.sleep(0.02)


async def redis_keys(server: RedisProcess, pattern: str) -> list[bytes]:
    client = Redis.from_url(server.url)
    try:
        return [key async for key in client.scan_iter(match=f"{PREFIX}:{pattern}")]
    finally:
        await client.aclose()


async def sign_in(world: World, username: str) -> httpx.Response:
    form = {"grant_type": "password", "username": username, "password": "wrong-password"}
    return await world.client.post("/token", data=form)


async def test_refused_redis_fails_open_then_recovers(
    database_url: str, redis_server: RedisProcess
) -> None:
    redis_server.stop()
    async with started(failing_settings(database_url, redis_server)) as world:
        # Start-up could not seed Redis: the app serves anyway, from its own store.
        await world.tenant("acme")
        token = await member_token(world, "acme", "ann@acme.test")
        statuses = [(await get(world, token, "acme")).status_code for _ in range(6)]
        assert statuses == [200] * 5 + [429], "the per-process limit still applies"
        assert guard(world).degraded
        assert guard(world).fallback_admissions >= 6
        ready = await world.client.get("/ready")
        assert ready.status_code == 200
        assert ready.json()["status"] == "degraded"
        assert ready.json()["components"]["redis"] == "degraded"
        # A change other workers could not see is refused at once, not after a timeout.
        began = time.monotonic()
        with pytest.raises(StateStoreUnavailable):
            await guard(world).revoke_token("acme", "some-jti", 60)
        assert time.monotonic() - began < 0.1

        redis_server.start()
        await wait_until_recovered(world)
        assert (await world.client.get("/ready")).json()["status"] == "ok"
        fresh = await member_token(world, "acme", "bob@acme.test")
        response = await get(world, fresh, "acme")
        assert response.status_code == 200
        assert limit_headers(response)["x-ratelimit-remaining"] == "4"
        # Counted in Redis again, which was re-seeded from the database on recovery.
        assert await redis_keys(redis_server, "{acme}:tenant")
        assert await redis_keys(redis_server, "{acme}:rl:t")


async def test_hung_redis_stalls_nothing(database_url: str, redis_server: RedisProcess) -> None:
    settings = failing_settings(database_url, redis_server, redis_timeout=0.5)
    async with started(settings) as world:
        await world.tenant("acme")
        token = await member_token(world, "acme", "ann@acme.test")
        assert (await get(world, token, "acme")).status_code == 200
        redis_server.pause()
        try:
            # The requests in flight when Redis hangs wait for the socket timeout; meanwhile
            # the event loop keeps answering unrelated requests at their normal speed.
            stuck = [asyncio.create_task(get(world, token, "acme"))]
            await asyncio.sleep(0.05)
            for _ in range(5):
                began = time.monotonic()
                assert (await world.client.get("/health")).status_code == 200
                assert time.monotonic() - began < 0.1
            assert not stuck[0].done()
            # More requests, one round trip each, until enough have failed: the breaker opens.
            while not guard(world).degraded:
                assert len(stuck) < 60, "the breaker never opened"
                stuck.append(asyncio.create_task(get(world, token, "acme")))
                await asyncio.sleep(0.05)
            assert guard(world).trips == 1
            responses = await asyncio.gather(*stuck)
            # Fail open, never a 500: the process counts alone from what Redis had counted
            # (1 of 5), so four more pass.
            statuses = sorted(r.status_code for r in responses)
            assert statuses == [200] * 4 + [429] * (len(responses) - 4)
            assert limit_headers(responses[0])["x-ratelimit-limit"] == "5"
            # Nobody pays the timeout any more.
            began = time.monotonic()
            assert (await get(world, token, "acme")).status_code == 429
            assert time.monotonic() - began < 0.2
            # /token keeps a per-process limit while Redis hangs.
            attempts = [(await sign_in(world, "mallory@acme.test")).status_code for _ in range(4)]
            assert attempts == [400, 400, 400, 429]
        finally:
            redis_server.resume()
        await wait_until_recovered(world)
        assert not guard(world).degraded
        # Redis serves again: a fresh principal's first request (the tenant's counter holds
        # what Redis ran of the hung calls when it woke up).
        fresh = await member_token(world, "acme", "bob@acme.test")
        response = await get(world, fresh, "acme")
        assert response.status_code == 200
        assert limit_headers(response)["ratelimit"].startswith('"principal";r=4;')


async def test_one_slow_call_opens_no_breaker(
    database_url: str, redis_server: RedisProcess
) -> None:
    settings = failing_settings(database_url, redis_server, redis_timeout=0.3)
    async with started(settings) as world:
        await world.tenant("acme")
        token = await member_token(world, "acme", "ann@acme.test")
        for remaining in ("4", "3"):
            response = await get(world, token, "acme")
            assert limit_headers(response)["x-ratelimit-remaining"] == remaining
        redis_server.pause()
        try:
            slow = await get(world, token, "acme")
        finally:
            redis_server.resume()
        # Answered by this process, starting from what Redis had counted (2 of 5).
        assert slow.status_code == 200, "fail open, never a 500"
        assert limit_headers(slow)["x-ratelimit-remaining"] == "2"
        assert (guard(world).failures, guard(world).trips) == (1, 0)
        assert not guard(world).degraded
        # The next call goes to Redis again. Redis ran the slow call too when it woke up (it
        # was in its socket buffer): a timed-out call errs towards counting twice, never zero.
        response = await get(world, token, "acme")
        assert response.status_code == 200
        assert limit_headers(response)["x-ratelimit-remaining"] == "1"
        assert guard(world).fallback_admissions == 1


async def test_restarted_redis_keeps_revocations_and_limits(
    database_url: str, redis_server: RedisProcess
) -> None:
    async with started(failing_settings(database_url, redis_server)) as world:
        await world.tenant("acme")
        revoked = await member_token(world, "acme", "ann@acme.test")
        kept = await member_token(world, "acme", "bob@acme.test")
        async with world.database.write() as connection:
            await revoke_token(connection, guard(world), "acme", jwt_part(revoked, 1)["jti"], 600)
        assert (await get(world, revoked, "acme")).status_code == 401

        redis_server.stop()  # its data is gone with it
        for _ in range(10):  # until the failures are sustained and the breaker opens
            assert (await get(world, revoked, "acme")).status_code == 401
            assert (await get(world, kept, "acme")).status_code == 200
            if guard(world).degraded:
                break
        assert guard(world).degraded

        redis_server.start()  # empty
        await wait_until_recovered(world)
        assert (await get(world, revoked, "acme")).status_code == 401
        response = await get(world, kept, "acme")
        assert response.status_code == 200
        assert await redis_keys(redis_server, "{acme}:jti:*")
        assert await redis_keys(redis_server, "{acme}:rl:p:*")
        # Redis counts from zero after losing its data: one request in the new window.
        assert limit_headers(response)["x-ratelimit-remaining"] == "4"


async def test_breaker_refuses_changes_and_retries_a_failed_reseed(
    database_url: str, redis_server: RedisProcess
) -> None:
    settings = failing_settings(database_url, redis_server)
    store = FailoverGuardStore(
        RedisGuardStore(create_redis(settings), PREFIX),
        cooldown=settings.redis_breaker_cooldown,
        failures=2,
    )
    attempts: list[int] = []

    async def reseed() -> None:
        attempts.append(len(attempts))
        if len(attempts) == 1:
            raise RuntimeError("database not reachable yet")

    store.on_recovery = reseed
    try:
        await store.put_tenant("acme", TenantState(True, Window(5, 60), Window(8, 60)))
        redis_server.stop()
        # Each refused write fails its change; the second failure of three calls is sustained.
        with pytest.raises(StateStoreUnavailable):
            await store.revoke_token("acme", "jti-1", 60)
        assert (store.degraded, store.failures, store.trips) == (False, 1, 0)
        with pytest.raises(StateStoreUnavailable):
            await store.revoke_token("acme", "jti-1", 60)
        assert (store.degraded, store.failures, store.trips) == (True, 2, 1)
        # Nothing of the refused change stays behind in this process's copy either.
        await store.fallback.put_tenant("acme", TenantState(True, Window(5, 60), Window(8, 60)))
        verdict = await store.admit(Admission("acme", "jti-1", "usr_1", 1, True))
        assert verdict.outcome is Outcome.OK
        began = time.monotonic()
        with pytest.raises(StateStoreUnavailable):
            await store.put_tenant("acme", TenantState(False, Window(5, 60), Window(8, 60)))
        assert time.monotonic() - began < 0.05, "an open breaker refuses without trying Redis"

        redis_server.start()
        deadline = time.monotonic() + 5
        while store.degraded:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        assert attempts == [0, 1], "the failed re-seed was retried before the breaker closed"
        verdict = await store.admit(Admission("acme", "jti-2", "usr_1", 1, True))
        assert verdict.outcome is Outcome.UNKNOWN_TENANT  # an empty Redis: admission re-seeds
    finally:
        await store.close()


async def test_one_failed_round_trip_of_many_callers_opens_no_breaker(
    database_url: str, redis_server: RedisProcess
) -> None:
    """Admissions of one loop turn share a pipelined round trip: when it times out, all its
    callers fail with it, and that is one failure, not a sustained one."""
    settings = failing_settings(database_url, redis_server, redis_timeout=0.3)
    store = FailoverGuardStore(RedisGuardStore(create_redis(settings), PREFIX))
    state = TenantState(True, Window(50, 60), Window(50, 60))
    try:
        await store.put_tenant("acme", state)
        redis_server.pause()
        try:
            verdicts = await asyncio.gather(
                *(store.admit(Admission("acme", f"j{i}", f"usr_{i}", 1, True)) for i in range(8))
            )
        finally:
            redis_server.resume()
        # Forgotten at the failure (other workers may have changed it): reloaded on next use.
        assert {verdict.outcome for verdict in verdicts} == {Outcome.UNKNOWN_TENANT}
        assert (store.failures, store.trips, store.degraded) == (8, 0, False)
        verdict = await store.admit(Admission("acme", "j9", "usr_9", 1, True))
        assert verdict.outcome is Outcome.OK  # Redis, which kept the tenant
        assert store.fallback_admissions == 8
    finally:
        await store.close()


async def test_while_redis_fails_each_process_admits_its_share_of_what_is_left(
    database_url: str, redis_server: RedisProcess
) -> None:
    settings = failing_settings(database_url, redis_server)
    # One of two processes: alone, it may admit half of each limit.
    store = FailoverGuardStore(RedisGuardStore(create_redis(settings), PREFIX), share=2)
    state = TenantState(True, Window(10, 60), Window(100, 60))

    async def admitted(subject: str, requests: int) -> list[Outcome]:
        admission = Admission("acme", f"jti-{subject}", subject, 1, True)
        verdicts = [await store.admit(admission) for _ in range(requests)]
        return [verdict.outcome for verdict in verdicts]

    try:
        await store.put_tenant("acme", state)
        assert await admitted("ann", 4) == [Outcome.OK] * 4  # Redis counts 4 of her 10
        redis_server.stop()
        assert await admitted("ann", 1) == [Outcome.UNKNOWN_TENANT]  # forgotten: reload it
        await store.fallback.put_tenant("acme", state)  # as admission does, from the database
        # Her share is 5, and she had used her share of 4 (2): 3 more here.
        assert await admitted("ann", 4) == [Outcome.OK] * 3 + [Outcome.LIMITED]
        # Someone Redis never counted gets this process's share of the limit, not all of it.
        assert await admitted("bob", 6) == [Outcome.OK] * 5 + [Outcome.LIMITED]
        verdict = await store.admit(Admission("acme", "jti-bob", "bob", 1, True))
        assert verdict.principal is not None
        assert (verdict.principal.limit, verdict.principal.remaining) == (5, 0)
        assert store.fallback_admissions == 12
    finally:
        await store.close()
