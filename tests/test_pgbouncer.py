"""PostgreSQL behind a real PgBouncer (1.18, Debian's package) started by the test.

Session pooling keeps a server connection per client connection: named prepared statements
work as they do directly. Transaction pooling hands a server connection out per transaction,
and 1.18 cannot carry a named statement from one to the next: with asyncpg's statement cache a
second client trips over the first one's statement names. TENANTGATE_DATABASE_PREPARED_STATEMENTS
=false turns named statements off everywhere (the data path, SQLAlchemy's engine, migrations),
and the whole app works. The cost of that setting on the item read: docs/operations.md.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import asyncpg
import pytest
import sqlalchemy as sa

from storage.driver_postgres import asyncpg_dsn
from storage.migrate import upgrade
from tests.conftest import POSTGRES_URL
from tests.support import World, bearer, make_settings
from tests.support_items import create_item, items_url, tenant_with_owner
from tests.support_pgbouncer import own_pgbouncer

COUNT = "SELECT count(*) FROM items WHERE quantity > $1"
LEFT_BEHIND = "SELECT count(*) FROM pg_prepared_statements"
CONCURRENT = 40  # requests at once: more client connections than PgBouncer has servers


@pytest.fixture
def direct_url(request: pytest.FixtureRequest) -> str:
    """The suite's PostgreSQL test database (emptied), reached directly."""
    if POSTGRES_URL is None:
        pytest.fail("these tests need PostgreSQL: set TENANTGATE_TEST_POSTGRES_URL")
    url: str = request.getfixturevalue("production_database_url")
    return url


async def the_app_works(database_url: str, *, prepared_statements: bool) -> None:
    """Sign-ins and admin writes (SQLAlchemy's engine), item writes and reads (the data path),
    a report, the audit trail: every answer as it should be, under concurrency."""
    settings = make_settings(
        database_url,
        database_pool_size=4,
        database_prepared_statements=prepared_statements,
    )
    await asyncio.to_thread(upgrade, settings)  # the migrations connect through it too
    async with World.start(settings) as world:
        owner = await tenant_with_owner(world, "acme")
        item = await create_item(world, owner, "acme", sku="A-1", quantity=2)
        url = items_url("acme", item["id"])
        reads = await asyncio.gather(
            *(world.client.get(url, headers=bearer(owner)) for _ in range(CONCURRENT))
        )
        assert Counter(r.status_code for r in reads) == {200: CONCURRENT}
        writes = await asyncio.gather(
            *(create_item(world, owner, "acme", sku=f"B-{i}") for i in range(10))
        )
        assert len({created["id"] for created in writes}) == 10
        page = await world.client.get(items_url("acme"), headers=bearer(owner))
        assert len(page.json()["items"]) == 11
        report = await world.client.get("/v1/tenants/acme/reports/inventory", headers=bearer(owner))
        assert report.json()["totals"]["total_quantity"] == 2 + 10 * 3
        logins = await asyncio.gather(*(world.login("owner@acme.test") for _ in range(8)))
        assert len(set(logins)) == 8
        trail = await world.client.get("/v1/tenants/acme/audit/events", headers=bearer(owner))
        assert trail.status_code == 200, trail.text


def _database(url: str) -> str:
    database = sa.make_url(url).database
    assert database is not None
    return database


async def test_session_pooling_with_prepared_statements(direct_url: str) -> None:
    assert POSTGRES_URL is not None
    with own_pgbouncer(POSTGRES_URL, mode="session", pool_size=20) as bouncer:
        await the_app_works(bouncer.url(_database(direct_url)), prepared_statements=True)


async def test_transaction_pooling_with_prepared_statements_off(direct_url: str) -> None:
    assert POSTGRES_URL is not None
    with own_pgbouncer(POSTGRES_URL, mode="transaction", pool_size=2) as bouncer:
        url = bouncer.url(_database(direct_url))
        await the_app_works(url, prepared_statements=False)
        dsn = asyncpg_dsn(sa.make_url(url))
        first, second = [await asyncpg.connect(dsn, statement_cache_size=0) for _ in range(2)]
        try:
            # Nothing the app prepared stays behind on either server connection.
            async with first.transaction(), second.transaction():  # one server each
                for connection in (first, second):
                    assert await connection.fetchval(LEFT_BEHIND) == 0
        finally:
            await first.close()
            await second.close()
        # The control: a statement asyncpg prepared and cached on one server connection is
        # not there when its next run lands on the other (the first one is busy).
        cached, busy = [await asyncpg.connect(dsn) for _ in range(2)]
        try:
            assert await cached.fetchval(COUNT, 0) >= 0  # prepared, named, on server 1
            async with busy.transaction():
                await busy.fetchval("SELECT 1")  # server 1 is this transaction's now
                with pytest.raises(asyncpg.exceptions.InvalidSQLStatementNameError):
                    await cached.fetchval(COUNT, 0)  # on server 2
        finally:
            await cached.close()
            await busy.close()
