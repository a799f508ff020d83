"""405 answers: a problem body, and an Allow header with every method the path has."""

from __future__ import annotations

import pytest
from fastapi.routing import iter_route_contexts

from tests.support import World


def methods_of(world: World, template: str) -> set[str]:
    return {
        method
        for route in iter_route_contexts(world.app.routes)
        if route.path == template
        for method in route.methods or ()
    }


@pytest.mark.parametrize(
    ("method", "path", "template"),
    [
        ("PUT", "/v1/me", "/v1/me"),
        ("DELETE", "/token", "/token"),
        ("GET", "/v1/me/password", "/v1/me/password"),
        ("PUT", "/v1/tenants/acme/items", "/v1/tenants/{tenant}/items"),
        ("PUT", "/v1/tenants/acme/items/itm_1", "/v1/tenants/{tenant}/items/{item_id}"),
        ("DELETE", "/v1/tenants", "/v1/tenants"),
    ],
)
async def test_405_is_a_problem_naming_every_allowed_method(
    world: World, method: str, path: str, template: str
) -> None:
    response = await world.client.request(method, path)
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body == {
        "type": "urn:tenantgate:problem:method-not-allowed",
        "title": "Method Not Allowed",
        "status": 405,
        "instance": path,
        "request_id": response.headers["x-request-id"],
    }
    allowed = methods_of(world, template)
    assert len(allowed) >= 1
    assert response.headers["allow"] == ", ".join(sorted(allowed))
