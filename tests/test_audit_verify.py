"""GET /audit/verify: the hash chain checked over HTTP, the same walk as `tenantgate audit verify`;
and the `outcome` filter of GET /audit/events."""

from __future__ import annotations

from typing import Any

import pytest

import storage.audit_queries
from storage.audit import GENESIS_HASH, Action, Actor, EventOutcome, NewEvent, append
from storage.tables import audit_events, audit_heads
from tests.support import World
from tests.support_audit import get, member_token, trail
from tests.support_items import assert_problem

VERIFY = "/v1/tenants/acme/audit/verify"
EVENTS = "/v1/tenants/acme/audit/events"
OUTCOMES = [EventOutcome.SUCCESS, EventOutcome.DENIED, EventOutcome.FAILURE]


async def auditor(world: World) -> str:
    await world.tenant("acme")
    token, _ = await member_token(world, "acme", "aud@acme.test", "auditor")
    return token


async def seed(world: World, count: int) -> None:
    async with world.database.write() as connection:
        for number in range(count):
            await append(
                connection,
                NewEvent(
                    action=Action.ACCESS_DENIED,
                    tenant="acme",
                    actor=Actor("user", f"usr_{number}"),
                    outcome=OUTCOMES[number % 3],
                    target=f"GET /n/{number}",
                ),
            )


async def alter(world: World, seq: int, **values: Any) -> None:
    async with world.database.write() as connection:
        await connection.execute(
            audit_events.update()
            .where(audit_events.c.chain == "acme", audit_events.c.seq == seq)
            .values(**values)
        )


async def test_a_sound_chain_is_ok_up_to_its_head(world: World) -> None:
    token = await auditor(world)
    await seed(world, 4)
    stored = await trail(world, "acme")
    response = await get(world, token, VERIFY)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {
        "tenant": "acme",
        "ok": True,
        "events_checked": len(stored),
        "last_seq": stored[-1].seq,
        "last_hash": stored[-1].hash,
        "first_broken_seq": None,
        "reason": None,
    }


async def test_an_altered_row_is_the_first_broken_link(world: World) -> None:
    token = await auditor(world)
    await seed(world, 4)
    stored = await trail(world, "acme")
    await alter(world, 3, target="GET /forged")
    body = (await get(world, token, VERIFY)).json()
    assert body == {
        "tenant": "acme",
        "ok": False,
        "events_checked": 2,
        "last_seq": 2,
        "last_hash": stored[1].hash,
        "first_broken_seq": 3,
        "reason": "the event's contents do not match its hash",
    }


async def test_deleted_newest_events_are_caught_by_the_head(world: World) -> None:
    token = await auditor(world)
    await seed(world, 3)
    stored = await trail(world, "acme")
    async with world.database.write() as connection:
        await connection.execute(
            audit_events.delete().where(
                audit_events.c.chain == "acme", audit_events.c.seq == stored[-1].seq
            )
        )
    body = (await get(world, token, VERIFY)).json()
    assert body["ok"] is False
    assert body["first_broken_seq"] == stored[-1].seq
    assert body["events_checked"] == body["last_seq"] == stored[-2].seq
    assert "chain head records" in body["reason"]


async def test_a_chain_is_walked_in_batches(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bounded memory: no read returns more than a batch, and the break in a late batch is found."""
    token = await auditor(world)
    await seed(world, 11)
    batches: list[int] = []
    original = storage.audit_queries.events

    async def counted(*args: Any, **kwargs: Any) -> Any:
        found = await original(*args, **kwargs)
        batches.append(len(found))
        return found

    monkeypatch.setattr(storage.audit_queries, "BATCH", 3)
    monkeypatch.setattr(storage.audit_queries, "events", counted)
    await alter(world, 10, actor_subject="usr_mallory")
    body = (await get(world, token, VERIFY)).json()
    assert body["first_broken_seq"] == 10
    assert body["events_checked"] == 9
    assert len(batches) >= 4
    assert max(batches) <= 3


async def test_an_empty_chain_and_the_chain_head_alone(world: World) -> None:
    await world.tenant("acme")
    token, _ = await member_token(world, "acme", "aud@acme.test", "auditor")
    async with world.database.write() as connection:  # no events at all, not even the login
        await connection.execute(audit_events.delete().where(audit_events.c.chain == "acme"))
        await connection.execute(audit_heads.delete().where(audit_heads.c.chain == "acme"))
    body = (await get(world, token, VERIFY)).json()
    assert body == {
        "tenant": "acme",
        "ok": True,
        "events_checked": 0,
        "last_seq": 0,
        "last_hash": GENESIS_HASH,
        "first_broken_seq": None,
        "reason": None,
    }


async def test_verify_needs_audit_read(world: World) -> None:
    await world.tenant("acme")
    owner, _ = await member_token(world, "acme", "own@acme.test", "owner", scope="members:read")
    viewer, _ = await member_token(world, "acme", "vic@acme.test", "viewer")
    for token in (owner, viewer):
        response = await get(world, token, VERIFY)
        assert_problem(response, 403, "insufficient-scope")
        assert 'scope="audit:read"' in response.headers["www-authenticate"]


async def test_events_filter_by_outcome(world: World) -> None:
    token = await auditor(world)
    await seed(world, 6)
    stored = await trail(world, "acme")
    for outcome in OUTCOMES:
        shown = (await get(world, token, EVENTS, params={"outcome": outcome})).json()["events"]
        assert [e["seq"] for e in shown] == [e.seq for e in stored if e.outcome == outcome]
        assert shown, outcome
    ndjson = {"Accept": "application/x-ndjson"}
    export = await get(world, token, EVENTS, params={"outcome": "denied"}, headers=ndjson)
    assert len(export.text.splitlines()) == sum(1 for e in stored if e.outcome == "denied")
    bad = await get(world, token, EVENTS, params={"outcome": "maybe"})
    assert_problem(bad, 422, "validation-error")
