"""The inventory report: per-category aggregates computed by the database, exact to the digit."""

from __future__ import annotations

from decimal import Decimal

from tests.support import World, bearer, statements_run
from tests.support_items import assert_problem, create_item, tenant_with_owner

REPORT = "/v1/tenants/{}/reports/inventory"


async def test_an_empty_tenant_reports_zeros(world: World) -> None:
    owner = await tenant_with_owner(world, "acme")
    response = await world.client.get(REPORT.format("acme"), headers=bearer(owner))
    assert response.status_code == 200
    report = response.json()
    assert report["categories"] == []
    assert report["totals"] == {"item_count": 0, "total_quantity": 0, "stock_value": "0.0000"}
    assert report["generated_at"].endswith("Z")


async def test_values_are_exact_where_floats_are_not(world: World) -> None:
    owner = await tenant_with_owner(world, "acme")
    # 0.1 + 0.1 + 0.1 == 0.30000000000000004 and 0.1 * 3 == 0.30000000000000004 in floats.
    for n in range(3):
        await create_item(
            world, owner, "acme", sku=f"D{n}", category="dimes", price="0.1", quantity=1
        )
    await create_item(world, owner, "acme", sku="T", category="triple", price=0.1, quantity=3)
    await create_item(world, owner, "acme", sku="C", category="cents", price="19.99", quantity=3)
    await create_item(world, owner, "acme", sku="Z", category="cents", price="0.0001", quantity=0)
    await create_item(world, owner, "acme", sku="E", category="cents", price="0", quantity=7)
    response = await world.client.get(REPORT.format("acme"), headers=bearer(owner))
    report = response.json()
    assert report["categories"] == [
        {"category": "cents", "item_count": 3, "total_quantity": 10, "stock_value": "59.9700"},
        {"category": "dimes", "item_count": 3, "total_quantity": 3, "stock_value": "0.3000"},
        {"category": "triple", "item_count": 1, "total_quantity": 3, "stock_value": "0.3000"},
    ]
    assert report["totals"] == {"item_count": 7, "total_quantity": 16, "stock_value": "60.5700"}


async def test_values_beyond_64_bits_per_row_stay_exact(world: World) -> None:
    """price_units x quantity of one row passes 2**63; the report must still be exact."""
    owner = await tenant_with_owner(world, "acme")
    price, quantity = "999999999.9999", 1_000_000_000
    for n in range(2):
        await create_item(
            world, owner, "acme", sku=f"B{n}", category="big", price=price, quantity=quantity
        )
    await create_item(world, owner, "acme", sku="S", category="small", price="0.0001", quantity=1)
    report = (await world.client.get(REPORT.format("acme"), headers=bearer(owner))).json()
    row = Decimal(price) * quantity
    assert report["categories"][0] == {
        "category": "big",
        "item_count": 2,
        "total_quantity": 2 * quantity,
        "stock_value": f"{row * 2:.4f}",
    }
    assert report["totals"]["stock_value"] == f"{row * 2 + Decimal('0.0001'):.4f}"
    assert report["totals"]["stock_value"] == "1999999999999800000.0001"


async def test_a_sum_beyond_what_sqlite_can_hold_is_refused_not_wrong(world: World) -> None:
    """PostgreSQL sums bigints as exact numerics; SQLite stops at 2**63 and we say so (409)."""
    owner = await tenant_with_owner(world, "acme")
    price, quantity = "999999999.9999", 1_000_000_000
    for n in range(10):
        await create_item(
            world, owner, "acme", sku=f"B{n}", category="big", price=price, quantity=quantity
        )
    response = await world.client.get(REPORT.format("acme"), headers=bearer(owner))
    if world.database.is_sqlite:
        body = assert_problem(response, 409, "conflict")
        assert "too large" in body["detail"]
    else:
        assert response.status_code == 200
        assert response.json()["totals"]["stock_value"] == f"{Decimal(price) * quantity * 10:.4f}"


async def test_only_the_callers_tenant_is_counted(world: World) -> None:
    acme = await tenant_with_owner(world, "acme")
    globex = await tenant_with_owner(world, "globex")
    await create_item(world, acme, "acme", sku="A", category="shared", price="1", quantity=1)
    await create_item(world, globex, "globex", sku="G", category="shared", price="1000", quantity=9)
    await create_item(
        world, globex, "globex", sku="H", category="globex-only", price="5", quantity=5
    )
    report = (await world.client.get(REPORT.format("acme"), headers=bearer(acme))).json()
    assert report["categories"] == [
        {"category": "shared", "item_count": 1, "total_quantity": 1, "stock_value": "1.0000"}
    ]
    foreign = await world.client.get(REPORT.format("globex"), headers=bearer(acme))
    assert_problem(foreign, 404, "tenant-not-found")


async def test_the_report_is_one_aggregate_query(world: World) -> None:
    """Computed by the database: one SELECT with GROUP BY, whatever the number of items."""
    owner = await tenant_with_owner(world, "acme")
    for n in range(5):
        await create_item(world, owner, "acme", sku=f"S{n}", category=f"c{n % 2}")
    with statements_run(world.database) as statements:
        response = await world.client.get(REPORT.format("acme"), headers=bearer(owner))
    assert response.status_code == 200
    assert len(statements) == 1
    assert "GROUP BY" in statements[0]
    assert "sum(" in statements[0].lower()


async def test_the_report_needs_reports_read(world: World) -> None:
    await tenant_with_owner(world, "acme")
    await world.member("acme", "writer@acme.test", "member")
    narrowed = await world.login("writer@acme.test", scope="items:read items:write")
    response = await world.client.get(REPORT.format("acme"), headers=bearer(narrowed))
    body = assert_problem(response, 403, "insufficient-scope")
    assert body["required_scopes"] == ["reports:read"]
    assert 'scope="reports:read"' in response.headers["www-authenticate"]
    assert_problem(await world.client.get(REPORT.format("acme")), 401, "unauthenticated")
