"""Two separate `tenantgate serve` processes (replicas: no shared memory, one database, one
Redis): limits, the sign-in limiter, revocation, role changes, suspension, key rotation, live
audit events and cached reports hold across them. The same on a Redis Cluster:
tests/test_redis_cluster.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import World, make_settings
from tests.support_ops import ServerProcess
from tests.support_replicas import (
    PLANS,
    Cast,
    a_rotation_reaches_every_replica_at_once,
    fresh_connections,
    limits_are_exact,
    live_events_reach_every_replica,
    process_doors,
    replica_env,
    reports_are_shared_and_never_stale,
    security_changes_hold_everywhere,
    seed,
    sign_in_limit_is_exact,
    tokens,
)

# With the other tests that start server processes: one at a time on this machine.
pytestmark = pytest.mark.xdist_group("worker-processes")


@dataclass
class Replicas:
    servers: list[ServerProcess]
    env: dict[str, str]
    cwd: Path

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self.servers]


async def start_replicas(env: dict[str, str], directory: Path, count: int = 2) -> Replicas:
    servers = []
    for index in range(count):
        cwd = directory / f"replica-{index}"
        cwd.mkdir()
        servers.append(ServerProcess(env, cwd=cwd))
    try:
        await asyncio.gather(*(asyncio.to_thread(server.wait_ready) for server in servers))
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return Replicas(servers, env, directory)


@pytest.fixture
async def replicas(
    production_database_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> AsyncIterator[tuple[Replicas, Cast]]:
    cast = Cast("acme", "globex")
    settings = make_settings(
        production_database_url, redis_url=redis_url, redis_prefix=redis_prefix, plan_limits=PLANS
    )
    async with World.start(settings) as world:
        await seed(world, cast)
    env = replica_env(production_database_url, redis_url, redis_prefix, cluster=False)
    started = await start_replicas(env, tmp_path)
    try:
        yield started, cast
    finally:
        for server in started.servers:
            server.stop()


async def test_two_replicas_share_every_guarantee(replicas: tuple[Replicas, Cast]) -> None:
    served, cast = replicas
    doors = process_doors(served.servers)
    async with fresh_connections() as http:
        token = await tokens(http, doors[0], cast)
        await limits_are_exact(http, served.urls, token["ann"], f"/v1/tenants/{cast.home}/items")
        await sign_in_limit_is_exact(http, doors, cast.email("nobody"))
        await security_changes_hold_everywhere(http, doors, cast, token)
        await a_rotation_reaches_every_replica_at_once(
            http, served.urls, cast, served.env, served.cwd
        )
        await live_events_reach_every_replica(http, served.urls, cast, token["owner"])
        await reports_are_shared_and_never_stale(http, served.urls, cast, token["owner"])
