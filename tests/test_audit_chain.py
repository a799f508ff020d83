"""The hash chain: appends in the caller's transaction, verification finds the first broken link."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

from config.settings import Settings
from storage import accounts
from storage.audit import (
    GENESIS_HASH,
    Action,
    Actor,
    Context,
    Event,
    NewEvent,
    append,
    event_from_fields,
)
from storage.audit_queries import EventFilter, events, verify, verify_events
from storage.database import Database
from storage.tables import audit_events, audit_heads, tenants

ALICE = Actor("user", "usr_alice")


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings)
    yield database
    await database.dispose()


def event(number: int, tenant: str | None = "acme", action: str = Action.MEMBER_ADDED) -> NewEvent:
    return NewEvent(
        action=action,
        tenant=tenant,
        actor=ALICE,
        target=f"user:usr_{number}",
        scopes={"members:write"},
        context=Context("203.0.113.7", "pytest/1", f"req-{number}"),
        details={"role": "viewer", "n": number, "nested": {"ü": [1, True, None]}},
    )


async def append_many(database: Database, count: int, tenant: str | None = "acme") -> list[Event]:
    stored = []
    for number in range(1, count + 1):
        async with database.write() as connection:
            stored.append(await append(connection, event(number, tenant)))
    return stored


async def stored(database: Database, tenant: str | None = "acme") -> list[Event]:
    async with database.read() as connection:
        return await events(connection, tenant, limit=1000)


async def execute(database: Database, *statements: sa.Executable) -> None:
    async with database.write() as connection:
        for statement in statements:
            await connection.execute(statement)


def row(seq: int, chain: str = "acme") -> sa.ColumnElement[bool]:
    return (audit_events.c.chain == chain) & (audit_events.c.seq == seq)


async def test_appends_link_each_event_to_the_previous_one(database: Database) -> None:
    written = await append_many(database, 4)
    await append_many(database, 2, tenant=None)
    acme = await stored(database)
    assert acme == written
    assert [e.seq for e in acme] == [1, 2, 3, 4]
    assert acme[0].prev_hash == GENESIS_HASH
    assert [e.prev_hash for e in acme[1:]] == [e.hash for e in acme[:-1]]
    assert all(e.hash == e.computed_hash() for e in acme)
    first = acme[0]
    assert (first.tenant, first.actor_kind, first.actor_subject) == ("acme", "user", "usr_alice")
    assert (first.action, first.target, first.outcome) == ("member.added", "user:usr_1", "success")
    assert first.scopes == ("members:write",)
    assert (first.client_ip, first.user_agent, first.request_id) == (
        "203.0.113.7",
        "pytest/1",
        "req-1",
    )
    assert first.details == {"role": "viewer", "n": 1, "nested": {"ü": [1, True, None]}}
    assert first.time.tzinfo is not None
    assert [e.time for e in acme] == sorted(e.time for e in acme)
    platform = await stored(database, None)
    assert [(e.seq, e.tenant) for e in platform] == [(1, None), (2, None)]
    for tenant in ("acme", None):
        result = await verify(database, tenant)
        assert result.ok, result.broken
    assert (await verify(database, "acme")).checked == 4
    # An export read back verifies offline, from its fields alone.
    assert verify_events(event_from_fields(e.fields()) for e in acme).ok


async def test_an_empty_chain_verifies(database: Database) -> None:
    result = await verify(database, "nobody")
    assert result.ok
    assert result.checked == 0


async def test_an_altered_event_is_the_first_broken_link(database: Database) -> None:
    written = await append_many(database, 5)
    await execute(database, audit_events.update().where(row(3)).values(target="user:usr_mallory"))
    result = await verify(database, "acme")
    assert result.broken is not None
    assert (result.broken.seq, result.broken.event_id) == (3, written[2].id)
    assert "contents" in result.broken.reason
    assert result.checked == 2


@pytest.mark.parametrize(
    "column", ["details", "occurred_at", "actor_subject", "outcome", "scopes", "client_ip"]
)
async def test_every_field_is_covered_by_the_hash(database: Database, column: str) -> None:
    await append_many(database, 2)
    values = {
        "details": '{"role":"owner"}',
        "occurred_at": (await stored(database))[0].time.replace(year=2001),
        "actor_subject": "usr_bob",
        "outcome": "failure",
        "scopes": "members:write audit:read",
        "client_ip": "198.51.100.1",
    }
    await execute(database, audit_events.update().where(row(1)).values({column: values[column]}))
    broken = (await verify(database, "acme")).broken
    assert broken is not None
    assert broken.seq == 1


async def test_a_deleted_event_is_reported_where_it_is_missing(database: Database) -> None:
    await append_many(database, 5)
    await execute(database, audit_events.delete().where(row(3)))
    broken = (await verify(database, "acme")).broken
    assert broken is not None
    assert (broken.seq, broken.event_id) == (3, None)
    assert "missing" in broken.reason


async def test_deleting_the_newest_events_is_caught_by_the_chain_head(database: Database) -> None:
    await append_many(database, 5)
    await execute(database, audit_events.delete().where(audit_events.c.seq >= 4))
    broken = (await verify(database, "acme")).broken
    assert broken is not None
    assert broken.seq == 4
    assert "head" in broken.reason


async def test_renumbering_after_a_deletion_is_caught(database: Database) -> None:
    await append_many(database, 4)
    await execute(
        database,
        audit_events.delete().where(row(2)),
        audit_events.update().where(row(3)).values(seq=2),
        audit_events.update().where(row(4)).values(seq=3),
        audit_heads.update().where(audit_heads.c.chain == "acme").values(seq=3),
    )
    broken = (await verify(database, "acme")).broken
    assert broken is not None
    assert broken.seq == 2


async def test_reordered_events_are_reported_at_the_first_moved_one(database: Database) -> None:
    written = await append_many(database, 5)
    await execute(
        database,
        audit_events.update().where(row(2)).values(seq=-1),
        audit_events.update().where(row(3)).values(seq=2),
        audit_events.update().where(row(-1)).values(seq=3),
    )
    broken = (await verify(database, "acme")).broken
    assert broken is not None
    assert (broken.seq, broken.event_id) == (2, written[2].id)


async def test_swapping_contents_but_keeping_hashes_is_caught(database: Database) -> None:
    """Moving whole rows, hashes included, into each other's places breaks the links."""
    second = (await append_many(database, 4))[1]
    swap = [
        audit_events.update().where(row(2)).values(id="tmp", seq=-2),
        audit_events.update().where(row(3)).values(seq=2),
        audit_events.update().where(row(-2)).values(id=second.id, seq=3),
    ]
    await execute(database, *swap)
    broken = (await verify(database, "acme")).broken
    assert broken is not None
    assert broken.seq == 2


async def test_the_event_belongs_to_the_callers_transaction(database: Database) -> None:
    async def change_then_fail() -> None:
        async with database.write() as connection:
            await accounts.create_tenant(connection, "acme", "Acme", "free")
            await append(connection, event(1))
            raise RuntimeError("the change fails after its event was written")

    with pytest.raises(RuntimeError):
        await change_then_fail()
    assert await stored(database) == []
    assert (await verify(database, "acme")).ok
    async with database.read() as connection:
        assert (await connection.execute(sa.select(tenants))).first() is None


async def test_a_failing_audit_write_fails_the_change(database: Database) -> None:
    unserialisable = NewEvent(
        action=Action.TENANT_CREATED, tenant="acme", actor=ALICE, details={"x": object()}
    )

    async def change() -> None:
        async with database.write() as connection:
            await accounts.create_tenant(connection, "acme", "Acme", "free")
            await append(connection, unserialisable)

    with pytest.raises(TypeError):
        await change()
    async with database.read() as connection:
        assert (await connection.execute(sa.select(tenants))).first() is None


async def test_filters_and_pages(database: Database) -> None:
    await append_many(database, 3)
    async with database.write() as connection:
        refused = NewEvent(
            action=Action.TOKEN_REFUSED, tenant="acme", actor=Actor("user", "usr_bob")
        )
        await append(connection, refused)
    everything = await stored(database)
    async with database.read() as connection:
        by_action = await events(connection, "acme", EventFilter(action="token.refused"))
        by_actor = await events(connection, "acme", EventFilter(actor="usr_alice"))
        page = await events(connection, "acme", after_seq=1, limit=2)
        since = await events(connection, "acme", EventFilter(since=everything[2].time))
        until = await events(connection, "acme", EventFilter(until=everything[1].time))
    assert [e.seq for e in by_action] == [4]
    assert [e.seq for e in by_actor] == [1, 2, 3]
    assert [e.seq for e in page] == [2, 3]
    assert [e.seq for e in since] == [3, 4]
    assert [e.seq for e in until] == [1]


async def test_concurrent_writers_in_two_engines_keep_the_chain_valid(
    settings: Settings,
) -> None:
    """Two engines stand in for two workers; appends interleave freely."""
    first, second = Database(settings), Database(settings)
    try:

        async def one(number: int) -> Event:
            database = first if number % 2 else second
            async with database.write() as connection:
                return await append(connection, event(number))

        written = await asyncio.gather(*(one(number) for number in range(50)))
        assert sorted(e.seq for e in written) == list(range(1, 51))
        result = await verify(first, "acme")
        assert result.ok, result.broken
        assert result.checked == 50
    finally:
        await first.dispose()
        await second.dispose()
