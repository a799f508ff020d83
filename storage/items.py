"""Item queries. Every function takes the tenant: no query can reach another tenant's rows."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, NoReturn

import sqlalchemy as sa

from storage.driver import Driver, Row
from storage.errors import (
    Conflict,
    ConstraintViolation,
    NotFound,
    NumericOverflow,
    PreconditionFailed,
)
from storage.ids import new_id
from storage.statements import Statement
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


ITEM_COLUMNS = (
    items.c.id,
    items.c.sku,
    items.c.name,
    items.c.description,
    items.c.category,
    items.c.price_units,
    items.c.quantity,
    items.c.tags,
    items.c.version,
    items.c.created_at,
    items.c.updated_at,
)
KEEP_IF_NULL = ("sku", "name", "description", "category", "price_units", "quantity", "tags")
_IN_TENANT = (items.c.tenant == sa.bindparam("tenant"), items.c.id == sa.bindparam("id"))

ITEM_BY_ID = Statement(sa.select(*ITEM_COLUMNS).where(*_IN_TENANT))
VERSION_BY_ID = Statement(sa.select(items.c.version).where(*_IN_TENANT))
INSERT = Statement(
    items.insert()
    .values(
        {column.name: sa.bindparam(column.name, type_=column.type) for column in ITEM_COLUMNS}
        | {"tenant": sa.bindparam("tenant")}
    )
    .returning(*ITEM_COLUMNS)
)


def _item(row: Row) -> Item:
    return Item(*row)


def _page_statement(*, after: bool, category: bool, name_prefix: bool) -> Statement:
    query = sa.select(*ITEM_COLUMNS).where(items.c.tenant == sa.bindparam("tenant"))
    if after:
        query = query.where(items.c.id > sa.bindparam("after"))
    if category:
        query = query.where(items.c.category == sa.bindparam("category"))
    if name_prefix:
        # A plain comparison, not LIKE: '%', '_' and '\' in the input are ordinary characters,
        # and the match is case-sensitive on SQLite and PostgreSQL alike (LIKE is not).
        length = sa.bindparam("prefix_length", type_=sa.Integer)
        query = query.where(sa.func.substr(items.c.name, 1, length) == sa.bindparam("prefix"))
    return Statement(query.order_by(items.c.id).limit(sa.bindparam("limit", type_=sa.Integer)))


# Every combination of filters, built and compiled once, chosen per request by a dict look-up.
PAGES = {
    (after, category, name_prefix): _page_statement(
        after=after, category=category, name_prefix=name_prefix
    )
    for after in (False, True)
    for category in (False, True)
    for name_prefix in (False, True)
}


def _versions_match(count: int) -> list[sa.ColumnElement[bool]]:
    if count == 0:
        return []
    return [items.c.version.in_([sa.bindparam(f"v{n}", type_=sa.Integer) for n in range(count)])]


@lru_cache(maxsize=64)
def _update_statement(versions: int | None) -> Statement:
    """One statement for any set of changed fields: a field sent as NULL keeps its value."""
    changes = {
        name: sa.func.coalesce(sa.bindparam(name, type_=items.c[name].type), items.c[name])
        for name in KEEP_IF_NULL
    }
    statement = (
        items.update()
        .where(*_IN_TENANT, *_versions_match(versions or 0))
        .values(changes | {"version": items.c.version + 1, "updated_at": sa.bindparam("now")})
        .returning(*ITEM_COLUMNS)
    )
    return Statement(statement)


@lru_cache(maxsize=64)
def _delete_statement(versions: int | None) -> Statement:
    statement = (
        items.delete().where(*_IN_TENANT, *_versions_match(versions or 0)).returning(items.c.id)
    )
    return Statement(statement)


def _checked_id(item_id: str) -> str:
    # Also keeps bytes the database would choke on (NUL on PostgreSQL) out of the query.
    if not ITEM_ID.match(item_id):
        raise NotFound("item")
    return item_id


def _version_params(versions: frozenset[int] | None) -> dict[str, int]:
    return {f"v{n}": version for n, version in enumerate(sorted(versions or ()))}


async def create_item(driver: Driver, tenant: str, new: NewItem) -> Item:
    """Insert; a SKU already used in the tenant is a Conflict."""
    now = utcnow()
    params = {
        "id": new_id("itm"),
        "tenant": tenant,
        "sku": new.sku,
        "name": new.name,
        "description": new.description,
        "category": new.category,
        "price_units": new.price_units,
        "quantity": new.quantity,
        "tags": new.tags,
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }
    try:
        rows = await driver.write(INSERT, params)
    except ConstraintViolation:
        raise Conflict(SKU_TAKEN) from None
    return _item(rows[0])


async def get_item(driver: Driver, tenant: str, item_id: str) -> Item:
    row = await driver.one(ITEM_BY_ID, {"tenant": tenant, "id": _checked_id(item_id)})
    if row is None:
        raise NotFound("item")
    return _item(row)


async def list_items(
    driver: Driver,
    tenant: str,
    *,
    limit: int,
    after: str | None = None,
    category: str | None = None,
    name_prefix: str | None = None,
) -> Page:
    """One page in id order (ids are unique and time-ordered, so the order is total and stable)."""
    statement = PAGES[after is not None, category is not None, bool(name_prefix)]
    params: dict[str, Any] = {"tenant": tenant, "limit": limit + 1}
    if after is not None:
        params["after"] = after
    if category is not None:
        params["category"] = category
    if name_prefix:
        params["prefix"] = name_prefix
        params["prefix_length"] = len(name_prefix)
    rows = await driver.all(statement, params)
    page = [_item(row) for row in rows[:limit]]
    return Page(page, page[-1].id if len(rows) > limit else None)


async def update_item(
    driver: Driver,
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
    params: dict[str, Any] = dict.fromkeys(KEEP_IF_NULL)
    params |= changes
    params |= {"tenant": tenant, "id": _checked_id(item_id), "now": utcnow()}
    params |= _version_params(versions)
    rows: list[Row] = []
    if versions is None or versions:
        # The version test is part of the write itself, so no concurrent change slips in.
        statement = _update_statement(None if versions is None else len(versions))
        try:
            rows = await driver.write(statement, params)
        except ConstraintViolation:
            raise Conflict(SKU_TAKEN) from None
    if not rows:
        await _explain_miss(driver, tenant, item_id)
    return _item(rows[0])


async def delete_item(
    driver: Driver,
    tenant: str,
    item_id: str,
    *,
    versions: frozenset[int] | None = None,
) -> None:
    params: dict[str, Any] = {"tenant": tenant, "id": _checked_id(item_id)}
    params |= _version_params(versions)
    rows: list[Row] = []
    if versions is None or versions:
        statement = _delete_statement(None if versions is None else len(versions))
        rows = await driver.write(statement, params)
    if not rows:
        await _explain_miss(driver, tenant, item_id)


async def _explain_miss(driver: Driver, tenant: str, item_id: str) -> NoReturn:
    """A conditional write touched nothing: the item is missing, or If-Match did not match."""
    if await driver.one(VERSION_BY_ID, {"tenant": tenant, "id": item_id}) is None:
        raise NotFound("item")
    raise PreconditionFailed("the item has changed since that version (If-Match)")


_WHOLE = items.c.price_units // PRICE_SCALE
_FRACTION = items.c.price_units % PRICE_SCALE
INVENTORY = Statement(
    sa.select(
        items.c.category,
        sa.func.count().label("item_count"),
        sa.func.sum(items.c.quantity).label("total_quantity"),
        sa.func.sum(_WHOLE * items.c.quantity).label("whole"),
        sa.func.sum(_FRACTION * items.c.quantity).label("fraction"),
    )
    .where(items.c.tenant == sa.bindparam("tenant"))
    .group_by(items.c.category)
    .order_by(items.c.category),
    scan=True,
)


async def inventory(driver: Driver, tenant: str) -> list[CategoryStock]:
    """Per category: item count, total quantity and exact stock value, aggregated by the database.

    price_units x quantity can pass 2**63 for a single row, so the price is split into whole
    currency units and ten-thousandths and each part is summed on its own; the two integers are
    joined in Python, exactly.
    """
    try:
        rows = await driver.all(INVENTORY, {"tenant": tenant})
    except NumericOverflow:
        raise StockValueTooLarge(
            "the stock value is too large for this database to sum exactly"
        ) from None
    # PostgreSQL returns sum(bigint) as an exact numeric (Decimal), SQLite as int.
    return [
        CategoryStock(
            category=category,
            item_count=int(count),
            total_quantity=int(quantity),
            value_units=int(whole) * PRICE_SCALE + int(fraction),
        )
        for category, count, quantity, whole, fraction in rows
    ]
