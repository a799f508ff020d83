"""Item queries. Every function takes the tenant: no query can reach another tenant's rows."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, NoReturn

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.errors import Conflict, NotFound, PreconditionFailed
from storage.ids import new_id
from storage.tables import items, utcnow

# Prices are stored in ten-thousandths (price_units): exact integers on every backend.
PRICE_SCALE = 10_000
PRICE_DECIMALS = 4
UPDATABLE = frozenset({"sku", "name", "description", "category", "price_units", "quantity", "tags"})
SKU_TAKEN = "an item with this SKU exists in this tenant"
# What new_id("itm") makes; anything else names no item and is not looked up.
ITEM_ID = re.compile(r"^itm_[0-9a-f]{22}$")


def price_to_units(price: Decimal) -> int:
    """Exact conversion; a price with more than four decimals is a ValueError, never rounded."""
    if not price.is_finite() or price < 0:
        raise ValueError("a price is a finite decimal >= 0")
    units = price.scaleb(PRICE_DECIMALS)
    if units != units.to_integral_value():
        raise ValueError(f"a price has at most {PRICE_DECIMALS} decimal places")
    return int(units)


def units_to_price(units: int) -> str:
    """10_000-ths as a decimal string with exactly four places: 125_000 -> '12.5000'."""
    whole, fraction = divmod(units, PRICE_SCALE)
    return f"{whole}.{fraction:0{PRICE_DECIMALS}d}"


@dataclass(frozen=True, slots=True)
class NewItem:
    sku: str
    name: str
    description: str
    category: str
    price_units: int
    quantity: int
    tags: list[str]


@dataclass(frozen=True, slots=True)
class Item:
    id: str
    sku: str
    name: str
    description: str
    category: str
    price_units: int
    quantity: int
    tags: list[str]
    version: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Item]
    # The id to continue after, or None on the last page.
    next_after: str | None


@dataclass(frozen=True, slots=True)
class CategoryStock:
    category: str
    item_count: int
    total_quantity: int
    value_units: int


class StockValueTooLarge(Conflict):
    """SQLite sums in 64-bit integers; a stock value beyond that is refused, never approximated."""


def _item(row: sa.Row[Any]) -> Item:
    return Item(
        id=row.id,
        sku=row.sku,
        name=row.name,
        description=row.description,
        category=row.category,
        price_units=row.price_units,
        quantity=row.quantity,
        tags=list(row.tags),
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _in_tenant(tenant: str, item_id: str) -> sa.ColumnElement[bool]:
    # Also keeps bytes the database would choke on (NUL on PostgreSQL) out of the query.
    if not ITEM_ID.match(item_id):
        raise NotFound("item")
    return sa.and_(items.c.tenant == tenant, items.c.id == item_id)


async def create_item(connection: AsyncConnection, tenant: str, new: NewItem) -> Item:
    """Insert; a SKU already used in the tenant is a Conflict (the transaction is then doomed)."""
    now = utcnow()
    statement = (
        items.insert()
        .values(
            id=new_id("itm"),
            tenant=tenant,
            sku=new.sku,
            name=new.name,
            description=new.description,
            category=new.category,
            price_units=new.price_units,
            quantity=new.quantity,
            tags=new.tags,
            version=1,
            created_at=now,
            updated_at=now,
        )
        .returning(*items.c)
    )
    try:
        row = (await connection.execute(statement)).one()
    except IntegrityError:
        raise Conflict(SKU_TAKEN) from None
    return _item(row)


async def get_item(connection: AsyncConnection, tenant: str, item_id: str) -> Item:
    row = (await connection.execute(sa.select(items).where(_in_tenant(tenant, item_id)))).first()
    if row is None:
        raise NotFound("item")
    return _item(row)


async def list_items(
    connection: AsyncConnection,
    tenant: str,
    *,
    limit: int,
    after: str | None = None,
    category: str | None = None,
    name_prefix: str | None = None,
) -> Page:
    """One page in id order (ids are unique and time-ordered, so the order is total and stable)."""
    query = sa.select(items).where(items.c.tenant == tenant)
    if after is not None:
        query = query.where(items.c.id > after)
    if category is not None:
        query = query.where(items.c.category == category)
    if name_prefix:
        # A plain comparison, not LIKE: '%', '_' and '\' in the input are ordinary characters,
        # and the match is case-sensitive on SQLite and PostgreSQL alike (LIKE is not).
        query = query.where(sa.func.substr(items.c.name, 1, len(name_prefix)) == name_prefix)
    rows = (await connection.execute(query.order_by(items.c.id).limit(limit + 1))).all()
    page = [_item(row) for row in rows[:limit]]
    return Page(page, page[-1].id if len(rows) > limit else None)


async def update_item(
    connection: AsyncConnection,
    tenant: str,
    item_id: str,
    changes: Mapping[str, Any],
    *,
    versions: frozenset[int] | None = None,
) -> Item:
    """Apply `changes` and bump the version, atomically; `versions` is what If-Match accepts."""
    unknown = set(changes) - UPDATABLE
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    statement = (
        items.update()
        .where(*_conditions(tenant, item_id, versions))
        .values(**changes, version=items.c.version + 1, updated_at=utcnow())
        .returning(*items.c)
    )
    try:
        row = (await connection.execute(statement)).first()
    except IntegrityError:
        raise Conflict(SKU_TAKEN) from None
    if row is None:
        await _explain_miss(connection, tenant, item_id)
    return _item(row)


async def delete_item(
    connection: AsyncConnection,
    tenant: str,
    item_id: str,
    *,
    versions: frozenset[int] | None = None,
) -> None:
    result = await connection.execute(
        items.delete().where(*_conditions(tenant, item_id, versions)).returning(items.c.id)
    )
    if result.first() is None:
        await _explain_miss(connection, tenant, item_id)


def _conditions(
    tenant: str, item_id: str, versions: frozenset[int] | None
) -> Sequence[sa.ColumnElement[bool]]:
    # The version test is part of the write itself, so no concurrent change slips in between.
    conditions = [_in_tenant(tenant, item_id)]
    if versions is not None:
        conditions.append(items.c.version.in_(sorted(versions)))
    return conditions


async def _explain_miss(connection: AsyncConnection, tenant: str, item_id: str) -> NoReturn:
    """A conditional write touched nothing: the item is missing, or If-Match did not match."""
    exists = (
        await connection.execute(sa.select(items.c.version).where(_in_tenant(tenant, item_id)))
    ).first()
    if exists is None:
        raise NotFound("item")
    raise PreconditionFailed("the item has changed since that version (If-Match)")


async def inventory(connection: AsyncConnection, tenant: str) -> list[CategoryStock]:
    """Per category: item count, total quantity and exact stock value, aggregated by the database.

    price_units x quantity can pass 2**63 for a single row, so the price is split into whole
    currency units and ten-thousandths and each part is summed on its own; the two integers are
    joined in Python, exactly.
    """
    whole = items.c.price_units // PRICE_SCALE
    fraction = items.c.price_units % PRICE_SCALE
    query = (
        sa.select(
            items.c.category,
            sa.func.count().label("item_count"),
            sa.func.sum(items.c.quantity).label("total_quantity"),
            sa.func.sum(whole * items.c.quantity).label("whole"),
            sa.func.sum(fraction * items.c.quantity).label("fraction"),
        )
        .where(items.c.tenant == tenant)
        .group_by(items.c.category)
        .order_by(items.c.category)
    )
    try:
        rows = (await connection.execute(query)).all()
    except DBAPIError as error:
        if "overflow" not in str(error.orig).lower():
            raise
        raise StockValueTooLarge(
            "the stock value is too large for this database to sum exactly"
        ) from None
    # PostgreSQL returns sum(bigint) as an exact numeric (Decimal), SQLite as int.
    return [
        CategoryStock(
            category=row.category,
            item_count=int(row.item_count),
            total_quantity=int(row.total_quantity),
            value_units=int(row.whole) * PRICE_SCALE + int(row.fraction),
        )
        for row in rows
    ]
