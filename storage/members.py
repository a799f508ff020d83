"""Membership queries; every one takes the tenant, so none can reach another tenant's rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.errors import NotFound
from storage.tables import memberships, refresh_tokens, revocations, tenants, users, utcnow


@dataclass(frozen=True, slots=True)
class Member:
    user_id: str
    email: str
    role: str
    revision: int
    created_at: datetime


_SELECT = sa.select(
    memberships.c.user_id,
    users.c.email,
    memberships.c.role,
    memberships.c.revision,
    memberships.c.created_at,
).join(users, users.c.id == memberships.c.user_id)


def _member(row: sa.Row[*tuple[Any, ...]]) -> Member:
    return Member(row.user_id, row.email, row.role, row.revision, row.created_at)


async def lock_tenant(connection: AsyncConnection, tenant: str) -> None:
    """Serialise membership changes of one tenant until the transaction ends.

    The last-owner rule counts owners and then changes one; two such changes running side by side
    could each see the other owner and leave none. PostgreSQL takes a row lock (NO KEY UPDATE, so
    inserts referencing the tenant are not blocked); SQLite's write transactions are serial anyway.
    """
    query = (
        sa.select(tenants.c.slug).where(tenants.c.slug == tenant).with_for_update(key_share=True)
    )
    if (await connection.execute(query)).first() is None:
        raise NotFound("tenant")


async def list_members(
    connection: AsyncConnection, tenant: str, *, after: str | None, limit: int
) -> list[Member]:
    """Up to `limit` members in user id order (time-ordered ids), starting after `after`."""
    query = (
        _SELECT.where(memberships.c.tenant == tenant).order_by(memberships.c.user_id).limit(limit)
    )
    if after is not None:
        query = query.where(memberships.c.user_id > after)
    return [_member(row) for row in await connection.execute(query)]


async def get_member(connection: AsyncConnection, tenant: str, user_id: str) -> Member:
    query = _SELECT.where(memberships.c.tenant == tenant, memberships.c.user_id == user_id)
    row = (await connection.execute(query)).first()
    if row is None:
        raise NotFound("member")
    return _member(row)


async def count_role(connection: AsyncConnection, tenant: str, role: str) -> int:
    query = sa.select(sa.func.count()).where(
        memberships.c.tenant == tenant, memberships.c.role == role
    )
    return int((await connection.execute(query)).scalar_one())


async def set_role(
    connection: AsyncConnection, tenant: str, user_id: str, role: str, revision: int
) -> None:
    await connection.execute(
        memberships.update()
        .where(memberships.c.tenant == tenant, memberships.c.user_id == user_id)
        .values(role=role, revision=revision)
    )


async def delete_member(connection: AsyncConnection, tenant: str, user_id: str) -> None:
    await connection.execute(
        memberships.delete().where(memberships.c.tenant == tenant, memberships.c.user_id == user_id)
    )


async def revoke_member_sessions(connection: AsyncConnection, tenant: str, user_id: str) -> None:
    """Revoke the user's refresh tokens for this tenant, so a later re-invitation starts fresh."""
    await connection.execute(
        refresh_tokens.update()
        .where(
            refresh_tokens.c.tenant == tenant,
            refresh_tokens.c.user_id == user_id,
            refresh_tokens.c.revoked_at.is_(None),
        )
        .values(revoked_at=utcnow())
    )


async def subject_cutoff(connection: AsyncConnection, tenant: str, user_id: str) -> int:
    """The revision below which the user's tokens for this tenant are refused (0 if none)."""
    query = sa.select(revocations.c.value).where(
        revocations.c.tag == tenant,
        revocations.c.kind == "subject",
        revocations.c.key == user_id,
        revocations.c.expires_at > utcnow(),
    )
    return int((await connection.execute(query)).scalar_one_or_none() or 0)
