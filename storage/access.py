"""Who holds access to a tenant: members, clients and open refresh sessions (for the matrix)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.tables import clients, memberships, refresh_tokens, users, utcnow


@dataclass(frozen=True, slots=True)
class MemberHolding:
    user_id: str
    email: str
    role: str
    active: bool
    since: datetime


@dataclass(frozen=True, slots=True)
class ClientHolding:
    client_id: str
    name: str
    scopes: frozenset[str]
    created_by: str
    created_at: datetime
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class OpenSessions:
    """Refresh-token families still usable, per (user, client)."""

    user_id: str
    client_id: str
    sessions: int
    last_issued_at: datetime
    expires_at: datetime


async def members(connection: AsyncConnection, tenant: str) -> list[MemberHolding]:
    query = (
        sa.select(
            memberships.c.user_id,
            users.c.email,
            memberships.c.role,
            users.c.is_active,
            memberships.c.created_at,
        )
        .join(users, users.c.id == memberships.c.user_id)
        .where(memberships.c.tenant == tenant)
        .order_by(users.c.email)
    )
    return [MemberHolding(*row) for row in await connection.execute(query)]


async def tenant_clients(connection: AsyncConnection, tenant: str) -> list[ClientHolding]:
    query = (
        sa.select(
            clients.c.client_id,
            clients.c.name,
            clients.c.scopes,
            clients.c.created_by,
            clients.c.created_at,
            clients.c.last_used_at,
        )
        .where(clients.c.tenant == tenant)
        .order_by(clients.c.client_id)
    )
    return [
        ClientHolding(row.client_id, row.name, frozenset(row.scopes.split()), *row[3:])
        for row in await connection.execute(query)
    ]


async def open_sessions(connection: AsyncConnection, tenant: str) -> list[OpenSessions]:
    # A family's only unused, unrevoked, unexpired token is what keeps the session open.
    tokens = refresh_tokens.c
    query = (
        sa.select(
            tokens.user_id,
            tokens.client_id,
            sa.func.count(),
            sa.func.max(tokens.created_at),
            sa.func.max(tokens.expires_at),
        )
        .where(
            tokens.tenant == tenant,
            tokens.used_at.is_(None),
            tokens.revoked_at.is_(None),
            tokens.expires_at > utcnow(),
        )
        .group_by(tokens.user_id, tokens.client_id)
        .order_by(tokens.user_id, tokens.client_id)
    )
    return [OpenSessions(*row) for row in await connection.execute(query)]


async def refresh_family_owner(
    connection: AsyncConnection, family_id: str
) -> tuple[str, str | None, frozenset[str]] | None:
    """(user id, tenant, scopes) of a refresh-token family, for the audit trail of a revocation."""
    query = (
        sa.select(refresh_tokens.c.user_id, refresh_tokens.c.tenant, refresh_tokens.c.scope)
        .where(refresh_tokens.c.family_id == family_id)
        .order_by(refresh_tokens.c.created_at.desc())
        .limit(1)
    )
    row = (await connection.execute(query)).first()
    return None if row is None else (row.user_id, row.tenant, frozenset(row.scope.split()))
