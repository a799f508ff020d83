"""Password hashing: off the event loop, bounded, one hash whether or not the user exists."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from auth.passwords import Passwords, PasswordTooLong
from config.settings import Settings
from tests.support import World, make_settings


@pytest.fixture
def passwords() -> Iterator[Passwords]:
    # Costly enough (tens of ms) that a hash on the event loop would visibly stop it.
    settings = make_settings("sqlite+aiosqlite:///:memory:", argon2_memory_cost=65_536)
    hasher = Passwords(settings)
    yield hasher
    hasher.close()


async def test_hashing_does_not_block_the_event_loop(passwords: Passwords) -> None:
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    stored = await passwords.hash("s3cret-passw0rd")
    valid, _ = await passwords.verify("s3cret-passw0rd", stored)
    done.set()
    await task
    assert valid
    # On the loop, hashing would leave the ticker a handful of turns; off it, hundreds.
    assert ticks > 100


async def test_verify_rejects_wrong_and_missing(passwords: Passwords) -> None:
    stored = await passwords.hash("right")
    assert (await passwords.verify("wrong", stored)) == (False, None)
    assert (await passwords.verify("right", None)) == (False, None)


async def test_too_long_is_refused_before_hashing(passwords: Passwords) -> None:
    with pytest.raises(PasswordTooLong):
        await passwords.hash("x" * 2000)
    with pytest.raises(PasswordTooLong):
        await passwords.verify("é" * 600, None)


async def test_unknown_user_costs_one_hash_like_a_wrong_password(world: World) -> None:
    await world.tenant("acme")
    await world.member("acme", "viewer@acme.test", "viewer")
    hasher: Passwords = world.app.state.passwords
    verified: list[Any] = []
    original = hasher._hash.verify_and_update

    def counting(password: str | bytes, stored: str | bytes) -> tuple[bool, str | None]:
        verified.append(stored)
        return original(password, stored)

    hasher._hash.verify_and_update = counting  # type: ignore[method-assign,assignment]
    for username in ("ghost@acme.test", "viewer@acme.test"):
        form = {"grant_type": "password", "username": username, "password": "wrong-password"}
        response = await world.client.post("/token", data=form)
        assert response.json()["error"] == "invalid_grant"
    assert len(verified) == 2
    assert all(stored.startswith("$argon2id$") for stored in verified)


def test_concurrency_is_bounded_by_settings() -> None:
    hasher = Passwords(Settings(_env_file=None, password_hash_concurrency=3))
    try:
        assert hasher._pool._max_workers == 3
    finally:
        hasher.close()
