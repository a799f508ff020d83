"""Keeps the guard store in step with the database: tenant status and plan, revocations.

Every change is written to the database (durable) and to the guard store (what the guard path
reads) before the surrounding transaction commits; if the store cannot take it, the change fails.
After the store loses its data it is re-seeded from the database, tag by tag, on first use.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from policies.errors import GuardStateUnavailable
from policies.plans import plan_windows, window, within
from storage.guard_failover import StateStoreUnavailable
from storage.guard_state import PLATFORM_TAG, GuardStore, TenantState, Window
from storage.tables import clients, revocations, tenants, utcnow

CUTOFF_MARGIN_SECONDS = 60
# The platform tag has no limits of its own; its state only marks the store as seeded.
PLATFORM_STATE = TenantState(True, Window(1, 1), Window(1, 1))


async def load_tenant_state(connection: AsyncConnection, slug: str) -> TenantState | None:
    row = (
        await connection.execute(
            sa.select(tenants.c.status, tenants.c.plan).where(tenants.c.slug == slug)
        )
    ).first()
    if row is None:
        return None
    principal_window, tenant_window = plan_windows(row.plan)
    overrides: dict[str, Window] = {}
    client_limits = await connection.execute(
        sa.select(clients.c.client_id, clients.c.rate_limit).where(
            clients.c.tenant == slug, clients.c.rate_limit.is_not(None)
        )
    )
    for client_id, limit in client_limits:
        # A client limit lowers the plan's, never raises it (also after a plan downgrade).
        override = window(limit)
        if within(override, principal_window):
            overrides[f"client:{client_id}"] = override
    return TenantState(row.status == "active", principal_window, tenant_window, overrides)


async def publish(connection: AsyncConnection, store: GuardStore, tag: str) -> None:
    """Write everything the guard needs about `tag` from the database into the store."""
    now = utcnow()
    rows = await connection.execute(
        sa.select(revocations).where(revocations.c.tag == tag, revocations.c.expires_at > now)
    )
    try:
        for row in rows:
            ttl = int((row.expires_at - now).total_seconds()) + 1
            if row.kind == "jti":
                await store.revoke_token(tag, row.key, ttl)
            else:
                await store.set_subject_revision(tag, row.key, row.value, ttl)
        state = PLATFORM_STATE if tag == PLATFORM_TAG else await load_tenant_state(connection, tag)
        if state is not None:
            await store.put_tenant(tag, state)
    except StateStoreUnavailable as error:
        raise GuardStateUnavailable(str(error)) from error


async def publish_all(connection: AsyncConnection, store: GuardStore) -> None:
    for tag in [PLATFORM_TAG, *(await connection.execute(sa.select(tenants.c.slug))).scalars()]:
        await publish(connection, store, tag)


async def revoke_token(
    connection: AsyncConnection, store: GuardStore, tag: str, jti: str, ttl: int
) -> None:
    await _record(connection, tag, "jti", jti, 1, ttl)
    await _shared(store.revoke_token(tag, jti, ttl))


async def cut_off_subject(
    connection: AsyncConnection,
    store: GuardStore,
    tag: str,
    subject: str,
    revision: int,
    token_ttl: int,
) -> None:
    """Tokens of `subject` in `tag` issued with an older revision stop working.

    The cut-off outlives the longest token it can stop (`token_ttl`) by a margin, so one issued
    from a read taken just before the change committed still expires before the cut-off does.
    """
    ttl = token_ttl + CUTOFF_MARGIN_SECONDS
    await _record(connection, tag, "subject", subject, revision, ttl)
    await _shared(store.set_subject_revision(tag, subject, revision, ttl))


async def _record(
    connection: AsyncConnection, tag: str, kind: str, key: str, value: int, ttl: int
) -> None:
    now = utcnow()
    match = (revocations.c.tag == tag) & (revocations.c.kind == kind) & (revocations.c.key == key)
    await connection.execute(revocations.delete().where(match))
    await connection.execute(
        revocations.insert().values(
            tag=tag,
            kind=kind,
            key=key,
            value=value,
            expires_at=now + timedelta(seconds=ttl),
            created_at=now,
        )
    )


async def _shared(write: Awaitable[None]) -> None:
    try:
        await write
    except StateStoreUnavailable as error:
        raise GuardStateUnavailable(str(error)) from error
