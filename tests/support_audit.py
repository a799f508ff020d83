"""Helpers for the audit tests: read a chain, dump every stored row, log in as a role."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from storage.audit import Event
from storage.audit_queries import EventFilter, events
from storage.tables import metadata, utcnow
from tests.support import World, bearer


async def trail(world: World, tenant: str | None, action: str | None = None) -> list[Event]:
    """Every event of the tenant's chain (None: the platform's), optionally of one action."""
    async with world.database.read() as connection:
        return await events(connection, tenant, EventFilter(action=action), limit=10_000)


async def only(world: World, tenant: str | None, action: str) -> Event:
    """The one event of `action` in the chain; fails when there are none or several."""
    found = await trail(world, tenant, action)
    assert len(found) == 1, [(e.action, e.details) for e in found]
    return found[0]


async def every_stored_value(world: World) -> str:
    """All rows of all tables as one text, to search for secrets."""
    parts: list[str] = []
    async with world.database.read() as connection:
        for table in metadata.sorted_tables:
            for row in await connection.execute(sa.select(table)):
                parts.extend(repr(value) for value in row)
    return "\n".join(parts)


async def member_token(
    world: World, tenant: str, email: str, role: str, scope: str | None = None
) -> tuple[str, str]:
    """(access token, user id) of a new member with `role`."""
    user_id = await world.member(tenant, email, role)
    return await world.login(email, scope=scope), user_id


async def get(world: World, token: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {**bearer(token), **kwargs.pop("headers", {})}
    return await world.client.get(path, headers=headers, **kwargs)


def move_clock(monkeypatch: pytest.MonkeyPatch, seconds: float, *modules: str) -> None:
    """Make the audit trail (and the named modules that stamp windows) see a later time."""

    def later() -> datetime:
        return utcnow() + timedelta(seconds=seconds)

    for module in ("storage.audit", *modules):
        monkeypatch.setattr(f"{module}.utcnow", later)
