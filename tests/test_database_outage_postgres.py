"""PostgreSQL out of reach (stopped, frozen, a COMMIT that never returns): clean 503s, no lost
acknowledged write, recovery on its return. A private server in a temp dir; never the shared one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from config.settings import Settings
from storage.migrate import upgrade
from storage.postgres_timeouts import connect_args
from tests.support import World, bearer, make_settings
from tests.support_items import create_item, item_body, items_url, tenant_with_owner
from tests.support_ops import capture_logs
from tests.support_outage import (
    ANSWER_WITHIN,
    assert_one_error_line,
    assert_unavailable,
    eventually,
    timed,
)
from tests.support_postgres import PostgresProcess, own_postgres

pytestmark = pytest.mark.xdist_group("private-postgres")


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresProcess]:
    with own_postgres() as server:
        upgrade(make_settings(server.url))
        yield server


@pytest.fixture
async def world(postgres: PostgresProcess) -> AsyncIterator[World]:
    if not postgres.running():
        postgres.start()
    # The engine's statements (sign-ins, audited changes) may wait DATABASE_BUSY_TIMEOUT for
    # their chain's lock, 10 s by default, before a frozen server counts as gone; at 1 s every
    # path answers within the 3 s (statements then get DATABASE_TIMEOUT, 2 s).
    settings: Settings = make_settings(postgres.url, database_busy_timeout=1.0)
    async with World.start(settings) as started:
        yield started
    if postgres.running():
        postgres.thaw()


async def _outage_requests(
    world: World,
    token: str,
    slug: str,
    item_id: str,
    *,
    write_kinds: tuple[str, ...] = ("database-unavailable",),
) -> None:
    """During the outage: data requests, audited changes and sign-ins are 503s within the bound
    (each timed from its own start; sent together, so a frozen server costs one timeout, not
    five), the identity path still answers."""
    me = await world.client.get("/v1/me", headers=bearer(token))
    assert me.status_code == 200, me.text
    auth = bearer(token)
    member = {"email": f"new@{slug}.test", "role": "viewer"}
    added, sign_in, read, listing, write = await asyncio.gather(
        timed(world.client.post(f"/v1/tenants/{slug}/members", json=member, headers=auth)),
        timed(world.token_response(f"owner@{slug}.test")),
        timed(world.client.get(items_url(slug, item_id), headers=auth)),
        timed(world.client.get(items_url(slug), headers=auth)),
        timed(world.client.post(items_url(slug), json=item_body("DURING"), headers=auth)),
    )
    assert_unavailable(*added, *write_kinds)
    assert_unavailable(*read)
    assert_unavailable(*listing)
    assert_unavailable(*write, *write_kinds)
    response, elapsed = sign_in
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "temporarily_unavailable"
    assert int(response.headers["retry-after"]) > 0
    assert elapsed < ANSWER_WITHIN, f"sign-in answered after {elapsed:.2f} s"
    ready = await world.client.get("/ready")
    assert ready.status_code == 503
    assert ready.json()["components"]["database"] == "down"


async def test_a_stopped_server_is_a_503_and_the_first_request_after_its_return_works(
    world: World, postgres: PostgresProcess
) -> None:
    token = await tenant_with_owner(world, "stopped")
    item = await create_item(world, token, "stopped", sku="BEFORE")
    postgres.stop()
    with capture_logs() as logs:
        read, elapsed = await timed(
            world.client.get(items_url("stopped", item["id"]), headers=bearer(token))
        )
        body = assert_unavailable(read, elapsed)
        assert body["request_id"] == read.headers["x-request-id"]
        sign_in, elapsed = await timed(world.token_response("owner@stopped.test"))
        assert sign_in.status_code == 503
        assert sign_in.json()["error"] == "temporarily_unavailable"
        assert int(sign_in.headers["retry-after"]) > 0
        assert sign_in.headers["cache-control"] == "no-store"
    assert_one_error_line(logs, [read, sign_in])
    await _outage_requests(world, token, "stopped", item["id"])

    postgres.start()
    again = await world.client.get(items_url("stopped", item["id"]), headers=bearer(token))
    assert again.status_code == 200, again.text
    created = await world.client.post(
        items_url("stopped"), json=item_body("AFTER"), headers=bearer(token)
    )
    assert created.status_code == 201, created.text
    listing = await world.client.get(items_url("stopped"), headers=bearer(token))
    assert [i["sku"] for i in listing.json()["items"]] == ["BEFORE", "AFTER"]


async def test_a_frozen_server_is_a_503_within_the_timeout_and_recovers(
    world: World, postgres: PostgresProcess
) -> None:
    token = await tenant_with_owner(world, "frozen")
    item = await create_item(world, token, "frozen", sku="BEFORE")
    postgres.freeze()
    try:
        # An INSERT sent to a frozen server may still run once it thaws: "unknown" is the only
        # true answer then; one that could not even get a connection is a plain 503.
        await _outage_requests(
            world,
            token,
            "frozen",
            item["id"],
            write_kinds=("database-unavailable", "commit-unknown"),
        )
    finally:
        postgres.thaw()
    read, elapsed = await eventually(
        lambda: world.client.get(items_url("frozen", item["id"]), headers=bearer(token)), 200
    )
    assert read.status_code == 200, read.text
    assert elapsed < 1.0


async def test_writes_under_an_outage_are_acknowledged_only_when_committed(
    world: World, postgres: PostgresProcess
) -> None:
    token = await tenant_with_owner(world, "load")

    async def writer(index: int) -> list[tuple[str, str]]:
        answers = []
        for step in range(12):
            sku = f"W{index}-{step}"
            response = await world.client.post(
                items_url("load"), json=item_body(sku), headers=bearer(token)
            )
            assert response.status_code in {201, 503}, response.text
            kind = response.json().get("type", "") if response.status_code == 503 else "created"
            answers.append((sku, kind.rsplit(":", 1)[-1]))
            await asyncio.sleep(0.05)
        return answers

    async def outage() -> None:
        await asyncio.sleep(0.15)
        await asyncio.to_thread(postgres.stop)
        await asyncio.sleep(0.3)
        await asyncio.to_thread(postgres.start)

    outage_task = asyncio.create_task(outage())
    answers = await asyncio.gather(*(writer(i) for i in range(4)))
    await outage_task
    outcome = {sku: kind for batch in answers for sku, kind in batch}
    assert "created" in outcome.values()
    assert "database-unavailable" in outcome.values()
    listing = await world.client.get(items_url("load") + "?limit=100", headers=bearer(token))
    stored = {i["sku"] for i in listing.json()["items"]}
    # Every 201 is stored; a plain 503 means nothing was written; only "commit-unknown" (a write
    # in flight when the server went down) may have gone either way.
    assert {sku for sku, kind in outcome.items() if kind == "created"} <= stored
    assert not {sku for sku, kind in outcome.items() if kind == "database-unavailable"} & stored


async def test_a_commit_that_never_returns_is_an_unknown_outcome_not_a_201(
    world: World, postgres: PostgresProcess
) -> None:
    token = await tenant_with_owner(world, "commit")
    # COMMIT now waits for a synchronous standby that does not exist: the change is written
    # locally and never acknowledged, the classic "did it commit?" case.
    postgres.sql("ALTER SYSTEM SET synchronous_standby_names = 'absent_standby'")
    postgres.sql("SELECT pg_reload_conf()")
    member = {"email": "doubt@commit.test", "role": "viewer"}
    try:
        with capture_logs() as logs:
            # An item (the driver's one statement) and an audited change (the engine's
            # transaction): both COMMITs wait.
            (write, elapsed), (added, added_in) = await asyncio.gather(
                timed(
                    world.client.post(
                        items_url("commit"), json=item_body("DOUBT"), headers=bearer(token)
                    )
                ),
                timed(
                    world.client.post(
                        "/v1/tenants/commit/members", json=member, headers=bearer(token)
                    )
                ),
            )
        assert_unavailable(write, elapsed, "commit-unknown")
        assert_unavailable(added, added_in, "commit-unknown")
        assert_one_error_line(logs, [write, added])
    finally:
        postgres.sql("ALTER SYSTEM RESET synchronous_standby_names")
        postgres.sql("SELECT pg_reload_conf()")
    # The change was written locally and becomes visible once the server stops waiting for the
    # standby (the reload reaches the waiting backend a moment later): "unknown" was the honest
    # answer, a "not written" 503 would have been a lie.
    listing, _ = await eventually(
        lambda: world.client.get(items_url("commit"), headers=bearer(token)),
        200,
        until=lambda response: bool(response.json()["items"]),
    )
    assert [i["sku"] for i in listing.json()["items"]] == ["DOUBT"]
    members, _ = await eventually(
        lambda: world.client.get("/v1/tenants/commit/members", headers=bearer(token)),
        200,
        until=lambda response: "doubt@commit.test" in response.text,
    )
    assert "doubt@commit.test" in members.text


async def test_a_connection_closed_without_an_answer_is_closed_quickly_and_quietly(
    postgres: PostgresProcess,
) -> None:
    """SQLAlchemy closes connections in normal work too (the pool's overflow, a dispose). When
    the server does not answer the goodbye in time (frozen here; merely busy in a soak run), the
    connection is dropped anyway: no wait beyond the cap, and no ERROR line for a failure that
    is none (SQLAlchemy logs one for any exception the close raises)."""
    if not postgres.running():
        postgres.start()
    settings = make_settings(postgres.url)
    engine = create_async_engine(postgres.url, connect_args=connect_args(settings))
    async with engine.connect() as connection:
        await connection.execute(sa.text("SELECT 1"))
    postgres.freeze()
    try:
        with capture_logs(logging.WARNING) as logs:
            started = time.monotonic()
            await engine.dispose()
            elapsed = time.monotonic() - started
    finally:
        postgres.thaw()
    assert elapsed < 1.0, f"closing took {elapsed:.2f} s"
    assert [entry for entry in logs.entries() if entry["level"] == "ERROR"] == []
