"""redis.asyncio client with short timeouts and no retries: a slow Redis must not slow requests."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from config.settings import Settings


def create_redis(settings: Settings) -> Redis:
    if settings.redis_url is None:
        raise ValueError("TENANTGATE_REDIS_URL is not set")
    return Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
        max_connections=256,
    )
