"""The data path's PostgreSQL pool (storage/pg_pool.py) on a real server of the test's own:
connections reused and bounded, waits bounded, broken ones replaced, nothing left open."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from storage.pg_pool import Pool, PoolClosed
from tests.support_postgres import PostgresProcess, own_postgres

pytestmark = pytest.mark.xdist_group("private-postgres")


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresProcess]:
    with own_postgres() as server:
        yield server


class Counted:
    """Opens connections to the server and remembers each one."""

    def __init__(self, postgres: PostgresProcess) -> None:
        self.dsn = postgres.url.replace("postgresql+asyncpg://", "postgresql://")
        self.opened: list[asyncpg.Connection] = []

    async def __call__(self) -> asyncpg.Connection:
        connection = await asyncpg.connect(self.dsn)
        self.opened.append(connection)
        return connection


@pytest.fixture
async def counted(postgres: PostgresProcess) -> AsyncIterator[Counted]:
    if not postgres.running():
        postgres.start()
    connect = Counted(postgres)
    yield connect
    for connection in connect.opened:
        connection.terminate()


async def _use(pool: Pool, sql: str = "SELECT pg_sleep(0.01)") -> int:
    connection = await pool.acquire()
    try:
        await connection.fetch(sql)
        pid: int = connection.get_server_pid()
        return pid
    finally:
        pool.release(connection)


async def test_connections_are_reused_and_never_more_than_the_size(counted: Counted) -> None:
    pool = Pool(counted, size=3, wait=5)
    await asyncio.gather(*(_use(pool) for _ in range(30)))
    assert len(counted.opened) == 3
    pids = {await _use(pool, "SELECT 1") for _ in range(10)}
    assert len(counted.opened) == 3  # one at a time: always an idle one
    assert pids <= {c.get_server_pid() for c in counted.opened}
    await pool.close()
    assert all(c.is_closed() for c in counted.opened)


async def test_a_caller_waits_for_a_connection_then_gives_up(counted: Counted) -> None:
    pool = Pool(counted, size=1, wait=0.3)
    held = await pool.acquire()
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await pool.acquire()
    assert 0.25 < time.monotonic() - started < 2
    waiting = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0.05)
    pool.release(held)
    assert await waiting is held  # handed over, not reopened
    pool.release(held)
    await pool.close()
    assert len(counted.opened) == 1


async def test_a_connection_the_server_closed_is_replaced(
    counted: Counted, postgres: PostgresProcess
) -> None:
    pool = Pool(counted, size=1, wait=5)
    first = await _use(pool, "SELECT 1")
    postgres.sql(f"SELECT pg_terminate_backend({first})")
    for _ in range(100):  # the client learns of it when the socket closes
        if counted.opened[0].is_closed():
            break
        await asyncio.sleep(0.02)
    second = await _use(pool, "SELECT 1")
    assert second != first
    assert len(counted.opened) == 2
    await pool.close()


async def test_a_discarded_connection_gives_its_place_to_a_waiter(counted: Counted) -> None:
    pool = Pool(counted, size=1, wait=5)
    broken = await pool.acquire()
    waiting = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0.05)
    pool.discard(broken)
    fresh = await waiting
    assert fresh is not broken
    assert broken.is_closed()
    assert await fresh.fetchval("SELECT 1") == 1
    pool.release(fresh)
    await pool.close()


async def test_closing_refuses_waiters_and_drops_what_comes_back(counted: Counted) -> None:
    pool = Pool(counted, size=1, wait=5)
    held = await pool.acquire()
    waiting = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0.05)
    await pool.close()
    with pytest.raises(PoolClosed):
        await waiting
    pool.release(held)
    assert held.is_closed()
    with pytest.raises(PoolClosed):
        await pool.acquire()
