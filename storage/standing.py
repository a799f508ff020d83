"""A principal's standing in one tenant, from the database, for access evaluation.

Only what the tenant itself knows: a user who was never a member of the tenant (or does not
exist) and another tenant's client are both "unknown", so an evaluation cannot tell them apart.
A former member or client is known from the tenant's own audit trail (member.removed,
client.revoked), which outlives the row.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.tables import audit_events, clients, memberships, users


@dataclass(frozen=True, slots=True)
class UserStanding:
    active: bool
    one_time_password: bool
    role: str | None  # None: no longer a member


@dataclass(frozen=True, slots=True)
class ClientStanding:
    scopes: frozenset[str] | None  # None: deleted (revoked)


async def user_standing(
    connection: AsyncConnection, tenant: str, user_id: str
) -> UserStanding | None:
    query = (
        sa.select(users.c.is_active, users.c.must_change_password, memberships.c.role)
        .select_from(users)
        .outerjoin(
            memberships,
            (memberships.c.user_id == users.c.id) & (memberships.c.tenant == tenant),
        )
        .where(users.c.id == user_id)
    )
    row = (await connection.execute(query)).first()
    if row is None:
        return None
    removed = "member.removed", f"user:{user_id}"
    if row.role is None and not await _recorded(connection, tenant, *removed):
        return None
    return UserStanding(bool(row.is_active), bool(row.must_change_password), row.role)


async def client_standing(
    connection: AsyncConnection, tenant: str, client_id: str
) -> ClientStanding | None:
    query = sa.select(clients.c.scopes).where(
        clients.c.tenant == tenant, clients.c.client_id == client_id
    )
    scopes = (await connection.execute(query)).scalar_one_or_none()
    if scopes is not None:
        return ClientStanding(frozenset(scopes.split()))
    if await _recorded(connection, tenant, "client.revoked", f"client:{client_id}"):
        return ClientStanding(None)
    return None


async def _recorded(connection: AsyncConnection, tenant: str, action: str, target: str) -> bool:
    """Whether the tenant's trail holds `action` on `target`."""
    query = (
        sa.select(audit_events.c.seq)
        .where(
            audit_events.c.chain == tenant,
            audit_events.c.action == action,
            audit_events.c.target == target,
        )
        .limit(1)
    )
    return (await connection.execute(query)).first() is not None
