"""One Redis command per guarded request, and per sign-in attempt (counted by Redis itself)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from redis.asyncio import Redis

from tests.support import World, make_settings
from tests.support_rate_limit import SMALL_PLANS, get, member_token, probe_router
from tests.support_redis import RedisProcess, own_redis

MARKER = "end-of-round-trips"


@asynccontextmanager
async def monitored(url: str) -> AsyncIterator[list[str]]:
    """Commands clients send while the block runs (MONITOR; commands run by scripts excluded)."""
    seen: list[str] = []
    watcher, marker = Redis.from_url(url), Redis.from_url(url)
    await marker.ping()  # connected before watching: its handshake is not in the list
    async with watcher.monitor() as monitor:
        yield seen
        await marker.echo(MARKER)
        while True:
            command = await monitor.next_command()
            if MARKER in command["command"]:
                break
            if command["client_type"] != "lua":
                seen.append(command["command"].split()[0].upper())
    await watcher.aclose()
    await marker.aclose()


async def test_one_script_call_per_request(database_url: str, tmp_path: Path) -> None:
    with own_redis(tmp_path) as server:
        await _count_round_trips(database_url, server)


async def _count_round_trips(database_url: str, server: RedisProcess) -> None:
    settings = make_settings(
        database_url, redis_url=server.url, redis_prefix="rt", plan_limits=SMALL_PLANS
    )
    async with World.start(settings) as world:
        world.app.include_router(probe_router())
        await world.tenant("acme")
        token = await member_token(world, "acme", "ann@acme.test")
        assert (await get(world, token, "acme")).status_code == 200  # warm: scripts loaded

        async with monitored(server.url) as sent:
            for expected in (200, 200, 200, 200, 429):
                assert (await get(world, token, "acme")).status_code == expected
        assert sent == ["EVALSHA"] * 5

        form = {"grant_type": "password", "username": "nobody@acme.test", "password": "x" * 12}
        async with monitored(server.url) as sent:
            assert (await world.client.post("/token", data=form)).status_code == 400
        assert sent == ["EVALSHA"]
