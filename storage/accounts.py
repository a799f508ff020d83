"""Users, tenants and memberships: the rows behind logins. Callers hash passwords first."""

from __future__ import annotations

import time

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.errors import Conflict, NotFound
from storage.ids import new_id
from storage.tables import memberships, refresh_tokens, tenants, users, utcnow


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def normalise_email(email: str) -> str:
    return email.strip().lower()


async def create_user(
    connection: AsyncConnection,
    email: str,
    password_hash: str,
    *,
    platform_admin: bool = False,
    must_change_password: bool = False,
) -> str:
    user_id = new_id("usr")
    try:
        async with connection.begin_nested():
            await connection.execute(
                users.insert().values(
                    id=user_id,
                    email=normalise_email(email),
                    password_hash=password_hash,
                    is_active=True,
                    is_platform_admin=platform_admin,
                    must_change_password=must_change_password,
                    created_at=utcnow(),
                )
            )
    except IntegrityError:
        raise Conflict("a user with this email exists") from None
    return user_id


async def user_id_by_email(connection: AsyncConnection, email: str) -> str | None:
    query = sa.select(users.c.id).where(users.c.email == normalise_email(email))
    return (await connection.execute(query)).scalar_one_or_none()


async def has_platform_admin(connection: AsyncConnection) -> bool:
    query = sa.select(sa.func.count()).where(users.c.is_platform_admin.is_(True))
    return bool((await connection.execute(query)).scalar_one())


async def create_tenant(connection: AsyncConnection, slug: str, name: str, plan: str) -> None:
    now = utcnow()
    try:
        async with connection.begin_nested():
            await connection.execute(
                tenants.insert().values(
                    slug=slug, name=name, plan=plan, status="active", created_at=now, updated_at=now
                )
            )
    except IntegrityError:
        raise Conflict(f"tenant {slug!r} exists") from None


async def add_member(
    connection: AsyncConnection,
    tenant: str,
    user_id: str,
    role: str,
    *,
    revision: int | None = None,
) -> int:
    """Add the user to the tenant; returns the membership revision (now, unless given)."""
    exists = (
        await connection.execute(sa.select(tenants.c.slug).where(tenants.c.slug == tenant))
    ).first()
    if exists is None:
        raise NotFound("tenant")
    revision = now_ms() if revision is None else revision
    try:
        async with connection.begin_nested():
            await connection.execute(
                memberships.insert().values(
                    user_id=user_id,
                    tenant=tenant,
                    role=role,
                    revision=revision,
                    created_at=utcnow(),
                )
            )
    except IntegrityError:
        raise Conflict("the user is already a member of this tenant") from None
    return revision


async def password_hash_of(connection: AsyncConnection, user_id: str) -> str | None:
    """The stored hash of an active user, None for unknown or deactivated users."""
    query = sa.select(users.c.password_hash).where(
        users.c.id == user_id, users.c.is_active.is_(True)
    )
    return (await connection.execute(query)).scalar_one_or_none()


async def set_password(connection: AsyncConnection, user_id: str, password_hash: str) -> None:
    """Store a password the user chose; a one-time password no longer needs changing."""
    await connection.execute(
        users.update()
        .where(users.c.id == user_id)
        .values(password_hash=password_hash, must_change_password=False)
    )


async def revoke_user_sessions(connection: AsyncConnection, user_id: str) -> None:
    """Revoke every refresh token of the user, in every tenant."""
    await connection.execute(
        refresh_tokens.update()
        .where(refresh_tokens.c.user_id == user_id, refresh_tokens.c.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
