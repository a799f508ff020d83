"""POST /v1/me/password beyond the happy path: a client token, over-long passwords."""

from __future__ import annotations

import pytest

from auth.passwords import Passwords
from tests.support import World, bearer
from tests.support_clients import admin_token, client_token, create_client
from tests.support_members import assert_problem

CHANGE = "/v1/me/password"


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every password hashed (a spy; the real hasher still runs)."""
    calls: list[str] = []
    hash_ = Passwords.hash

    async def counting(self: Passwords, password: str) -> str:
        calls.append(password)
        return await hash_(self, password)

    monkeypatch.setattr(Passwords, "hash", counting)
    return calls


async def test_a_client_token_has_no_password_to_change(world: World) -> None:
    admin = await admin_token(world, "acme")
    client = await create_client(world, admin, "acme", ["items:read"])
    token = await client_token(world.client, client)
    body = {"current_password": "whatever it is", "new_password": "a fresh passphrase"}
    response = await world.client.post(CHANGE, json=body, headers=bearer(token))
    problem = assert_problem(response, 400, "password-rejected")
    assert problem["detail"] == "only users have passwords"


@pytest.mark.parametrize("which", ["current_password", "new_password"])
async def test_an_over_long_password_is_refused_before_hashing(
    world: World, hashes: list[str], which: str
) -> None:
    admin = await admin_token(world, "acme")
    hashes.clear()
    # 600 characters but 1200 bytes: the limit is in bytes (TENANTGATE_PASSWORD_MAX_LENGTH).
    body = {"current_password": world.passwords["admin@acme.test"], "new_password": "n" * 20}
    body[which] = "é" * 600
    response = await world.client.post(CHANGE, json=body, headers=bearer(admin))
    problem = assert_problem(response, 400, "password-rejected")
    assert problem["detail"] == f"passwords are at most {world.settings.password_max_length} bytes"
    assert hashes == []
    # Nothing changed: the old password still signs in.
    assert (await world.token_response("admin@acme.test")).status_code == 200
