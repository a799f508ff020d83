"""GET /audit/events: filters, cursor pages, NDJSON and CSV exports that read back to the events."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from api.schemas.audit import CSV_COLUMNS, event_from_csv, event_from_ndjson
from storage.audit import Action, Actor, Context, Event, NewEvent, append
from storage.audit_queries import verify_events
from tests.support import World
from tests.support_audit import get, member_token, trail

EVENTS = "/v1/tenants/acme/audit/events"
# A user agent a spreadsheet would run as a formula, and one with CSV's special characters.
NASTY_AGENTS = ['=HYPERLINK("http://evil")', 'a "quoted", comma\'d agent', "-2+3", "'quoted"]


async def seed(world: World, count: int) -> None:
    async with world.database.write() as connection:
        for number in range(count):
            await append(
                connection,
                NewEvent(
                    action=Action.MEMBER_ADDED if number % 2 else Action.MEMBER_REMOVED,
                    tenant="acme",
                    actor=Actor("user", f"usr_{number % 3}"),
                    target=f"user:usr_t{number}",
                    scopes={"members:write", "members:read"},
                    context=Context("192.0.2.1", NASTY_AGENTS[number % 4], None),
                    details={"role": "viewer", "note": "line\nbreak, ünïcode", "n": number},
                ),
            )


async def auditor(world: World) -> str:
    await world.tenant("acme")
    token, _ = await member_token(world, "acme", "aud@acme.test", "auditor")
    return token


async def test_pages_walk_the_whole_chain_in_order(world: World) -> None:
    token = await auditor(world)
    await seed(world, 7)
    seen: list[int] = []
    cursor: str | None = None
    while True:
        params = {"limit": 3, "action": "member.added"}
        if cursor:
            params["cursor"] = cursor
        response = await get(world, token, EVENTS, params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        seen += [event["seq"] for event in body["events"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    added = [e.seq for e in await trail(world, "acme", "member.added")]
    assert seen == added
    assert len(seen) == 3  # member.added are the odd numbers of 0..6


async def test_filters(world: World) -> None:
    token = await auditor(world)
    await seed(world, 6)
    stored = await trail(world, "acme")
    by_actor = (await get(world, token, EVENTS, params={"actor": "usr_1"})).json()["events"]
    assert [e["seq"] for e in by_actor] == [e.seq for e in stored if e.actor_subject == "usr_1"]
    middle = stored[2].time
    since = {"since": middle.isoformat()}
    assert [e["seq"] for e in (await get(world, token, EVENTS, params=since)).json()["events"]] == [
        e.seq for e in stored if e.time >= middle
    ]
    until = {"until": middle.isoformat()}
    assert [e["seq"] for e in (await get(world, token, EVENTS, params=until)).json()["events"]] == [
        e.seq for e in stored if e.time < middle
    ]
    later = {"since": (stored[-1].time + timedelta(seconds=1)).isoformat()}
    assert (await get(world, token, EVENTS, params=later)).json() == {
        "events": [],
        "next_cursor": None,
    }


async def test_the_json_event_is_the_stored_event(world: World) -> None:
    token = await auditor(world)
    await seed(world, 1)
    (stored,) = await trail(world, "acme", "member.removed")
    params = {"action": "member.removed"}
    (shown,) = (await get(world, token, EVENTS, params=params)).json()["events"]
    assert shown == stored.fields()
    assert set(shown) == {
        "id",
        "seq",
        "tenant",
        "time",
        "actor_kind",
        "actor_subject",
        "action",
        "target",
        "outcome",
        "scopes",
        "client_ip",
        "user_agent",
        "request_id",
        "details",
        "prev_hash",
        "hash",
    }


async def test_bad_query_parameters_are_422_problems(world: World) -> None:
    token = await auditor(world)
    for params in (
        {"cursor": "not-a-cursor"},
        {"cursor": "c2VxOi0x"},  # "seq:-1"
        {"since": "2024-01-01T00:00:00"},  # no timezone: ambiguous
        {"until": "yesterday"},
        {"limit": 0},
        {"limit": 101},
    ):
        response = await get(world, token, EVENTS, params=params)
        assert response.status_code == 422, params
        assert response.headers["content-type"] == "application/problem+json"


async def exported(world: World, token: str, accept: str, **params: str) -> tuple[str, str]:
    response = await get(world, token, EVENTS, headers={"Accept": accept}, params=params)
    assert response.status_code == 200, response.text
    return response.headers["content-type"], response.text


async def test_ndjson_export_reads_back_to_the_same_events(world: World) -> None:
    token = await auditor(world)
    await seed(world, 510)  # more than one export batch (500)
    stored = await trail(world, "acme")
    media, text = await exported(world, token, "application/x-ndjson")
    assert media == "application/x-ndjson"
    parsed = [event_from_ndjson(line) for line in text.splitlines()]
    assert parsed == stored
    # An unfiltered export is a whole chain: it verifies offline.
    assert verify_events(parsed).ok


async def test_csv_export_reads_back_to_the_same_events(world: World) -> None:
    token = await auditor(world)
    await seed(world, 8)
    async with world.database.write() as connection:
        # nulls everywhere they are allowed, no scopes, empty details
        await append(
            connection, NewEvent(action="token.refused", tenant="acme", actor=Actor("anonymous"))
        )
    stored = await trail(world, "acme")
    media, text = await exported(world, token, "text/csv, application/json;q=0.5")
    assert media.startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    parsed: list[Event] = [event_from_csv(row) for row in rows]
    assert parsed == stored
    assert verify_events(parsed).ok
    # No cell starts a formula in a spreadsheet.
    for row in csv.reader(io.StringIO(text, newline="")):
        assert not any(cell.startswith(("=", "+", "-", "@")) for cell in row)


async def test_exports_apply_the_filters(world: World) -> None:
    token = await auditor(world)
    await seed(world, 6)
    removed = await trail(world, "acme", "member.removed")
    _, text = await exported(world, token, "application/x-ndjson", action="member.removed")
    assert [event_from_ndjson(line) for line in text.splitlines()] == removed
    _, text = await exported(world, token, "text/csv", actor="nobody")
    assert text.splitlines() == [",".join(CSV_COLUMNS)]


async def test_a_tenant_sees_only_its_own_trail(world: World) -> None:
    token = await auditor(world)
    await world.tenant("other")
    other_token, _ = await member_token(world, "other", "aud@other.test", "auditor")
    await seed(world, 2)
    mine = (await get(world, other_token, "/v1/tenants/other/audit/events")).json()["events"]
    assert {(e["tenant"], e["action"]) for e in mine} == {("other", "token.issued")}
    response = await get(world, other_token, EVENTS)
    assert response.status_code == 404
    assert response.json()["type"] == "urn:tenantgate:problem:tenant-not-found"
    shown = (await get(world, token, EVENTS)).json()["events"]
    assert {e["tenant"] for e in shown} == {"acme"}
    assert len(shown) == 3  # the auditor's login and the two seeded events
