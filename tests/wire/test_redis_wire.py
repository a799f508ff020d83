"""The guard's pipelined Redis connection: replies reach their own callers, on asyncio and uvloop;
a silent, lost or refusing server fails the calls in flight and the next call reconnects.

Each test runs on asyncio and on uvloop (tests/wire/conftest.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError, ResponseError, TimeoutError

from storage.redis_wire import RedisWire
from tests.support_redis import RedisProcess, own_redis


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisProcess]:
    with own_redis(tmp_path) as process:
        yield process


def wire_for(url: str, timeout: float = 2.0) -> RedisWire:
    return RedisWire(Redis.from_url(url, socket_timeout=timeout))


async def test_concurrent_calls_each_get_their_own_reply(server: RedisProcess) -> None:
    wire = wire_for(server.url)
    try:
        replies = await asyncio.gather(*(wire.call("ECHO", f"call-{n}") for n in range(500)))
        counts = await asyncio.gather(*(wire.call("INCR", "counter") for _ in range(100)))
    finally:
        wire.close()
    assert replies == [f"call-{n}".encode() for n in range(500)]
    assert sorted(counts) == list(range(1, 101))


async def test_an_error_reply_fails_only_its_own_call(server: RedisProcess) -> None:
    wire = wire_for(server.url)
    try:
        await wire.call("SET", "text", "not a number")
        results = await asyncio.gather(
            wire.call("ECHO", "before"),
            wire.call("INCR", "text"),
            wire.call("ECHO", "after"),
            return_exceptions=True,
        )
    finally:
        wire.close()
    assert results[0] == b"before"
    assert isinstance(results[1], ResponseError)
    assert "not an integer" in str(results[1])
    assert results[2] == b"after"


async def test_a_silent_server_fails_every_call_in_flight_then_the_wire_reconnects(
    server: RedisProcess,
) -> None:
    wire = wire_for(server.url, timeout=0.3)
    try:
        assert await wire.call("PING") == b"PONG"
        server.pause()
        try:
            results = await asyncio.gather(
                *(wire.call("ECHO", str(n)) for n in range(5)), return_exceptions=True
            )
        finally:
            server.resume()
        assert all(isinstance(result, TimeoutError) for result in results), results
        # The late replies of the old connection can never reach a new caller.
        assert await wire.call("ECHO", "fresh") == b"fresh"
    finally:
        wire.close()


async def test_a_lost_server_fails_calls_until_it_is_back(server: RedisProcess) -> None:
    wire = wire_for(server.url, timeout=0.5)
    try:
        assert await wire.call("PING") == b"PONG"
        server.stop()
        with pytest.raises(ConnectionError):
            await wire.call("PING")
        with pytest.raises(ConnectionError):  # refused, not hung
            await wire.call("PING")
        server.start()
        assert await wire.call("PING") == b"PONG"
    finally:
        wire.close()


async def test_credentials_and_database_come_from_the_url(server: RedisProcess) -> None:
    admin = Redis.from_url(server.url)
    await admin.config_set("requirepass", "s3cret")
    url = f"redis://:s3cret@127.0.0.1:{server.port}/3"
    wire = wire_for(url)
    try:
        await wire.call("SET", "where", "here")
        check = Redis.from_url(url)
        assert await check.get("where") == b"here"  # in database 3, behind the password
        await check.aclose()
        with pytest.raises(ResponseError):  # a wrong password is refused, not ignored
            await wire_for(f"redis://:wrong@127.0.0.1:{server.port}/0").call("PING")
    finally:
        wire.close()
        await admin.aclose()
