"""Items through HTTP: create, read, list (cursors, filters), update and delete (If-Match)."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from tests.support import World, bearer
from tests.support_items import (
    assert_problem,
    create_item,
    error_locations,
    item_body,
    items_url,
    tenant_with_owner,
)


@pytest.fixture
async def owner(world: World) -> str:
    return await tenant_with_owner(world, "acme")


async def test_create_then_read(world: World, owner: str) -> None:
    response = await world.client.post(
        items_url("acme"), json=item_body(tags=["blue", "big"]), headers=bearer(owner)
    )
    assert response.status_code == 201
    created = response.json()
    assert created["id"].startswith("itm_")
    assert response.headers["location"] == f"/v1/tenants/acme/items/{created['id']}"
    assert response.headers["etag"] == '"1"'
    assert created["price"] == "12.5000"
    assert created["version"] == 1
    assert created["tags"] == ["blue", "big"]
    assert created["created_at"] == created["updated_at"]
    assert set(created) == {
        "id",
        "sku",
        "name",
        "description",
        "category",
        "price",
        "quantity",
        "tags",
        "version",
        "created_at",
        "updated_at",
    }
    read = await world.client.get(response.headers["location"], headers=bearer(owner))
    assert read.status_code == 200
    assert read.json() == created
    assert read.headers["etag"] == '"1"'


async def test_defaults_and_whitespace(world: World, owner: str) -> None:
    body = item_body(name="  Spaced  ")
    del body["description"], body["tags"]
    response = await world.client.post(items_url("acme"), json=body, headers=bearer(owner))
    created = response.json()
    assert created["description"] == ""
    assert created["tags"] == []
    assert created["name"] == "Spaced"
    text = "two\nlines\tand a tab"
    patched = await world.client.patch(
        items_url("acme", created["id"]), json={"description": text}, headers=bearer(owner)
    )
    assert patched.json()["description"] == text


EXACT_PRICES: list[tuple[Any, str]] = [
    ("12.5", "12.5000"),
    (12.5, "12.5000"),
    (0.1, "0.1000"),
    (7, "7.0000"),
    ("0", "0.0000"),
    ("0.0001", "0.0001"),
    ("12.50000", "12.5000"),
    (" 3.25 ", "3.2500"),
    ("999999999.9999", "999999999.9999"),
]


async def test_prices_are_exact(world: World, owner: str) -> None:
    for n, (price, shown) in enumerate(EXACT_PRICES):
        created = await create_item(world, owner, "acme", sku=f"P{n}", price=price)
        assert created["price"] == shown, price


BAD_PRICES: list[Any] = [
    "-1",
    -0.5,
    "NaN",
    "nan",
    "Infinity",
    "-Infinity",
    "1e3",
    "12.34567",
    12.34567,
    "0.00001",
    "1000000000",
    1e9,
    1e300,
    "1_000",
    "12,50",
    "",
    "abc",
    True,
    None,
    [],
    {"amount": 1},
]


async def test_bad_prices_are_422(world: World, owner: str) -> None:
    for price in BAD_PRICES:
        response = await world.client.post(
            items_url("acme"), json=item_body(price=price), headers=bearer(owner)
        )
        assert ["body", "price"] in [loc[:2] for loc in error_locations(response)], price
    # Python's json module reads these literals as floats; they still are no price.
    for literal in ("NaN", "Infinity", "-Infinity"):
        content = '{"sku": "S", "name": "n", "category": "c", "quantity": 1, "price": ' + literal
        response = await world.client.post(
            items_url("acme"),
            content=content + "}",
            headers={**bearer(owner), "content-type": "application/json"},
        )
        assert error_locations(response) == [["body", "price"]]
    broken = await world.client.post(
        items_url("acme"),
        content="{not json",
        headers={**bearer(owner), "content-type": "application/json"},
    )
    assert_problem(broken, 422, "validation-error")
    assert (await world.client.get(items_url("acme"), headers=bearer(owner))).json()["items"] == []


BAD_FIELDS: list[tuple[str, Any]] = [
    ("quantity", -1),
    ("quantity", 1.5),
    ("quantity", "5"),
    ("quantity", True),
    ("quantity", 1_000_000_001),
    ("sku", ""),
    ("sku", "x" * 65),
    ("sku", "has space"),
    ("sku", "-leading"),
    ("name", ""),
    ("name", "n" * 201),
    ("description", "d" * 2001),
    ("category", ""),
    ("category", "c" * 101),
    ("tags", ["t"] * 21),
    ("tags", ["t" * 41]),
    ("tags", [""]),
    ("tags", "blue"),
    # Control characters: none belongs in a one-line field (NUL, which PostgreSQL refuses, is a
    # 400 invalid-text everywhere: tests/test_nul_input.py).
    ("name", "two\nlines"),
    ("category", "tab\there"),
    ("tags", ["esc\x1b"]),
    ("description", "bell\x07"),
]


async def test_bad_fields_are_422(world: World, owner: str) -> None:
    for field, value in BAD_FIELDS:
        response = await world.client.post(
            items_url("acme"), json=item_body(**{field: value}), headers=bearer(owner)
        )
        assert ["body", field] in [loc[:2] for loc in error_locations(response)], (field, value)
    for field in ("sku", "name", "category", "price", "quantity"):
        body = item_body()
        del body[field]
        response = await world.client.post(items_url("acme"), json=body, headers=bearer(owner))
        assert error_locations(response) == [["body", field]]
    assert (await world.client.get(items_url("acme"), headers=bearer(owner))).json()["items"] == []


SERVER_OWNED: list[tuple[str, Any]] = [
    ("tenant", "other"),
    ("id", "itm_0000000000000000000000"),
    ("version", 7),
    ("created_at", "2020-01-01T00:00:00Z"),
    ("updated_at", "2020-01-01T00:00:00Z"),
    ("price_units", 1),
]


async def test_server_owned_fields_are_refused(world: World, owner: str) -> None:
    created = await create_item(world, owner, "acme")
    for field, value in SERVER_OWNED:
        response = await world.client.post(
            items_url("acme"), json=item_body(sku="NEW", **{field: value}), headers=bearer(owner)
        )
        assert error_locations(response) == [["body", field]]
        patch = await world.client.patch(
            items_url("acme", created["id"]),
            json={"name": "x", field: value},
            headers=bearer(owner),
        )
        assert error_locations(patch) == [["body", field]]
    listed = await world.client.get(items_url("acme"), headers=bearer(owner))
    assert listed.json()["items"] == [created]


async def test_sku_is_unique_per_tenant(world: World, owner: str) -> None:
    await create_item(world, owner, "acme", sku="DUP")
    again = await world.client.post(
        items_url("acme"), json=item_body(sku="DUP"), headers=bearer(owner)
    )
    body = assert_problem(again, 409, "conflict")
    assert "SKU" in body["detail"]
    other = await tenant_with_owner(world, "globex")
    await create_item(world, other, "globex", sku="DUP")


async def test_unknown_and_foreign_items_are_404(world: World, owner: str) -> None:
    other = await tenant_with_owner(world, "globex")
    foreign = await create_item(world, other, "globex")
    unknown = "itm_" + "0" * 22
    bodies = []
    for item_id in (foreign["id"], unknown, "nonsense", "itm_%00", "itm_0'--"):
        url = items_url("acme", item_id)
        for response in (
            await world.client.get(url, headers=bearer(owner)),
            await world.client.patch(url, json={"name": "mine"}, headers=bearer(owner)),
            await world.client.delete(url, headers=bearer(owner)),
            await world.client.delete(url, headers={**bearer(owner), "If-Match": '"1"'}),
        ):
            body = assert_problem(response, 404, "item-not-found")
            assert "etag" not in response.headers
            bodies.append({k: v for k, v in body.items() if k not in ("instance", "request_id")})
    assert all(body == bodies[0] for body in bodies)
    still = await world.client.get(items_url("globex", foreign["id"]), headers=bearer(other))
    assert still.json() == foreign
    overlong = await world.client.get(items_url("acme", "x" * 41), headers=bearer(owner))
    assert error_locations(overlong) == [["path", "item_id"]]


async def test_patch_changes_only_what_is_sent(world: World, owner: str) -> None:
    created = await create_item(world, owner, "acme")
    url = items_url("acme", created["id"])
    response = await world.client.patch(
        url, json={"price": "0.3", "tags": [], "quantity": 0}, headers=bearer(owner)
    )
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == '"2"'
    patched = response.json()
    assert patched["version"] == 2
    assert patched["updated_at"] > created["updated_at"]
    assert patched["created_at"] == created["created_at"]
    unchanged = {"id", "sku", "name", "description", "category", "created_at"}
    assert {k: patched[k] for k in unchanged} == {k: created[k] for k in unchanged}
    assert (patched["price"], patched["tags"], patched["quantity"]) == ("0.3000", [], 0)
    read = await world.client.get(url, headers=bearer(owner))
    assert read.json() == patched
    assert read.headers["etag"] == '"2"'


async def test_patch_refuses_nulls_empty_bodies_and_bad_values(world: World, owner: str) -> None:
    created = await create_item(world, owner, "acme")
    url = items_url("acme", created["id"])
    for body, loc in [
        ({"name": None}, ["body", "name"]),
        ({"description": None}, ["body", "description"]),
        ({"price": "-1"}, ["body", "price"]),
        ({"quantity": -1}, ["body", "quantity"]),
        ({}, ["body"]),
    ]:
        response = await world.client.patch(url, json=body, headers=bearer(owner))
        assert loc in [location[: len(loc)] for location in error_locations(response)], body
    read = await world.client.get(url, headers=bearer(owner))
    assert read.json() == created


async def test_patch_to_a_taken_sku_is_409(world: World, owner: str) -> None:
    await create_item(world, owner, "acme", sku="A")
    second = await create_item(world, owner, "acme", sku="B")
    url = items_url("acme", second["id"])
    response = await world.client.patch(url, json={"sku": "A"}, headers=bearer(owner))
    assert_problem(response, 409, "conflict")
    assert (await world.client.get(url, headers=bearer(owner))).json() == second


async def test_if_match_on_patch(world: World, owner: str) -> None:
    created = await create_item(world, owner, "acme")
    url = items_url("acme", created["id"])

    async def patch(if_match: str, name: str) -> Any:
        return await world.client.patch(
            url, json={"name": name}, headers={**bearer(owner), "If-Match": if_match}
        )

    assert (await patch('"1"', "one")).headers["etag"] == '"2"'
    for stale in (
        '"1"',
        'W/"2"',
        "2",
        '"x"',
        '""',
        "garbage",
        '"3"',
        '"2147483648"',
        '"9' + "9" * 30 + '"',
    ):
        response = await patch(stale, "stale")
        assert_problem(response, 412, "precondition-failed")
    assert (await patch('"1", "2"', "list")).headers["etag"] == '"3"'
    assert (await patch("*", "star")).headers["etag"] == '"4"'
    read = await world.client.get(url, headers=bearer(owner))
    assert (read.json()["name"], read.json()["version"]) == ("star", 4)


async def test_concurrent_patches_with_the_same_if_match_one_wins(world: World, owner: str) -> None:
    created = await create_item(world, owner, "acme")
    url = items_url("acme", created["id"])
    responses = await asyncio.gather(
        *(
            world.client.patch(
                url, json={"quantity": n}, headers={**bearer(owner), "If-Match": '"1"'}
            )
            for n in range(4)
        )
    )
    assert sorted(r.status_code for r in responses) == [200, 412, 412, 412]
    read = await world.client.get(url, headers=bearer(owner))
    assert read.json()["version"] == 2


async def test_delete(world: World, owner: str) -> None:
    created = await create_item(world, owner, "acme")
    url = items_url("acme", created["id"])
    stale = await world.client.delete(url, headers={**bearer(owner), "If-Match": '"9"'})
    assert_problem(stale, 412, "precondition-failed")
    assert (await world.client.get(url, headers=bearer(owner))).status_code == 200
    deleted = await world.client.delete(url, headers={**bearer(owner), "If-Match": '"1"'})
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_problem(await world.client.get(url, headers=bearer(owner)), 404, "item-not-found")
    assert_problem(await world.client.delete(url, headers=bearer(owner)), 404, "item-not-found")
    again = await create_item(world, owner, "acme")
    assert (
        await world.client.delete(items_url("acme", again["id"]), headers=bearer(owner))
    ).status_code == 204


async def list_all(world: World, token: str, **params: Any) -> tuple[list[str], int]:
    """Walk every page; returns the ids in order and the number of pages."""
    ids: list[str] = []
    pages = 0
    cursor: str | None = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await world.client.get(items_url("acme"), params=query, headers=bearer(token))
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        assert len(page["items"]) <= params.get("limit", 50)
        ids.extend(item["id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return ids, pages
        assert pages < 50


async def test_pagination_walks_every_item_once_in_id_order(world: World, owner: str) -> None:
    made = [
        await create_item(
            world, owner, "acme", sku=f"S{n}", category="even" if n % 2 == 0 else "odd"
        )
        for n in range(13)
    ]
    every = sorted(item["id"] for item in made)
    assert [item["id"] for item in made] == every  # ids are time-ordered
    assert await list_all(world, owner) == (every, 1)
    assert await list_all(world, owner, limit=5) == (every, 3)
    assert await list_all(world, owner, limit=13) == (every, 1)
    assert await list_all(world, owner, limit=1) == (every, 13)
    even = [item["id"] for item in made if item["category"] == "even"]
    assert await list_all(world, owner, limit=3, category="even") == (even, 3)
    assert await list_all(world, owner, category="none") == ([], 1)
    # A change between pages neither repeats nor skips the items not touched.
    first = (
        await world.client.get(items_url("acme"), params={"limit": 4}, headers=bearer(owner))
    ).json()
    await world.client.delete(items_url("acme", every[5]), headers=bearer(owner))
    rest = await world.client.get(
        items_url("acme"),
        params={"limit": 100, "cursor": first["next_cursor"]},
        headers=bearer(owner),
    )
    seen = [item["id"] for item in first["items"] + rest.json()["items"]]
    assert seen == every[:5] + every[6:]


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


BAD_CURSORS = [
    "garbage!!",
    "a",
    "====",
    b64(b"k1:itm_nothex"),
    b64(b"k2:itm_0000000000000000000000"),
    b64(b"itm_0000000000000000000000"),
    b64(b"k1:itm_0000000000000000000000' OR 1=1 --"),
    b64("k1:itm_ü".encode()),
    b64(b"k1:"),
    b64(b"\xff\xfe"),
    "x" * 101,
]


async def test_limit_bounds_and_malformed_cursors_are_422(world: World, owner: str) -> None:
    for cursor in BAD_CURSORS:
        response = await world.client.get(
            items_url("acme"), params={"cursor": cursor}, headers=bearer(owner)
        )
        assert error_locations(response) == [["query", "cursor"]], cursor
    for name, value in (("category", "nul\x00"), ("name_prefix", "a\x00"), ("category", "\n")):
        response = await world.client.get(
            items_url("acme"), params={name: value}, headers=bearer(owner)
        )
        assert error_locations(response) == [["query", name]]
    for limit in ("0", "101", "-1", "ten"):
        response = await world.client.get(
            items_url("acme"), params={"limit": limit}, headers=bearer(owner)
        )
        assert error_locations(response) == [["query", "limit"]]
    ok = await world.client.get(items_url("acme"), params={"limit": 100}, headers=bearer(owner))
    assert ok.json() == {"items": [], "next_cursor": None}


async def test_name_prefix_treats_like_wildcards_as_text(world: World, owner: str) -> None:
    names = ["50% off", "5000 widgets", "a_b", "axb", "A_b", "%all", "back\\slash", "backslash"]
    made = {
        name: (await create_item(world, owner, "acme", sku=f"S{n}", name=name))["id"]
        for n, name in enumerate(names)
    }

    async def names_with(prefix: str, **params: Any) -> set[str]:
        response = await world.client.get(
            items_url("acme"), params={"name_prefix": prefix, **params}, headers=bearer(owner)
        )
        assert response.status_code == 200, response.text
        return {item["name"] for item in response.json()["items"]}

    assert await names_with("50%") == {"50% off"}
    assert await names_with("5") == {"50% off", "5000 widgets"}
    assert await names_with("a_") == {"a_b"}
    assert await names_with("A") == {"A_b"}
    assert await names_with("%") == {"%all"}
    assert await names_with("_") == set()
    assert await names_with("back\\") == {"back\\slash"}
    assert await names_with("'; DROP TABLE items; --") == set()
    assert await names_with("a_b but longer than the name") == set()
    assert await names_with("a", category="none") == set()
    assert await names_with("a", category="tools") == {"a_b", "axb"}
    assert len(made) == len(names)
    for prefix in ("", "p" * 201):
        response = await world.client.get(
            items_url("acme"), params={"name_prefix": prefix}, headers=bearer(owner)
        )
        assert error_locations(response) == [["query", "name_prefix"]]


async def test_a_viewer_reads_but_cannot_write(world: World, owner: str) -> None:
    created = await create_item(world, owner, "acme")
    await world.member("acme", "viewer@acme.test", "viewer")
    viewer = await world.login("viewer@acme.test")
    assert (await world.client.get(items_url("acme"), headers=bearer(viewer))).status_code == 200
    url = items_url("acme", created["id"])
    for response in (
        await world.client.post(items_url("acme"), json=item_body(sku="V"), headers=bearer(viewer)),
        await world.client.patch(url, json={"name": "v"}, headers=bearer(viewer)),
        await world.client.delete(url, headers=bearer(viewer)),
    ):
        body = assert_problem(response, 403, "insufficient-scope")
        assert body["required_scopes"] == ["items:write"]
        challenge = response.headers["www-authenticate"]
        assert 'error="insufficient_scope"' in challenge
        assert 'scope="items:write"' in challenge
    assert (await world.client.get(url, headers=bearer(owner))).json() == created


async def test_without_a_token_nothing_is_served(world: World, owner: str) -> None:
    created = await create_item(world, owner, "acme")
    for response in (
        await world.client.get(items_url("acme")),
        await world.client.get(items_url("acme", created["id"])),
        await world.client.post(items_url("acme"), json=item_body(sku="N")),
    ):
        assert_problem(response, 401, "unauthenticated")
