"""Helpers for the item, report and BOLA tests: a tenant with an owner, item bodies, problems."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support import World, bearer


async def tenant_with_owner(world: World, slug: str) -> str:
    """A tenant on the enterprise plan (tests send many requests) and its owner's token."""
    await world.tenant(slug, plan="enterprise")
    email = f"owner@{slug}.test"
    await world.member(slug, email, "owner")
    return await world.login(email, tenant=slug)


def item_body(sku: str = "SKU-1", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sku": sku,
        "name": "Widget",
        "description": "A widget",
        "category": "tools",
        "price": "12.50",
        "quantity": 3,
        "tags": ["blue"],
    }
    body.update(overrides)
    return body


def items_url(tenant: str, item_id: str | None = None) -> str:
    url = f"/v1/tenants/{tenant}/items"
    return f"{url}/{item_id}" if item_id else url


async def create_item(world: World, token: str, tenant: str, **fields: Any) -> dict[str, Any]:
    response = await world.client.post(
        items_url(tenant), json=item_body(**fields), headers=bearer(token)
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def assert_problem(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == f"urn:tenantgate:problem:{kind}"
    assert body["status"] == status
    return body


def error_locations(response: httpx.Response) -> list[list[Any]]:
    """The `loc` of each validation error of a 422 problem."""
    body = assert_problem(response, 422, "validation-error")
    return [error["loc"] for error in body["errors"]]
