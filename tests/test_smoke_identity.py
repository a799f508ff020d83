"""First slice: /token issues a token that /v1/me accepts."""

from tests.support import World, bearer


async def test_password_login_then_me(world: World) -> None:
    await world.tenant("acme")
    user_id = await world.member("acme", "Bob@Acme.test", "viewer")
    token = await world.login("bob@acme.test")
    response = await world.client.get("/v1/me", headers=bearer(token))
    assert response.status_code == 200
    assert response.json()["subject"] == user_id
    assert response.json()["scopes"] == ["items:read", "reports:read"]
