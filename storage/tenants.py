"""Tenant queries for platform administration (creation lives in storage/accounts.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.errors import NotFound
from storage.tables import tenants, utcnow


@dataclass(frozen=True, slots=True)
class TenantRow:
    slug: str
    name: str
    plan: str
    status: str
    created_at: datetime
    updated_at: datetime


_COLUMNS = (
    tenants.c.slug,
    tenants.c.name,
    tenants.c.plan,
    tenants.c.status,
    tenants.c.created_at,
    tenants.c.updated_at,
)


def _row(row: sa.Row[*tuple[Any, ...]]) -> TenantRow:
    return TenantRow(row.slug, row.name, row.plan, row.status, row.created_at, row.updated_at)


async def list_tenants(
    connection: AsyncConnection, *, after: str | None, limit: int
) -> list[TenantRow]:
    """Up to `limit` tenants in slug order, starting after the slug `after`."""
    query = sa.select(*_COLUMNS).order_by(tenants.c.slug).limit(limit)
    if after is not None:
        query = query.where(tenants.c.slug > after)
    return [_row(row) for row in await connection.execute(query)]


async def get_tenant(connection: AsyncConnection, slug: str) -> TenantRow:
    row = (await connection.execute(sa.select(*_COLUMNS).where(tenants.c.slug == slug))).first()
    if row is None:
        raise NotFound("tenant")
    return _row(row)


async def update_tenant(
    connection: AsyncConnection,
    slug: str,
    *,
    name: str | None = None,
    plan: str | None = None,
    status: str | None = None,
) -> TenantRow:
    """Change the given fields (None = unchanged) and return the tenant as it now is."""
    values = {
        key: value
        for key, value in (("name", name), ("plan", plan), ("status", status))
        if value is not None
    }
    if values:
        result = await connection.execute(
            tenants.update().where(tenants.c.slug == slug).values(**values, updated_at=utcnow())
        )
        if result.rowcount == 0:
            raise NotFound("tenant")
    return await get_tenant(connection, slug)
