"""Start-up and shut-down of everything a running app holds: database, keys, guard store, hasher."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.metrics import Metrics
from auth.grants import Grants
from auth.keys import KeyRing, has_active_key, lock_key_table, rotate
from auth.passwords import Passwords
from auth.tokens import TokenVerifier
from config.settings import Environment, Settings
from policies.errors import GuardStateUnavailable
from policies.guard_sync import publish_all
from policies.roles import role_scopes
from storage.audit_fanout import RedisFanout
from storage.audit_feed import AuditFeed
from storage.database import Database
from storage.guard_failover import FailoverGuardStore
from storage.guard_memory import MemoryGuardStore
from storage.guard_redis import RedisGuardStore
from storage.guard_state import GuardStore
from storage.redis_client import create_redis, mode_problem
from storage.redis_pubsub import Subscriber
from storage.report_cache import open_report_cache

log = logging.getLogger("tenantgate")


class StartupRefused(RuntimeError):
    """The configuration is not fit to serve; the message says why, one line per problem."""

    safe_to_log = True  # the JSON log formatter keeps this message (api/observability.py)


def _guard_store(settings: Settings) -> GuardStore:
    if settings.redis_url is None:
        return MemoryGuardStore()
    redis = create_redis(settings)
    return FailoverGuardStore(
        RedisGuardStore(redis, settings.redis_prefix),
        cooldown=settings.redis_breaker_cooldown,
        failures=settings.redis_breaker_failures,
        window=settings.redis_breaker_window,
        share=settings.redis_fallback_processes or settings.workers,
    )


def _audit_feed(
    settings: Settings, database: Database, app: FastAPI, subscriber: Subscriber | None
) -> AuditFeed:
    """Live audit events for the streams of this worker; through Redis to the other workers."""
    metrics = getattr(app.state, "metrics", None)
    feed = AuditFeed(
        database,
        capacity=settings.audit_stream_buffer,
        observe=metrics.audit_fanout if isinstance(metrics, Metrics) else None,
    )
    if subscriber is not None:
        feed.transport = RedisFanout(settings, subscriber, feed.deliver)
    return feed


async def _ensure_signing_key(settings: Settings, database: Database) -> None:
    async with database.read() as connection:
        if await has_active_key(connection):
            return
    if settings.env is Environment.PRODUCTION:
        raise StartupRefused(
            "no signing key is provisioned; run `tenantgate keys rotate` (production does not "
            "generate keys on start-up)"
        )
    async with database.write() as connection:
        await lock_key_table(connection)  # every worker of a first start gets here at once
        if not await has_active_key(connection):
            await rotate(connection, settings.signing_algorithm)
            log.warning("generated a development signing key")


async def _publish_everything(database: Database, guard: GuardStore) -> None:
    """Seed the guard store from the database (at start-up, and when Redis comes back)."""
    try:
        async with database.read() as connection:
            await publish_all(connection, guard)
    except GuardStateUnavailable:
        log.warning(
            "redis unavailable; the guard serves from the in-process store until it is seeded"
        )


async def _refuse_unfit(settings: Settings) -> None:
    """Production defaults, and a Redis whose cluster mode contradicts the setting."""
    problems = settings.production_problems() if settings.env is Environment.PRODUCTION else []
    redis_mode = await mode_problem(settings)
    if redis_mode is not None:
        problems.append(redis_mode)
    if problems:
        raise StartupRefused("; ".join(problems))


@asynccontextmanager
async def _serving(keyring: KeyRing) -> AsyncIterator[None]:
    """While the app serves: the key ring's refresher runs, and what start-up made (it lives as
    long as the app) is out of the cyclic collector's sight. Requests that wait on I/O (Redis,
    PostgreSQL) hold their objects across collections, which promotes them and soon sets off
    full collections; each walked all ~160,000 objects of the app (~80 ms, every 0.3 s under
    load: the Redis rows' p99)."""
    refresher = asyncio.create_task(keyring.refresh_forever(), name="key-refresh")
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresher


def lifespan(settings: Settings):  # type: ignore[no-untyped-def]
    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        await _refuse_unfit(settings)
        database = Database(settings)
        passwords = Passwords(settings)
        guard = _guard_store(settings)
        reports = open_report_cache(settings)
        # One pub/sub connection per worker: audit fan-out and key rotation announcements.
        subscriber = Subscriber(settings) if settings.redis_url is not None else None
        feed = _audit_feed(settings, database, app, subscriber)
        keyring: KeyRing | None = None
        try:
            await database.driver.start()
            await _ensure_signing_key(settings, database)
            keyring = KeyRing(database, refresh_interval=settings.key_refresh_interval)
            await keyring.load()
            if subscriber is not None:
                await keyring.follow_rotations(subscriber, settings.redis_prefix)
            await _publish_everything(database, guard)
            if isinstance(guard, FailoverGuardStore):
                guard.on_recovery = lambda: _publish_everything(database, guard)
            app.state.settings = settings
            app.state.database = database
            app.state.keyring = keyring
            app.state.passwords = passwords
            app.state.guard = guard
            app.state.report_cache = reports
            await feed.start()
            database.on_commit = feed.committed
            app.state.audit_feed = feed
            app.state.verifier = TokenVerifier(
                keyring,
                issuer=settings.issuer,
                audience=settings.audience,
                cache_size=settings.token_cache_size,
            )
            app.state.grants = Grants(settings, database, keyring, passwords, role_scopes)
            async with _serving(keyring):
                yield
        finally:
            database.on_commit = None
            if subscriber is not None:
                await subscriber.close()
            if keyring is not None:
                await keyring.close()
            await feed.close()
            await reports.close()
            await guard.close()
            passwords.close()
            await database.dispose()

    return run
