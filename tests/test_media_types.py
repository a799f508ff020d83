"""A JSON body sent as another media type is 415 with `Accept: application/json`, on every
operation that reads JSON; a JSON media type (with a charset, or a +json suffix) is read."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.support import World, bearer
from tests.support_members import assert_problem

# A body no operation accepts (unknown field): whatever reaches validation is a 422, so a 415
# can only come from the media type.
BODY = json.dumps({"not-a-field": 1}).encode()
NOT_JSON = ["text/plain", "application/x-www-form-urlencoded", "application/xml", None]
JSON_TYPES = ["application/json", "application/json; charset=utf-8", "application/x+json"]
# Operations an owner of acme calls; the others (/v1/tenants...) are the platform admin's.
OWNED = ("/v1/tenants/acme", "/v1/me")


def json_operations(world: World) -> list[tuple[str, str]]:
    document: dict[str, Any] = world.app.openapi()
    found = [
        (method.upper(), re.sub(r"\{[a-z_]+\}", "x1", path).replace("/x1/", "/acme/", 1))
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if "application/json" in operation.get("requestBody", {}).get("content", {})
    ]
    return sorted(found)


async def tokens(world: World) -> tuple[str, str]:
    """An owner of acme (every tenant scope) and a platform admin."""
    await world.tenant("acme")
    await world.member("acme", "owner@acme.test", "owner")
    await world.user("root@platform.test", platform_admin=True)
    return await world.login("owner@acme.test"), await world.login("root@platform.test")


async def test_a_body_that_is_not_json_is_415_everywhere(world: World) -> None:
    owner, platform = await tokens(world)
    operations = json_operations(world)
    assert len(operations) >= 10, operations  # items, members, clients, tenants, password...
    for method, path in operations:
        for content_type in NOT_JSON:
            headers = bearer(owner if path.startswith(OWNED) else platform)
            if content_type is not None:
                headers["Content-Type"] = content_type
            response = await world.client.request(method, path, content=BODY, headers=headers)
            body = assert_problem(response, 415, "unsupported-media-type")
            assert body["detail"] == "send the body as application/json", (method, path)
            assert response.headers["accept"] == "application/json", (method, path)


async def test_json_media_types_are_read(world: World) -> None:
    owner, platform = await tokens(world)
    for method, path in json_operations(world):
        for content_type in JSON_TYPES:
            headers = bearer(owner if path.startswith(OWNED) else platform)
            headers["Content-Type"] = content_type
            response = await world.client.request(method, path, content=BODY, headers=headers)
            assert_problem(response, 422, "validation-error")


async def test_an_empty_body_is_a_validation_error_not_a_media_type_one(world: World) -> None:
    owner, _ = await tokens(world)
    response = await world.client.post(
        "/v1/tenants/acme/items", headers={**bearer(owner), "Content-Type": "text/plain"}
    )
    assert_problem(response, 422, "validation-error")


async def test_authentication_comes_before_the_media_type(world: World) -> None:
    response = await world.client.post(
        "/v1/tenants/acme/items", content=b"sku=a", headers={"Content-Type": "text/plain"}
    )
    assert_problem(response, 401, "unauthenticated")
