"""Each request sees only its own request.state (the test harness copies it like uvicorn)."""

from tests.support import World, bearer


async def test_a_second_caller_is_not_served_the_first_callers_identity(world: World) -> None:
    await world.tenant("acme")
    owner_id = await world.member("acme", "owner@acme.test", "owner")
    viewer_id = await world.member("acme", "viewer@acme.test", "viewer")
    owner, viewer = await world.login("owner@acme.test"), await world.login("viewer@acme.test")
    first = await world.client.get("/v1/me", headers=bearer(owner))
    second = await world.client.get("/v1/me", headers=bearer(viewer))
    assert first.json()["subject"] == owner_id
    assert second.json()["subject"] == viewer_id
    anonymous = await world.client.get("/v1/me")
    assert anonymous.status_code == 401
