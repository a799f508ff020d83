"""Cached reports: served from the cache until the tenant's next item write, never stale (one
worker, Redis, two worker processes), tenant by tenant, bypassed while Redis is down; ETags and
If-None-Match on reports and item reads."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from config.settings import Settings
from tests.support import TEST_ISSUER, World, bearer, make_settings, statements_run
from tests.support_items import create_item, tenant_with_owner
from tests.support_redis import RedisProcess
from tests.test_workers_exact import uvicorn_workers

REPORT = "/v1/tenants/{}/reports/inventory"


def lookups(text: str) -> dict[str, float]:
    """tenantgate_report_cache_lookups_total by result, and the hit ratio gauge."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "tenantgate_report_cache_lookups_total":
                found[sample.labels["result"]] = sample.value
            if sample.name == "tenantgate_report_cache_hit_ratio":
                found["ratio"] = sample.value
    return found


async def counts(world: World) -> dict[str, float]:
    return lookups((await world.client.get("/metrics")).text)


async def report(world: World, token: str, tenant: str = "acme", **headers: str) -> httpx.Response:
    return await world.client.get(REPORT.format(tenant), headers={**bearer(token), **headers})


def totals(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()["totals"]
    return body


async def reads_follow_writes(world: World) -> None:
    """Hits until a write; the write's own tenant only; the figures always current."""
    owner = await tenant_with_owner(world, "acme")
    globex = await tenant_with_owner(world, "globex")
    first = await report(world, owner)
    assert totals(first)["item_count"] == 0
    tag = first.headers["etag"]
    assert tag.startswith('W/"')
    with statements_run(world.database) as statements:
        again = await report(world, owner)
    assert statements == []  # served from the cache: no query
    assert again.content == first.content
    assert (await counts(world))["hit"] == 1

    item = await create_item(world, owner, "acme", sku="A", price="9.99", quantity=2)
    after = await report(world, owner)
    assert totals(after) == {"item_count": 1, "total_quantity": 2, "stock_value": "19.9800"}
    assert after.headers["etag"] != tag

    # Another tenant's writes leave this report (and its tag) cached.
    await create_item(world, globex, "globex", sku="G", quantity=5)
    before = await counts(world)
    with statements_run(world.database) as statements:
        untouched = await report(world, owner)
    assert statements == []
    assert untouched.content == after.content
    assert (await counts(world))["hit"] == before["hit"] + 1
    assert totals(await report(world, globex, "globex"))["total_quantity"] == 5

    url = f"/v1/tenants/acme/items/{item['id']}"
    patched = await world.client.patch(url, json={"quantity": 7}, headers=bearer(owner))
    assert patched.status_code == 200
    assert totals(await report(world, owner))["total_quantity"] == 7
    # A rename changes no figure: regenerated, same tag, so a client's copy stays current.
    renamed = await world.client.patch(url, json={"name": "Anvil"}, headers=bearer(owner))
    assert renamed.status_code == 200
    regenerated = await report(world, owner)
    assert regenerated.headers["etag"] == (await report(world, owner)).headers["etag"]
    current = await report(world, owner, **{"if-none-match": regenerated.headers["etag"]})
    assert current.status_code == 304
    deleted = await world.client.delete(url, headers=bearer(owner))
    assert deleted.status_code == 204
    assert totals(await report(world, owner))["item_count"] == 0
    seen = await counts(world)
    assert seen["hit"] >= 3
    assert seen["miss"] >= 5
    assert 0 < seen["ratio"] < 1


async def test_reads_follow_writes_in_process(world: World) -> None:
    await reads_follow_writes(world)


async def test_reads_follow_writes_with_redis(
    database_url: str, redis_url: str, redis_prefix: str
) -> None:
    settings = make_settings(database_url, redis_url=redis_url, redis_prefix=redis_prefix)
    async with World.start(settings) as world:
        await reads_follow_writes(world)
    redis = Redis.from_url(redis_url)
    try:
        # The cache lives in Redis, under the tenant's hash tag.
        keys = {key.decode() async for key in redis.scan_iter(match=f"{redis_prefix}:*reports*")}
        assert f"{redis_prefix}:{{acme}}:reports:generation" in keys
        assert f"{redis_prefix}:{{acme}}:reports:inventory" in keys
        acme = int(await redis.get(f"{redis_prefix}:{{acme}}:reports:generation") or 0)
        globex = int(await redis.get(f"{redis_prefix}:{{globex}}:reports:generation") or 0)
        assert (acme, globex) == (4, 1)  # one bump per write of each tenant
    finally:
        await redis.aclose()


async def test_conditional_reads_of_reports_and_items(world: World) -> None:
    owner = await tenant_with_owner(world, "acme")
    item = await create_item(world, owner, "acme", sku="A")
    tag = (await report(world, owner)).headers["etag"]
    for header in (tag, tag.removeprefix("W/"), f'"other", {tag}', "*"):
        response = await report(world, owner, **{"if-none-match": header})
        assert response.status_code == 304, header
        assert response.content == b""
        assert response.headers["etag"] == tag
    assert (await report(world, owner, **{"if-none-match": '"other"'})).status_code == 200

    url = f"/v1/tenants/acme/items/{item['id']}"
    one = await world.client.get(url, headers={**bearer(owner), "if-none-match": '"1"'})
    assert (one.status_code, one.headers["etag"], one.content) == (304, '"1"', b"")
    await world.client.patch(url, json={"quantity": 9}, headers=bearer(owner))
    changed = await world.client.get(url, headers={**bearer(owner), "if-none-match": '"1"'})
    assert changed.status_code == 200
    assert changed.headers["etag"] == '"2"'

    listing = await world.client.get("/v1/tenants/acme/items", headers=bearer(owner))
    page_tag = listing.headers["etag"]
    same = await world.client.get(
        "/v1/tenants/acme/items", headers={**bearer(owner), "if-none-match": page_tag}
    )
    assert same.status_code == 304
    await create_item(world, owner, "acme", sku="B")
    grown = await world.client.get(
        "/v1/tenants/acme/items", headers={**bearer(owner), "if-none-match": page_tag}
    )
    assert grown.status_code == 200
    assert len(grown.json()["items"]) == 2
    # The guards still run first: a tag answers nothing for another tenant's token.
    globex = await tenant_with_owner(world, "globex")
    foreign = await report(world, globex, "acme", **{"if-none-match": "*"})
    assert foreign.status_code == 404


async def test_an_over_long_if_none_match_is_the_same_422_on_every_conditional_read(
    world: World,
) -> None:
    """Item reads read the header themselves (api/conditional.py), the report through FastAPI:
    a client cannot tell the two apart."""
    owner = await tenant_with_owner(world, "acme")
    item = await create_item(world, owner, "acme", sku="A")
    long = ", ".join(['"1"'] * 401)  # 2003 characters
    answers = [
        await world.client.get(url, headers={**bearer(owner), "if-none-match": long})
        for url in (
            f"/v1/tenants/acme/items/{item['id']}",
            "/v1/tenants/acme/items",
            "/v1/tenants/acme/reports/inventory",
        )
    ]
    bodies = [(a.status_code, a.json()["type"], a.json()["errors"]) for a in answers]
    assert bodies == [bodies[2]] * 3
    assert bodies[2][0] == 422
    assert bodies[2][2] == [
        {
            "loc": ["header", "if-none-match"],
            "msg": "String should have at most 2000 characters",
            "type": "string_too_long",
        }
    ]
    at_most = ", ".join(['"2"'] * 400)  # 1998 characters: a tag list, not a 422
    one = await world.client.get(
        f"/v1/tenants/acme/items/{item['id']}", headers={**bearer(owner), "if-none-match": at_most}
    )
    assert one.status_code == 200


@pytest.mark.xdist_group("worker-processes")
async def test_a_write_on_one_worker_is_never_stale_on_the_other(
    production_database_url: str, redis_url: str, redis_prefix: str
) -> None:
    database_url = production_database_url
    settings = make_settings(database_url, redis_url=redis_url, redis_prefix=redis_prefix)
    async with World.start(settings) as world:
        owner = await tenant_with_owner(world, "acme")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TENANTGATE_", "PROMETHEUS_"))},
        "TENANTGATE_DATABASE_URL": database_url,
        "TENANTGATE_REDIS_URL": redis_url,
        "TENANTGATE_REDIS_PREFIX": redis_prefix,
        "TENANTGATE_ISSUER": TEST_ISSUER,
        "TENANTGATE_AUDIENCE": settings.audience,
        "TENANTGATE_WORKERS": "2",
        "TENANTGATE_REDIS_TIMEOUT": "5",
    }
    with uvicorn_workers(2, env) as urls:
        async with httpx.AsyncClient(timeout=30, headers=bearer(owner)) as client:
            quantity = 0
            for step in range(12):
                body = {
                    "sku": f"S{step}",
                    "name": "x",
                    "category": "c",
                    "price": "1",
                    "quantity": step,
                }
                writer, reader = urls[step % 2], urls[(step + 1) % 2]
                created = await client.post(f"{writer}/v1/tenants/acme/items", json=body)
                assert created.status_code == 201, created.text
                quantity += step
                # Read on the other worker right away, twice (the second is a hit).
                for _ in range(2):
                    seen = await client.get(f"{reader}{REPORT.format('acme')}")
                    assert seen.json()["totals"]["total_quantity"] == quantity, step
            hits = [lookups((await client.get(f"{url}/metrics")).text) for url in urls]
    assert all(h["hit"] >= 6 for h in hits), hits


@pytest.fixture
async def own_redis_server(tmp_path: Path) -> AsyncIterator[RedisProcess]:
    server = RedisProcess(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_with_redis_down_reports_come_from_the_database(
    database_url: str, own_redis_server: RedisProcess
) -> None:
    settings: Settings = make_settings(
        database_url,
        redis_url=own_redis_server.url,
        redis_timeout=0.2,
        redis_breaker_cooldown=0.2,
    )
    async with World.start(settings) as world:
        owner = await tenant_with_owner(world, "acme")
        await create_item(world, owner, "acme", sku="A", quantity=1)
        assert totals(await report(world, owner))["total_quantity"] == 1
        assert (await counts(world)).get("miss") == 1
        own_redis_server.pause()  # hung: connections open, nothing answers
        try:
            await create_item(world, owner, "acme", sku="B", quantity=2)
            for _ in range(2):
                assert totals(await report(world, owner))["total_quantity"] == 3
            assert (await counts(world))["bypass"] >= 2
        finally:
            own_redis_server.resume()
        # The invalidation owed while Redis hung is delivered before the cache serves again:
        # the entry cached before the hang (quantity 1) is never shown.
        for _ in range(50):
            assert totals(await report(world, owner))["total_quantity"] == 3
            if (await counts(world)).get("hit", 0) >= 1:
                break
            await asyncio.sleep(0.1)
        assert (await counts(world))["hit"] >= 1


def test_the_report_cache_is_off_for_several_workers_without_redis() -> None:
    from storage.report_cache import (
        DisabledReportCache,
        MemoryReportCache,
        RedisReportCache,
        open_report_cache,
    )

    one = make_settings("sqlite+aiosqlite:///:memory:")
    assert isinstance(open_report_cache(one), MemoryReportCache)
    assert isinstance(open_report_cache(one.model_copy(update={"workers": 2})), DisabledReportCache)
    off = one.model_copy(update={"report_cache_ttl": 0})
    assert isinstance(open_report_cache(off), DisabledReportCache)
    shared = one.model_copy(update={"workers": 2, "redis_url": "redis://127.0.0.1:1/0"})
    cache = open_report_cache(shared)
    assert isinstance(cache, RedisReportCache)
    asyncio.run(cache.close())
