"""`tenantgate audit verify|export` and `tenantgate scopes matrix`, in-process and as a process."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner, Result

from api import cli
from api.schemas.audit import event_from_csv, event_from_ndjson
from config.settings import get_settings
from storage.audit_queries import verify_events
from storage.tables import audit_events
from tests.support import World
from tests.support_audit import every_stored_value, trail

TENANTGATE = str(Path(sys.executable).with_name("tenantgate"))


async def run(world: World, *args: str) -> Result:
    """The command in-process (a thread with its own event loop), on the world's database."""

    def call() -> Result:
        get_settings.cache_clear()
        try:
            env = {"TENANTGATE_DATABASE_URL": world.settings.database_url}
            return CliRunner().invoke(cli.app, list(args), env=env)
        finally:
            get_settings.cache_clear()

    return await asyncio.to_thread(call)


async def activity(world: World) -> None:
    await world.tenant("acme")
    await world.member("acme", "ann@acme.test", "owner")
    await world.member("acme", "vic@acme.test", "viewer")
    await world.login("ann@acme.test")
    await world.login("vic@acme.test")
    bad = {"grant_type": "password", "username": "vic@acme.test", "password": "nope"}
    assert (await world.client.post("/token", data=bad)).status_code == 400
    await world.client.post("/token", data={**bad, "username": "who@acme.test"})


async def test_verify_then_tamper(world: World) -> None:
    await activity(world)
    ok = await run(world, "audit", "verify", "acme")
    assert ok.exit_code == 0, ok.output
    last = (await trail(world, "acme"))[-1]
    assert ok.stdout.strip() == f"audit chain acme: ok, 3 events verified, last hash {last.hash}"
    platform = await run(world, "audit", "verify", "_platform")
    assert platform.exit_code == 0
    assert "1 events verified" in platform.stdout
    (second,) = [e for e in await trail(world, "acme") if e.seq == 2]
    async with world.database.write() as connection:
        await connection.execute(
            audit_events.update().where(audit_events.c.id == second.id).values(outcome="failure")
        )
    broken = await run(world, "audit", "verify", "acme")
    assert broken.exit_code == 1
    assert f"BROKEN at event 2 ({second.id})" in broken.stderr
    assert "1 events before it verified" in broken.stderr


async def test_an_export_is_complete_when_its_last_hash_is_what_verify_prints(
    world: World,
) -> None:
    """docs/audit.md: verify an export offline, then compare its last hash with `audit verify`."""
    await activity(world)
    exported = await run(world, "audit", "export", "acme")
    events = [event_from_ndjson(line) for line in exported.stdout.splitlines()]
    assert verify_events(events).ok
    printed = (await run(world, "audit", "verify", "acme")).stdout.strip()
    assert printed.endswith(f"last hash {events[-1].hash}")
    # An export cut short verifies offline too, but its last hash is not the printed one.
    assert verify_events(events[:-1]).ok
    assert not printed.endswith(f"last hash {events[-2].hash}")


async def test_verify_reports_a_deleted_event(world: World) -> None:
    await activity(world)
    async with world.database.write() as connection:
        await connection.execute(
            audit_events.delete().where(audit_events.c.chain == "acme", audit_events.c.seq == 1)
        )
    broken = await run(world, "audit", "verify", "acme")
    assert broken.exit_code == 1
    assert "BROKEN at event 1: event 1 is missing" in broken.stderr


async def test_exports_round_trip(world: World) -> None:
    await activity(world)
    stored = await trail(world, "acme")
    jsonl = await run(world, "audit", "export", "acme")
    assert jsonl.exit_code == 0, jsonl.output
    assert [event_from_ndjson(line) for line in jsonl.stdout.splitlines()] == stored
    table = await run(world, "audit", "export", "acme", "--format", "csv")
    rows = csv.DictReader(io.StringIO(table.stdout, newline=""))
    assert [event_from_csv(row) for row in rows] == stored
    since = stored[1].time.isoformat()
    later = await run(world, "audit", "export", "acme", "--since", since)
    assert [event_from_ndjson(line) for line in later.stdout.splitlines()] == stored[1:]
    empty = await run(world, "audit", "export", "nobody", "--format", "csv")
    assert empty.stdout.splitlines()[0].startswith("id,seq,tenant,time,")
    assert len(empty.stdout.splitlines()) == 1


async def test_scopes_matrix_formats(world: World) -> None:
    await activity(world)
    as_json = await run(world, "scopes", "matrix", "--tenant", "acme", "--format", "json")
    assert as_json.exit_code == 0, as_json.output
    document = json.loads(as_json.stdout)
    assert {m["email"]: m["role"] for m in document["members"]} == {
        "ann@acme.test": "owner",
        "vic@acme.test": "viewer",
    }
    assert any(r["path"] == "/v1/tenants/{tenant}/audit/events" for r in document["routes"])
    assert {s["open_sessions"] for s in document["sessions"]} == {1}
    as_csv = await run(world, "scopes", "matrix", "--format", "csv")
    rows = list(csv.reader(io.StringIO(as_csv.stdout)))
    assert rows[0] == ["section", "name", "scopes", "detail"]
    assert [
        "route",
        "GET /v1/tenants/{tenant}/items",
        "items:read",
        "token, tenant, admission",
    ] in rows
    assert ["role", "auditor", "audit:read clients:read members:read", ""] in rows
    assert not any(row[0] == "member" for row in rows)  # no --tenant: no holders
    table = await run(world, "scopes", "matrix", "--tenant", "acme")
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["section", "name", "scopes", "detail"]
    assert any(line.startswith("member") and "vic@acme.test" in line for line in lines)
    # The plain JSON (no tenant) lists routes and roles only.
    plain = json.loads((await run(world, "scopes", "matrix", "--format", "json")).stdout)
    assert set(plain) == {"routes", "roles"}


def test_verify_of_an_unknown_database_fails_cleanly(tmp_path: Path) -> None:
    env = {**os.environ, "TENANTGATE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/empty.db"}
    result = subprocess.run(
        [TENANTGATE, "audit", "verify", "acme"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "tenantgate db upgrade" in result.stderr


async def test_changes_made_from_the_command_line_are_audited(world: World) -> None:
    assert (await run(world, "tenants", "create", "globex", "--plan", "pro")).exit_code == 0
    user_id = await world.user("hank@globex.test")
    added = await run(world, "members", "add", "globex", "hank@globex.test", "--role", "viewer")
    assert added.exit_code == 0, added.output
    created = await run(
        world, "clients", "create", "globex", "Sync", "--scope", "items:read", "--json"
    )
    assert created.exit_code == 0, created.output
    client = json.loads(created.stdout)
    events = await trail(world, "globex")
    assert [(e.action, e.actor_kind, e.actor_subject) for e in events] == [
        ("tenant.created", "system", "cli"),
        ("member.added", "system", "cli"),
        ("client.created", "system", "cli"),
    ]
    assert events[0].details == {"plan": "pro"}
    assert (events[1].target, events[1].details) == (f"user:{user_id}", {"role": "viewer"})
    assert events[1].scopes == ("items:read", "reports:read")
    assert (events[2].target, events[2].details) == (
        f"client:{client['client_id']}",
        {"name": "Sync"},
    )
    assert client["client_secret"] not in await every_stored_value(world)
