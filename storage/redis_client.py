"""Redis clients with short timeouts and no retries: a slow Redis must not slow requests.

One server (`TENANTGATE_REDIS_CLUSTER` off): redis.asyncio over a blocking pool: under a burst, a
request waits (at most the timeout) for a free connection instead of failing with "Too many
connections", which would open the breaker and give up cross-process exactness for no reason.

A Redis Cluster (`TENANTGATE_REDIS_CLUSTER=true`, the URL names any node): redis-py's asyncio
`RedisCluster`, which learns the slot map from that node, sends each command to the master of its
key's slot and follows MOVED/ASK. Every key one command or script touches carries one hash tag
(storage/guard_redis.py), so each stays in one slot. A node that stops answering costs the calls
sent to it (they fail, and the guard falls back); the map is read again after such a failure, so
a promoted replica is used as soon as the cluster has promoted it, without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException, RedisError
from redis.retry import Retry

from config.settings import Settings

log = logging.getLogger("tenantgate.redis")

MAX_CONNECTIONS = 256
# What a failing Redis (or cluster) raises: refused, reset, timed out, a node or slot out of
# reach. RedisClusterException is not a RedisError ("no reachable node", "slot not covered").
REDIS_FAILURES = (RedisError, RedisClusterException, OSError, TimeoutError)
# A cluster's slot map is re-read at most this often after failures (each read is a round
# trip to one node; a dead master fails many calls in a row).
REDISCOVER_INTERVAL = 0.25

RedisClient = Redis | RedisCluster


def create_redis(settings: Settings) -> RedisClient:
    if settings.redis_url is None:
        raise ValueError("TENANTGATE_REDIS_URL is not set")
    if settings.redis_cluster:
        return RedisCluster.from_url(
            settings.redis_url,
            max_connections=MAX_CONNECTIONS,  # per node
            # A slot map with a hole (a master failed, no replica promoted yet) still serves
            # the other slots.
            require_full_coverage=False,
            socket_timeout=settings.redis_timeout,
            socket_connect_timeout=settings.redis_timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
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


def node_of(client: RedisClient, key: str) -> str:
    """The node that serves `key` as far as the client knows ("" for one Redis, or a cluster
    whose slot map is not read yet)."""
    if not isinstance(client, RedisCluster):
        return ""
    try:
        node = client.get_node_from_key(key)
    except RedisClusterException:  # no map yet (first call) or the slot is not covered
        return ""
    return node.name if node is not None else ""


async def load_script(client: RedisClient, script: str, node: str) -> None:
    """SCRIPT LOAD where it was missing: on one Redis, or on the cluster node `node` (a node
    that answered NOSCRIPT, e.g. a replica just promoted), not on every master, some of which
    may be out of reach."""
    target = client.get_node(node_name=node) if isinstance(client, RedisCluster) and node else None
    if target is not None:
        await client.execute_command("SCRIPT LOAD", script, target_nodes=target)
    else:
        await client.script_load(script)


class Rediscovery:
    """Re-reads a cluster's slot map after a failed call, at most every REDISCOVER_INTERVAL,
    and says when the set of masters changed (a failover: `on_change`).

    redis-py re-reads it after a failed single command, but not after a failed pipeline: the
    pipelined admissions would keep going to a dead master after its replica took over."""

    def __init__(self, client: RedisClient, on_change: Callable[[], None] | None = None) -> None:
        self._client = client
        self._on_change = on_change
        self._task: asyncio.Task[None] | None = None
        self._last = 0.0
        self._masters: frozenset[str] = frozenset()  # as last seen by this object

    def remember(self) -> None:
        """A write succeeded: the masters as of now are the ones a failover would replace."""
        if isinstance(self._client, RedisCluster) and (masters := _masters(self._client)):
            self._masters = masters

    def after_failure(self) -> None:
        if not isinstance(self._client, RedisCluster):
            return
        if not self._masters:
            self._masters = _masters(self._client)  # the map the failed call went by
        if self._task is not None and not self._task.done():
            return
        if time.monotonic() - self._last < REDISCOVER_INTERVAL:
            return
        self._last = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._refresh(self._client))

    async def _refresh(self, client: RedisCluster) -> None:
        with contextlib.suppress(*REDIS_FAILURES):
            await client.nodes_manager.initialize()
        masters = _masters(client)
        if self._masters and masters and masters != self._masters:
            log.warning("redis cluster: the masters changed (a failover)")
            if self._on_change is not None:
                self._on_change()
        if masters:
            self._masters = masters

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _masters(client: RedisCluster) -> frozenset[str]:
    return frozenset(node.name for node in client.get_primaries())


async def ping(client: RedisClient) -> None:
    """One Redis answers; or every master of a cluster, after reading its slot map again (a
    master that failed over shows in the map only once it is read again). The breaker's probe
    and /ready: recovery must not be declared while some master is out of reach."""
    if isinstance(client, RedisCluster):
        await client.initialize()
        await client.nodes_manager.initialize()
        await client.ping(target_nodes=RedisCluster.PRIMARIES)
    else:
        await client.ping()


async def subscriber_url(settings: Settings, client: RedisClient) -> str:
    """Where a pub/sub connection goes: the configured server, or any node of a cluster.

    The fan-out uses classic PUBLISH/SUBSCRIBE, which a cluster broadcasts to every node, so one
    node (a different one at random after a failure) hears every channel."""
    assert settings.redis_url is not None
    if not isinstance(client, RedisCluster):
        return settings.redis_url
    await client.initialize()
    nodes = client.get_nodes()
    if not nodes:
        return settings.redis_url
    node = random.choice(nodes)  # noqa: S311 - spreading load, not a secret
    parts = urlsplit(settings.redis_url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{node.host}:{node.port}" if credentials else f"{node.host}:{node.port}"
    return urlunsplit(parts._replace(netloc=netloc, path="/0"))


async def mode_problem(settings: Settings) -> str | None:
    """One line when the server's cluster mode contradicts TENANTGATE_REDIS_CLUSTER; None when
    they agree or the server does not answer (then the guard's breaker handles it)."""
    if settings.redis_url is None:
        return None
    probe: Redis = Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        info: dict[str, Any] = await probe.info("cluster")
    except REDIS_FAILURES:
        return None
    finally:
        await probe.aclose()
    enabled = bool(int(info.get("cluster_enabled", 0)))
    if enabled and not settings.redis_cluster:
        return (
            "TENANTGATE_REDIS_URL points at a Redis Cluster node but TENANTGATE_REDIS_CLUSTER is "
            "off; set TENANTGATE_REDIS_CLUSTER=true"
        )
    if settings.redis_cluster and not enabled:
        return (
            "TENANTGATE_REDIS_CLUSTER=true but TENANTGATE_REDIS_URL points at a Redis without "
            "cluster mode; set TENANTGATE_REDIS_CLUSTER=false (or point the URL at a cluster node)"
        )
    return None
