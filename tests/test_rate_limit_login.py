"""/token limits sign-in attempts per client IP and per username, before any password hashing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from auth.passwords import Passwords
from policies.rate_limit import client_ip, ip_bucket, trusted_networks, username_key
from tests.support import World, make_settings
from tests.support_rate_limit import client_from, limit_headers

WRONG = "not-the-password"
TRUSTED = trusted_networks(("10.0.0.0/8", "2001:db8:ffff::/48"))


@pytest.fixture(params=["memory", "redis"])
async def guarded(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[World]:
    extra: dict[str, Any] = {}
    if request.param == "redis":
        extra = {
            "redis_url": request.getfixturevalue("redis_url"),
            "redis_prefix": request.getfixturevalue("redis_prefix"),
            "redis_timeout": 5,  # a busy test machine must not trip the breaker
        }
    settings = make_settings(
        database_url,
        login_rate_limit_ip="4/minute",
        login_rate_limit_username="3/minute",
        trusted_proxies=["10.0.0.0/8"],
        **extra,
    )
    async with World.start(settings) as world:
        await world.tenant("acme")
        await world.member("acme", "bob@acme.test", "viewer")
        yield world


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every password verification the app performs (a spy; the real hasher still runs)."""
    calls: list[str] = []
    verify = Passwords.verify

    async def counting(self: Passwords, password: str, stored: str | None) -> tuple[bool, Any]:
        calls.append(password)
        return await verify(self, password, stored)

    monkeypatch.setattr(Passwords, "verify", counting)
    return calls


async def sign_in(
    client: httpx.AsyncClient,
    username: str,
    password: str = WRONG,
    *,
    forwarded_for: str | None = None,
) -> httpx.Response:
    headers = {} if forwarded_for is None else {"X-Forwarded-For": forwarded_for}
    form = {"grant_type": "password", "username": username, "password": password}
    return await client.post("/token", data=form, headers=headers)


def assert_limited(response: httpx.Response) -> None:
    assert response.status_code == 429
    assert response.json()["error"] == "invalid_request"
    assert "too many sign-in attempts" in response.json()["error_description"]
    assert response.headers["cache-control"] == "no-store"
    retry_after = int(response.headers["retry-after"])
    assert 59 <= retry_after <= 60
    assert response.headers["x-ratelimit-reset"] == str(retry_after)
    assert response.headers["x-ratelimit-remaining"] == "0"


async def test_username_limit_is_case_insensitive_and_stops_hashing(
    guarded: World, hashes: list[str]
) -> None:
    async with (
        client_from(guarded, "198.51.100.1") as one,
        client_from(guarded, "203.0.113.9") as two,
    ):
        assert (await sign_in(one, "bob@acme.test")).status_code == 400
        assert (await sign_in(two, "BOB@Acme.Test")).status_code == 400
        assert (await sign_in(one, " bob@acme.test")).status_code == 400
        assert len(hashes) == 3
        refused = await sign_in(two, "Bob@acme.test", guarded.passwords["bob@acme.test"])
    assert_limited(refused)
    assert len(hashes) == 3, "a refused attempt must not reach the password hasher"
    # The username quota shows only when it refuses; its countdown is nobody else's business.
    assert refused.headers["ratelimit-policy"] == '"ip";q=4;w=60, "username";q=3;w=60'
    assert refused.headers["ratelimit"].startswith('"ip";r=3;t=')


async def test_ip_limit_spans_usernames(guarded: World, hashes: list[str]) -> None:
    async with (
        client_from(guarded, "198.51.100.1") as same,
        client_from(guarded, "198.51.100.2") as other,
    ):
        first = await sign_in(same, "a@acme.test")
        assert first.status_code == 400
        assert limit_headers(first)["ratelimit-policy"] == '"ip";q=4;w=60'
        assert limit_headers(first)["x-ratelimit-remaining"] == "3"
        for name in ("b", "c", "d"):
            assert (await sign_in(same, f"{name}@acme.test")).status_code == 400
        assert_limited(await sign_in(same, "bob@acme.test", guarded.passwords["bob@acme.test"]))
        assert len(hashes) == 4
        assert (
            await sign_in(other, "bob@acme.test", guarded.passwords["bob@acme.test"])
        ).status_code == 200


async def test_forwarded_for_counts_only_behind_a_trusted_proxy(guarded: World) -> None:
    async with (
        client_from(guarded, "10.1.2.3") as proxy,
        client_from(guarded, "198.51.100.1") as direct,
    ):
        # Behind the load balancer, the client it reports spends its own budget (4/minute)...
        for index in range(4):
            response = await sign_in(proxy, f"u{index}@x.test", forwarded_for="192.0.2.1")
            assert response.status_code == 400
        assert_limited(await sign_in(proxy, "u9@x.test", forwarded_for="192.0.2.1"))
        # ...while the next client through the same proxy has a budget of its own.
        assert (await sign_in(proxy, "v@x.test", forwarded_for="192.0.2.2")).status_code == 400
        # A hop the client wrote itself (left of the proxy's) buys no new budget.
        forged = "203.0.113.1, 192.0.2.1"
        assert_limited(await sign_in(proxy, "w@x.test", forwarded_for=forged))
        # A client talking to us directly cannot pick its address with the header: naming the
        # exhausted client does not limit it, and naming fresh ones does not refill it.
        assert (await sign_in(direct, "s0@x.test", forwarded_for="192.0.2.1")).status_code == 400
        for index in range(1, 4):
            spoof = f"192.0.2.{100 + index}"
            response = await sign_in(direct, f"s{index}@x.test", forwarded_for=spoof)
            assert response.status_code == 400
        assert_limited(await sign_in(direct, "t@x.test", forwarded_for="192.0.2.200"))


async def test_other_grants_are_not_counted(guarded: World) -> None:
    async with client_from(guarded, "198.51.100.1") as client:
        for _ in range(6):
            form = {"grant_type": "refresh_token", "refresh_token": "nope"}
            assert (await client.post("/token", data=form)).status_code == 400
        assert (
            await sign_in(client, "bob@acme.test", guarded.passwords["bob@acme.test"])
        ).status_code == 200


def test_client_ip_takes_the_right_most_untrusted_hop() -> None:
    assert client_ip("198.51.100.1", ["1.2.3.4"], TRUSTED) == "198.51.100.1"
    assert client_ip("10.0.0.1", [], TRUSTED) == "10.0.0.1"
    assert client_ip("10.0.0.1", ["1.2.3.4, 5.6.7.8"], TRUSTED) == "5.6.7.8"
    assert client_ip("10.0.0.1", ["1.2.3.4, 5.6.7.8, 10.9.9.9"], TRUSTED) == "5.6.7.8"
    assert client_ip("10.0.0.1", ["1.2.3.4", "5.6.7.8", "10.9.9.9"], TRUSTED) == "5.6.7.8"
    assert client_ip("10.0.0.1", ["10.0.0.5, 10.0.0.6"], TRUSTED) == "10.0.0.5"
    # Garbage where an address should be: stop at the last proxy that wrote a real one.
    assert client_ip("10.0.0.1", ["1.2.3.4, unknown, 10.0.0.7"], TRUSTED) == "10.0.0.7"
    assert client_ip("10.0.0.1", ["5.6.7.8:4711"], TRUSTED) == "5.6.7.8"
    assert client_ip("10.0.0.1", ["[2001:db8::1]:443"], TRUSTED) == "2001:db8::1"
    assert client_ip("::ffff:10.0.0.1", ["5.6.7.8"], TRUSTED) == "5.6.7.8"
    assert client_ip("2001:db8:ffff::1", ["2001:db8:1::9"], TRUSTED) == "2001:db8:1::9"
    assert client_ip(None, ["1.2.3.4"], TRUSTED) == "unknown"


def test_ipv6_clients_are_counted_per_64() -> None:
    assert ip_bucket("2001:db8:1:2:aaaa::1") == ip_bucket("2001:db8:1:2:bbbb::2")
    assert ip_bucket("2001:db8:1:2::1") != ip_bucket("2001:db8:1:3::1")
    assert ip_bucket("198.51.100.1") == "198.51.100.1"
    key = b"k" * 32
    assert username_key(" Bob@Acme.TEST ", key) == username_key("bob@acme.test", key)
    assert "bob" not in username_key("bob@acme.test", key)
    assert username_key("bob@acme.test", key) != username_key("bob@acme.test", b"j" * 32)


def test_bad_trusted_proxy_fails_start_up(settings: Any) -> None:
    from api.app import create_app

    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6"):
        create_app(settings.model_copy(update={"trusted_proxies": ["10.0.0.0/8", "proxy.local"]}))
