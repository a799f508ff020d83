"""redis.asyncio client with short timeouts and no retries: a slow Redis must not slow requests.

A blocking pool: under a burst, a request waits (at most the timeout) for a free connection
instead of failing with "Too many connections", which would open the breaker and give up
cross-process exactness for no reason.
"""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from config.settings import Settings

MAX_CONNECTIONS = 256


def create_redis(settings: Settings) -> Redis:
    if settings.redis_url is None:
        raise ValueError("TENANTGATE_REDIS_URL is not set")
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=MAX_CONNECTIONS,
        timeout=settings.redis_timeout,
        socket_timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )
    return Redis.from_pool(pool)
