"""The counts that make the data path fast: one statement per item operation, none in the guard.

Timings are benchmarks (`make bench`), never tests; these tests pin what the speed is made of.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from storage.database import Database
from tests.support import World, bearer, make_settings, statements_run
from tests.support_items import create_item, items_url, tenant_with_owner


@contextmanager
def engine_statements(database: Database) -> Iterator[list[str]]:
    """Statements SQLAlchemy's engines run inside the block (the non-data-path storage)."""
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        seen.append(statement)

    engines = {database.reader.sync_engine, database.snapshots.sync_engine}
    engines.add(database.writer.sync_engine)
    for engine in engines:
        sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        for engine in engines:
            sa.event.remove(engine, "before_cursor_execute", record)


async def test_the_guard_runs_no_statement(world: World) -> None:
    token = await tenant_with_owner(world, "acme")
    await world.client.get("/v1/me", headers=bearer(token))  # warm: the tenant is published
    with statements_run(world.database) as fast, engine_statements(world.database) as slow:
        assert (await world.client.get("/v1/me", headers=bearer(token))).status_code == 200
        refused = await world.client.get(items_url("acme", "itm_" + "0" * 22))
        assert refused.status_code == 401
    assert fast == []
    assert slow == []


async def test_each_item_operation_is_one_statement(world: World) -> None:
    token = await tenant_with_owner(world, "acme")
    auth = bearer(token)
    item = await create_item(world, token, "acme")
    url = items_url("acme", item["id"])
    calls = [
        ("GET", url, None, {}),
        ("GET", items_url("acme") + "?limit=10&category=tools&name_prefix=Wid", None, {}),
        ("PATCH", url, {"quantity": 9}, {"If-Match": '"1"'}),
        ("POST", items_url("acme"), {**_body("SKU-2")}, {}),
        ("GET", "/v1/tenants/acme/reports/inventory", None, {}),
        ("DELETE", url, None, {"If-Match": '"2"'}),
    ]
    for method, target, body, headers in calls:
        with statements_run(world.database) as fast, engine_statements(world.database) as slow:
            response = await world.client.request(
                method, target, json=body, headers={**auth, **headers}
            )
        assert response.status_code < 300, (method, target, response.text)
        assert len(fast) == 1, (method, target, fast)
        assert slow == [], (method, target, slow)


async def test_a_stale_if_match_costs_one_more_statement_to_explain(world: World) -> None:
    token = await tenant_with_owner(world, "acme")
    item = await create_item(world, token, "acme")
    with statements_run(world.database) as fast:
        response = await world.client.patch(
            items_url("acme", item["id"]),
            json={"quantity": 1},
            headers={**bearer(token), "If-Match": '"7"'},
        )
    assert response.status_code == 412
    assert len(fast) == 2


def _body(sku: str) -> dict[str, object]:
    return {"sku": sku, "name": "Bolt", "category": "parts", "price": "0.10", "quantity": 5}


async def test_start_up_objects_are_out_of_the_collectors_sight_while_the_app_runs(
    database_url: str,
) -> None:
    """A full collection walks what requests made, not the app: frozen after start-up, released
    when the app stops (a test process starts hundreds of apps)."""
    async with World.start(make_settings(database_url)) as world:
        frozen, walked = gc.get_freeze_count(), len(gc.get_objects())
        assert (await world.client.get("/health")).status_code == 200
    assert frozen > walked  # the app's own objects are most of the process
    assert gc.get_freeze_count() == 0
