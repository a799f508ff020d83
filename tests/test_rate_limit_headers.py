"""Rate-limit headers: exact values, on every response after admission, with and without Redis."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from api.app import create_app
from config.settings import Settings
from policies.guard_sync import publish
from policies.rate_limit import Quota, header_values, most_restrictive, reset_seconds
from storage.guard_state import Counter
from storage.tables import clients
from tests.support import World, bearer, make_settings
from tests.support_clients import admin_token, client_token, create_client
from tests.support_rate_limit import (
    SMALL_PLANS,
    get,
    limit_headers,
    member_token,
    probe_router,
    problem,
)


@pytest.fixture(params=["memory", "redis"])
async def limited(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[World]:
    """The app with small plan limits, on the in-process store or on Redis."""
    extra = {}
    if request.param == "redis":
        extra = {
            "redis_url": request.getfixturevalue("redis_url"),
            "redis_prefix": request.getfixturevalue("redis_prefix"),
            "redis_timeout": 5,  # a busy test machine must not trip the breaker
        }
    settings = make_settings(database_url, plan_limits=SMALL_PLANS, **extra)
    async with World.start(settings) as world:
        world.app.include_router(probe_router())
        yield world


def test_header_syntax_follows_the_draft() -> None:
    principal = Quota("principal", Counter(limit=60, remaining=59, reset_ms=59_001, window=60))
    tenant = Quota("tenant", Counter(limit=300, remaining=12, reset_ms=3_000, window=60))
    assert dict(header_values([principal, tenant])) == {
        "RateLimit-Policy": '"principal";q=60;w=60, "tenant";q=300;w=60',
        "RateLimit": '"principal";r=59;t=60, "tenant";r=12;t=3',
        "X-RateLimit-Limit": "300",
        "X-RateLimit-Remaining": "12",
        "X-RateLimit-Reset": "3",
    }


def test_most_restrictive_prefers_the_later_reset_on_a_tie() -> None:
    soon = Quota("a", Counter(5, 0, 1_000, 60))
    late = Quota("b", Counter(50, 0, 30_000, 60))
    assert most_restrictive([soon, late]) is late
    assert reset_seconds(Counter(5, 0, 1, 60)) == 1
    assert reset_seconds(Counter(5, 0, 0, 60)) == 1
    assert reset_seconds(Counter(5, 0, 2_000, 60)) == 2


async def test_remaining_counts_down_to_zero_then_429(limited: World) -> None:
    await limited.tenant("acme")
    token = await member_token(limited, "acme", "ann@acme.test")
    seen = []
    for _ in range(5):
        response = await get(limited, token, "acme")
        assert response.status_code == 200
        headers = limit_headers(response)
        seen.append(headers["x-ratelimit-remaining"])
        assert headers["x-ratelimit-limit"] == "5"
        assert headers["ratelimit-policy"] == '"principal";q=5;w=60, "tenant";q=8;w=60'
        reset = int(headers["x-ratelimit-reset"])
        assert 59 <= reset <= 60
        remaining = int(headers["x-ratelimit-remaining"])
        assert headers["ratelimit"] == (
            f'"principal";r={remaining};t={reset}, "tenant";r={remaining + 3};t={reset}'
        )
    assert seen == ["4", "3", "2", "1", "0"]

    refused = await get(limited, token, "acme")
    assert refused.status_code == 429
    body = problem(refused)
    assert body["type"] == "urn:tenantgate:problem:rate-limited"
    headers = limit_headers(refused)
    assert headers["x-ratelimit-remaining"] == "0"
    assert refused.headers["retry-after"] == headers["x-ratelimit-reset"]
    assert 59 <= int(refused.headers["retry-after"]) <= 60
    assert headers["ratelimit"].startswith('"principal";r=0;t=')


async def test_tenant_counter_is_reported_when_it_is_the_tighter_one(limited: World) -> None:
    await limited.tenant("acme")
    ann = await member_token(limited, "acme", "ann@acme.test")
    bob = await member_token(limited, "acme", "bob@acme.test")
    for _ in range(5):
        assert (await get(limited, ann, "acme")).status_code == 200
    first = limit_headers(await get(limited, bob, "acme"))
    assert (first["x-ratelimit-limit"], first["x-ratelimit-remaining"]) == ("8", "2")
    for _ in range(2):
        assert (await get(limited, bob, "acme")).status_code == 200
    refused = await get(limited, bob, "acme")
    assert refused.status_code == 429
    headers = limit_headers(refused)
    assert (headers["x-ratelimit-limit"], headers["x-ratelimit-remaining"]) == ("8", "0")
    # Bob still has 2 of his own 5 left: the tenant's total is what refuses him.
    assert headers["ratelimit"].startswith('"principal";r=2;')
    assert refused.headers["retry-after"] == headers["x-ratelimit-reset"]


async def test_one_tenant_exhausting_its_limit_leaves_another_untouched(limited: World) -> None:
    await limited.tenant("acme")
    await limited.tenant("beta")
    tokens = [await member_token(limited, "acme", f"u{i}@acme.test") for i in range(3)]
    statuses = [(await get(limited, tokens[i % 3], "acme")).status_code for i in range(10)]
    assert statuses == [200] * 8 + [429] * 2
    other = await member_token(limited, "beta", "bea@beta.test")
    response = await get(limited, other, "beta")
    assert response.status_code == 200
    headers = limit_headers(response)
    assert headers["ratelimit"].startswith('"principal";r=4;t=')
    assert ', "tenant";r=7;t=' in headers["ratelimit"]


async def test_errors_after_admission_carry_the_headers(limited: World) -> None:
    await limited.tenant("acme")
    token = await member_token(limited, "acme", "ann@acme.test")
    missing = await get(limited, token, "acme", "/missing")
    assert missing.status_code == 404
    assert limit_headers(missing)["x-ratelimit-remaining"] == "4"
    forbidden = await get(limited, token, "acme", "/scoped")
    assert forbidden.status_code == 403
    assert limit_headers(forbidden)["x-ratelimit-remaining"] == "3"


async def test_responses_before_admission_carry_none(limited: World) -> None:
    await limited.tenant("acme")
    token = await member_token(limited, "acme", "ann@acme.test")
    assert limit_headers(await limited.client.get("/health")) == {}
    assert limit_headers(await get(limited, "not-a-token", "acme")) == {}
    foreign = await limited.client.get("/v1/tenants/beta/_probe", headers=bearer(token))
    assert foreign.status_code == 404
    assert limit_headers(foreign) == {}


async def test_plan_overrides_are_validated_at_start_up(settings: Settings) -> None:
    with pytest.raises(ValueError, match="plan 'free'"):
        create_app(settings.model_copy(update={"plan_limits": {"free": {"principal": "x"}}}))
    with pytest.raises(ValueError, match="missing tenant"):
        create_app(settings.model_copy(update={"plan_limits": {"new": {"principal": "1/second"}}}))
    with pytest.raises(ValueError, match="unknown counter"):
        create_app(settings.model_copy(update={"plan_limits": {"pro": {"client": "1/second"}}}))


def test_several_workers_without_redis_warn(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="tenantgate.rate_limit"):
        create_app(settings.model_copy(update={"workers": 3}))
    assert "3 workers" in caplog.text
    assert "TENANTGATE_REDIS_URL" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tenantgate.rate_limit"):
        create_app(settings)
        create_app(settings.model_copy(update={"workers": 3, "redis_url": "redis://x:1/0"}))
    assert caplog.text == ""


async def test_a_client_override_replaces_the_plan_for_that_client(limited: World) -> None:
    admin = await admin_token(limited, "acme")
    client = await create_client(limited, admin, "acme", ["items:read"])
    async with limited.database.write() as connection:
        await connection.execute(
            clients.update()
            .where(clients.c.client_id == client.client_id)
            .values(rate_limit="2/minute")
        )
        await publish(connection, limited.app.state.guard, "acme")
    token = await client_token(limited.client, client)
    first = await get(limited, token, "acme")
    assert first.status_code == 200
    assert limit_headers(first)["ratelimit-policy"].startswith('"principal";q=2;w=60, ')
    assert limit_headers(first)["x-ratelimit-limit"] == "2"
    assert (await get(limited, token, "acme")).status_code == 200
    refused = await get(limited, token, "acme")
    assert refused.status_code == 429
    assert 59 <= int(refused.headers["retry-after"]) <= 60
