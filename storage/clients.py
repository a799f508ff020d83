"""OAuth2 client rows. Every query of a tenant's clients takes the tenant; callers hash secrets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.accounts import now_ms
from storage.errors import NotFound
from storage.ids import new_id
from storage.tables import clients, tenants, utcnow

CLIENT_ID_PREFIX = "cli"


@dataclass(frozen=True, slots=True)
class ClientRecord:
    client_id: str
    tenant: str
    name: str
    description: str | None
    scopes: frozenset[str]
    rate_limit: str | None
    revision: int
    created_by: str
    created_at: datetime
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class ClientSecretRecord:
    """What authentication needs: the client, its secret hash, and its tenant's status."""

    client: ClientRecord
    secret_hash: str
    tenant_active: bool


_PUBLIC_COLUMNS = (
    clients.c.client_id,
    clients.c.tenant,
    clients.c.name,
    clients.c.description,
    clients.c.scopes,
    clients.c.rate_limit,
    clients.c.revision,
    clients.c.created_by,
    clients.c.created_at,
    clients.c.last_used_at,
)


def new_client_id() -> str:
    return new_id(CLIENT_ID_PREFIX)


def _record(row: Row[*tuple[Any, ...]]) -> ClientRecord:
    return ClientRecord(
        client_id=row.client_id,
        tenant=row.tenant,
        name=row.name,
        description=row.description,
        scopes=frozenset(row.scopes.split()),
        rate_limit=row.rate_limit,
        revision=row.revision,
        created_by=row.created_by,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
    )


async def insert_client(
    connection: AsyncConnection,
    *,
    client_id: str,
    tenant: str,
    name: str,
    description: str | None,
    scopes: frozenset[str],
    secret_hash: str,
    created_by: str,
) -> ClientRecord:
    exists = await connection.execute(sa.select(tenants.c.slug).where(tenants.c.slug == tenant))
    if exists.first() is None:
        raise NotFound("tenant")
    await connection.execute(
        clients.insert().values(
            client_id=client_id,
            tenant=tenant,
            name=name,
            description=description,
            secret_hash=secret_hash,
            scopes=" ".join(sorted(scopes)),
            revision=now_ms(),
            created_by=created_by,
            created_at=utcnow(),
        )
    )
    return await get_client(connection, tenant, client_id)


async def get_client(connection: AsyncConnection, tenant: str, client_id: str) -> ClientRecord:
    query = sa.select(*_PUBLIC_COLUMNS).where(
        clients.c.tenant == tenant, clients.c.client_id == client_id
    )
    row = (await connection.execute(query)).first()
    if row is None:
        raise NotFound("client")
    return _record(row)


async def list_clients(
    connection: AsyncConnection, tenant: str, *, after: str | None, limit: int
) -> list[ClientRecord]:
    """The tenant's clients in creation order (ids are time-ordered), after the cursor id."""
    query = sa.select(*_PUBLIC_COLUMNS).where(clients.c.tenant == tenant)
    if after is not None:
        query = query.where(clients.c.client_id > after)
    rows = await connection.execute(query.order_by(clients.c.client_id).limit(limit))
    return [_record(row) for row in rows]


async def count_clients(connection: AsyncConnection, tenant: str) -> int:
    query = sa.select(sa.func.count()).select_from(clients).where(clients.c.tenant == tenant)
    return int((await connection.execute(query)).scalar_one())


async def lock_client(connection: AsyncConnection, tenant: str, client_id: str) -> ClientRecord:
    """The client as it is, locked until the transaction ends (changes take turns)."""
    query = (
        sa.select(*_PUBLIC_COLUMNS)
        .where(clients.c.tenant == tenant, clients.c.client_id == client_id)
        .with_for_update()
    )
    row = (await connection.execute(query)).first()
    if row is None:
        raise NotFound("client")
    return _record(row)


async def update_client(
    connection: AsyncConnection, record: ClientRecord, changes: dict[str, Any]
) -> ClientRecord:
    """Apply `changes` (name, description, scopes, rate_limit, revision) to a locked client."""
    values = dict(changes)
    if "scopes" in values:
        values["scopes"] = " ".join(sorted(values["scopes"]))
    if values:
        await connection.execute(
            clients.update()
            .where(clients.c.tenant == record.tenant, clients.c.client_id == record.client_id)
            .values(**values)
        )
    return await get_client(connection, record.tenant, record.client_id)


async def secret_record(connection: AsyncConnection, client_id: str) -> ClientSecretRecord | None:
    """A client by id alone, for authentication: the id comes from the caller, not a path."""
    query = (
        sa.select(*_PUBLIC_COLUMNS, clients.c.secret_hash, tenants.c.status)
        .join(tenants, tenants.c.slug == clients.c.tenant)
        .where(clients.c.client_id == client_id)
    )
    row = (await connection.execute(query)).first()
    if row is None:
        return None
    return ClientSecretRecord(_record(row), row.secret_hash, row.status == "active")


async def delete_client(connection: AsyncConnection, tenant: str, client_id: str) -> None:
    result = await connection.execute(
        clients.delete().where(clients.c.tenant == tenant, clients.c.client_id == client_id)
    )
    if result.rowcount != 1:
        raise NotFound("client")


async def replace_secret(
    connection: AsyncConnection, tenant: str, client_id: str, secret_hash: str
) -> int:
    """Store a new secret hash and bump the revision; returns the new revision."""
    query = (
        sa.select(clients.c.revision)
        .where(clients.c.tenant == tenant, clients.c.client_id == client_id)
        .with_for_update()
    )
    current = (await connection.execute(query)).scalar_one_or_none()
    if current is None:
        raise NotFound("client")
    # Strictly greater, even within the millisecond of the last change: tokens carrying the
    # old revision must fall below the cut-off.
    revision = max(now_ms(), int(current) + 1)
    await connection.execute(
        clients.update()
        .where(clients.c.client_id == client_id)
        .values(secret_hash=secret_hash, revision=revision)
    )
    return revision


async def record_use(connection: AsyncConnection, client_id: str) -> None:
    await connection.execute(
        clients.update().where(clients.c.client_id == client_id).values(last_used_at=utcnow())
    )
