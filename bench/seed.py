"""The benchmark's data: a tenant of 100 items read and written, and one of 10,000 for reports."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from auth.passwords import Passwords
from config.settings import Settings
from storage import accounts
from storage.database import Database
from storage.ids import new_id
from storage.tables import items, utcnow

TENANT = "bench"
BULK = "bulk"
EMAIL = "bench@bench.test"
BULK_EMAIL = "bulk@bulk.test"
UNREACHABLE = "1000000000/hour"
PLAN = "bench"
PLAN_LIMITS = {PLAN: {"principal": UNREACHABLE, "tenant": UNREACHABLE}}
SMALL, LARGE = 100, 10_000
CATEGORIES = ("tools", "parts", "books", "food", "toys")


@dataclass(frozen=True)
class Seeded:
    item_id: str
    user_id: str  # the member of TENANT (the baseline loads it by id)


def _rows(tenant: str, count: int) -> list[dict[str, object]]:
    now = utcnow()
    return [
        {
            "id": new_id("itm"),
            "tenant": tenant,
            "sku": f"SKU-{index:05d}",
            "name": f"Item {index}",
            "description": "a thing that is counted",
            "category": CATEGORIES[index % len(CATEGORIES)],
            "price_units": 125_000 + index,
            "quantity": index % 100,
            "tags": ["bench", f"t{index % 5}"],
            "version": 1,
            "created_at": now,
            "updated_at": now,
        }
        for index in range(count)
    ]


async def seed(settings: Settings, password: str) -> Seeded:
    """Both tenants on a plan nobody reaches, each with a member (reads, writes, reports)."""
    database = Database(settings)
    passwords = Passwords(settings)
    try:
        password_hash = await passwords.hash(password)
        small = _rows(TENANT, SMALL)
        users = {}
        async with database.write() as connection:
            for tenant, email in ((TENANT, EMAIL), (BULK, BULK_EMAIL)):
                await accounts.create_tenant(connection, tenant, tenant.title(), PLAN)
                users[tenant] = await accounts.create_user(connection, email, password_hash)
                await accounts.add_member(connection, tenant, users[tenant], "member")
            await connection.execute(items.insert(), small)
            await connection.execute(items.insert(), _rows(BULK, LARGE))
        return Seeded(item_id=str(small[len(small) // 2]["id"]), user_id=users[TENANT])
    finally:
        passwords.close()
        await database.dispose()


def create_postgres_database(admin_url: str, name: str) -> str:
    """A fresh database next to `admin_url`'s, for this run only; its URL."""
    _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    return sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(admin_url: str, name: str) -> None:
    _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _admin(url: str, *statements: str) -> None:
    async def run() -> None:
        engine = create_async_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        async with engine.connect() as connection:
            for statement in statements:
                await connection.execute(sa.text(statement))
        await engine.dispose()

    asyncio.run(run())
