"""Secrets other than a password are as hard to guess: client secrets count in the sign-in limiter,
password changes have their own limit and are audited, limiter keys are HMACs."""

from __future__ import annotations

import hashlib
import hmac
import logging

import pytest
from redis import Redis

from tests.support import World, bearer, make_settings
from tests.support_audit import only, trail
from tests.support_clients import admin_token, basic, client_token_response, create_client
from tests.support_items import assert_problem
from tests.support_ops import capture_logs

SECRET = "a-test-system-secret-of-32-or-more-characters"


async def test_client_secret_guesses_are_limited_per_client_id(database_url: str) -> None:
    settings = make_settings(database_url, login_rate_limit_client="3/minute")
    async with World.start(settings) as world:
        admin = await admin_token(world, "acme")
        client = await create_client(world, admin, "acme", ["clients:read"])
        other = await create_client(world, admin, "acme", ["clients:read"], name="other")
        for _ in range(3):
            wrong = await client_token_response(world.client, client.client_id, "guess")
            assert wrong.status_code == 401
        # Over the limit even the right secret waits: the limit is on trying, not on failing.
        limited = await client_token_response(world.client, client.client_id, client.client_secret)
        assert limited.status_code == 429
        assert limited.json()["error"] == "invalid_request"
        assert int(limited.headers["retry-after"]) > 0
        # /introspect authenticates the same secret: no way around the limit.
        introspect = await world.client.post(
            "/introspect", data={"token": "x"}, headers=basic(client.client_id, "guess")
        )
        assert introspect.status_code == 429
        # Another client is counted on its own.
        fine = await client_token_response(world.client, other.client_id, other.client_secret)
        assert fine.status_code == 200, fine.text
        throttled = await trail(world, None, "rate_limit.exceeded")
        assert throttled
        assert throttled[0].details["policy"] == "client"


async def test_client_and_password_attempts_share_the_per_ip_limit(database_url: str) -> None:
    settings = make_settings(database_url, login_rate_limit_ip="4/minute")
    async with World.start(settings) as world:
        admin = await admin_token(world, "acme")  # one password attempt
        client = await create_client(world, admin, "acme", ["clients:read"])
        for _ in range(2):
            refused = await client_token_response(world.client, client.client_id, "guess")
            assert refused.status_code == 401
        password = await world.client.post(
            "/token",
            data={"grant_type": "password", "username": "admin@acme.test", "password": "guess"},
        )
        assert password.status_code == 400
        # Five attempts from one address against a limit of four, whatever the grant.
        limited = await client_token_response(world.client, client.client_id, client.client_secret)
        assert limited.status_code == 429


async def test_limiter_keys_are_hmacs_with_the_system_secret(
    database_url: str, redis_url: str, redis_prefix: str
) -> None:
    settings = make_settings(
        database_url, redis_url=redis_url, redis_prefix=redis_prefix, system_secret=SECRET
    )
    async with World.start(settings) as world:
        form = {"grant_type": "password", "username": " Eve@Acme.TEST ", "password": "guess"}
        assert (await world.client.post("/token", data=form)).status_code == 400
    keys = {key.decode() for key in Redis.from_url(redis_url).scan_iter(f"{redis_prefix}:*")}
    bare = hashlib.sha256(b"eve@acme.test").hexdigest()[:32]
    keyed = hmac.new(SECRET.encode(), b"username:eve@acme.test", hashlib.sha256).hexdigest()[:32]
    assert not [key for key in keys if bare in key or "eve" in key]
    assert [key for key in keys if keyed in key]


async def test_password_changes_have_their_own_limit_and_are_audited(database_url: str) -> None:
    settings = make_settings(database_url, password_change_rate_limit="2/minute")
    async with World.start(settings) as world:
        await world.tenant("acme")
        user_id = await world.member("acme", "pat@acme.test", "viewer")
        token = await world.login("pat@acme.test")
        right = world.passwords["pat@acme.test"]

        async def change(current: str) -> int:
            body = {"current_password": current, "new_password": "a brand new passphrase"}
            response = await world.client.post("/v1/me/password", json=body, headers=bearer(token))
            if response.status_code == 429:
                assert_problem(response, 429, "rate-limited")
                assert int(response.headers["retry-after"]) > 0
            return response.status_code

        assert [await change("wrong one"), await change("wrong two")] == [400, 400]
        assert await change(right) == 429
        refused = await trail(world, "acme", "password.change_refused")
        assert [(e.target, e.outcome, e.details) for e in refused] == [
            (f"user:{user_id}", "failure", {"reason": "wrong_current_password"})
        ] * 2
        limited = await only(world, "acme", "rate_limit.exceeded")
        assert limited.target == "rate_limit:password_change"


async def test_a_password_change_is_audited(world: World) -> None:
    await world.tenant("acme")
    user_id = await world.member("acme", "pat@acme.test", "viewer")
    token = await world.login("pat@acme.test")
    body = {
        "current_password": world.passwords["pat@acme.test"],
        "new_password": "a brand new passphrase",
    }
    response = await world.client.post("/v1/me/password", json=body, headers=bearer(token))
    assert response.status_code == 204
    changed = await only(world, "acme", "password.changed")
    assert changed.target == f"user:{user_id}"
    assert changed.actor_subject == user_id


@pytest.mark.parametrize(
    ("variables", "warned"),
    [({"WEB_CONCURRENCY": "3"}, True), ({"WEB_CONCURRENCY": "1"}, False)],
)
async def test_the_worker_count_warning_reads_web_concurrency(
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    variables: dict[str, str],
    warned: bool,
) -> None:
    monkeypatch.delenv("TENANTGATE_WORKERS", raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with capture_logs(logging.WARNING) as logs:
        async with World.start(make_settings(database_url)):
            pass
    warnings = [e for e in logs.entries() if "workers run" in e["message"]]
    assert bool(warnings) is warned
