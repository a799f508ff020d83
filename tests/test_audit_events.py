"""Each audited action writes exactly one event with the right fields (token, denial, limits)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from config.settings import Settings
from storage.audit_queries import verify
from tests.support import World, bearer, jwt_part, make_settings
from tests.support_audit import every_stored_value, get, member_token, only, trail

UA = {"User-Agent": "audit-test/1.0"}


async def test_password_login_records_token_issued(world: World) -> None:
    await world.tenant("acme")
    user_id = await world.member("acme", "ann@acme.test", "admin")
    response = await world.client.post(
        "/token",
        data={
            "grant_type": "password",
            "username": "ann@acme.test",
            "password": world.passwords["ann@acme.test"],
            "scope": "items:read members:read",
        },
        headers=UA,
    )
    assert response.status_code == 200
    token = response.json()["access_token"]
    event = await only(world, "acme", "token.issued")
    assert (event.tenant, event.actor_kind, event.actor_subject) == ("acme", "user", user_id)
    assert (event.target, event.outcome) == (f"user:{user_id}", "success")
    assert event.scopes == ("items:read", "members:read")
    assert event.client_ip == "127.0.0.1"
    assert event.user_agent == "audit-test/1.0"
    assert event.request_id is not None
    assert event.request_id == response.headers["x-request-id"]
    assert event.details["grant_type"] == "password"
    assert event.details["client_id"] == "tenantgate"
    assert event.details["jti"] == jwt_part(token, 1)["jti"]
    assert [e.action for e in await trail(world, "acme")] == ["token.issued"]
    assert await trail(world, None) == []


async def test_refused_login_of_a_member_is_recorded_without_the_password(
    world: World,
) -> None:
    await world.tenant("acme")
    user_id = await world.member("acme", "ann@acme.test", "viewer")
    wrong = "Wr0ng-but-secret-guess"
    response = await world.client.post(
        "/token",
        data={"grant_type": "password", "username": "ANN@acme.test", "password": wrong},
        headers=UA,
    )
    assert response.status_code == 400
    event = await only(world, "acme", "token.refused")
    assert (event.actor_kind, event.actor_subject, event.outcome) == ("user", user_id, "failure")
    assert event.details == {
        "grant_type": "password",
        "error": "invalid_grant",
        "reason": "invalid_credentials",
    }
    assert event.user_agent == "audit-test/1.0"
    assert wrong not in await every_stored_value(world)


async def test_refused_login_of_an_unknown_user_goes_to_the_platform_trail(world: World) -> None:
    await world.tenant("acme")
    response = await world.client.post(
        "/token",
        data={
            "grant_type": "password",
            "username": "Nobody@Example.test",
            "password": "x-secret-1",
        },
    )
    assert response.status_code == 400
    event = await only(world, None, "token.refused")
    assert (event.tenant, event.actor_kind, event.actor_subject) == (None, "anonymous", None)
    assert event.details["reason"] == "unknown_user"
    assert event.details["username"] == "nobody@example.test"
    assert await trail(world, "acme") == []


@pytest.mark.parametrize(
    ("form", "reason"),
    [
        ({"scope": "audit:read"}, "invalid_scope"),
        ({"tenant": "other"}, "invalid_credentials"),
    ],
)
async def test_refusal_reasons(world: World, form: dict[str, str], reason: str) -> None:
    await world.tenant("acme")
    await world.tenant("other")
    user_id = await world.member("acme", "ann@acme.test", "viewer")
    response = await world.token_response("ann@acme.test", **form)
    assert response.status_code == 400
    # Refused for a tenant the user is not a member of: the platform's trail, not that tenant's.
    chain = "acme" if reason == "invalid_scope" else None
    event = await only(world, chain, "token.refused")
    assert event.actor_subject == user_id
    assert event.details["reason"] == reason
    assert await trail(world, "other") == []


async def test_suspended_tenant_refusal(world: World) -> None:
    from storage.tables import tenants

    await world.tenant("acme")
    await world.member("acme", "ann@acme.test", "viewer")
    async with world.database.write() as connection:
        await connection.execute(tenants.update().values(status="suspended"))
    assert (await world.token_response("ann@acme.test")).status_code == 400
    assert (await only(world, "acme", "token.refused")).details["reason"] == "tenant_suspended"


async def test_refresh_records_token_refreshed(world: World) -> None:
    await world.tenant("acme")
    user_id = await world.member("acme", "ann@acme.test", "member")
    first = (await world.token_response("ann@acme.test", scope="items:read")).json()
    response = await world.client.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    )
    assert response.status_code == 200
    issued = await only(world, "acme", "token.issued")
    refreshed = await only(world, "acme", "token.refreshed")
    assert (refreshed.actor_subject, refreshed.scopes) == (user_id, ("items:read",))
    assert refreshed.details["grant_type"] == "refresh_token"
    assert refreshed.details["family"] == issued.details["family"]
    assert refreshed.details["jti"] == jwt_part(response.json()["access_token"], 1)["jti"]


async def test_refresh_token_reuse_is_one_event_not_a_refusal(world: World) -> None:
    await world.tenant("acme")
    user_id = await world.member("acme", "ann@acme.test", "member")
    first = (await world.token_response("ann@acme.test")).json()
    form = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    assert (await world.client.post("/token", data=form)).status_code == 200
    assert (await world.client.post("/token", data=form)).status_code == 400
    event = await only(world, "acme", "token.reuse_detected")
    assert (event.actor_subject, event.outcome) == (user_id, "denied")
    issued = await only(world, "acme", "token.issued")
    assert event.details["family"] == issued.details["family"]
    assert event.target == f"refresh_family:{issued.details['family']}"
    assert await trail(world, "acme", "token.refused") == []
    assert await trail(world, None) == []


async def test_unknown_refresh_token_is_refused_anonymously(world: World) -> None:
    garbage = "not-a-real-refresh-token-but-secret"
    form = {"grant_type": "refresh_token", "refresh_token": garbage}
    assert (await world.client.post("/token", data=form)).status_code == 400
    event = await only(world, None, "token.refused")
    assert event.actor_kind == "anonymous"
    assert event.details["reason"] == "invalid_refresh_token"
    assert event.details["grant_type"] == "refresh_token"
    assert garbage not in await every_stored_value(world)


async def test_insufficient_scope_records_access_denied(world: World) -> None:
    await world.tenant("acme")
    token, user_id = await member_token(world, "acme", "vic@acme.test", "viewer")
    headers = {**UA, "X-Request-ID": "trace-4711"}
    response = await get(world, token, "/v1/tenants/acme/audit/events", headers=headers)
    assert response.status_code == 403
    event = await only(world, "acme", "access.denied")
    assert (event.actor_kind, event.actor_subject, event.outcome) == ("user", user_id, "denied")
    assert event.target == "GET /v1/tenants/{tenant}/audit/events"
    assert event.scopes == ("audit:read",)
    assert event.details == {
        "reason": "insufficient_scope",
        "missing": ["audit:read"],
        "client_id": "tenantgate",
    }
    assert event.user_agent == "audit-test/1.0"
    assert event.request_id == "trace-4711" == response.json()["request_id"]


SMALL_PLANS = {"free": {"principal": "5/minute", "tenant": "8/minute"}}
ACCESS = "/v1/tenants/acme/audit/access"


async def test_rate_limit_exceeded_is_one_event_per_principal_and_window(
    database_url: str,
) -> None:
    async with World.start(make_settings(database_url, plan_limits=SMALL_PLANS)) as world:
        await world.tenant("acme")
        token, user_id = await member_token(world, "acme", "ann@acme.test", "owner")
        other, other_id = await member_token(world, "acme", "bob@acme.test", "owner")
        statuses = [(await get(world, token, ACCESS)).status_code for _ in range(8)]
        assert statuses == [200] * 5 + [429] * 3, statuses
        event = await only(world, "acme", "rate_limit.exceeded")
        assert (event.actor_subject, event.target, event.outcome) == (
            user_id,
            "rate_limit:principal",
            "denied",
        )
        assert event.details["limit"] == 5
        assert event.details["window_seconds"] == 60
        assert event.details["first_route"] == "GET /v1/tenants/{tenant}/audit/access"
        assert event.details["window_end"] > event.fields()["time"]
        # The other principal runs into the tenant's limit (8 in total): its own event, once.
        statuses = [(await get(world, other, ACCESS)).status_code for _ in range(6)]
        assert statuses == [200, 200, 200, 429, 429, 429]
        limited = await trail(world, "acme", "rate_limit.exceeded")
        assert [(e.actor_subject, e.target) for e in limited] == [
            (user_id, "rate_limit:principal"),
            (other_id, "rate_limit:tenant"),
        ]
        assert limited[1].details["limit"] == 8


async def test_rate_limit_window_is_shared_by_app_instances(database_url: str) -> None:
    """Two app instances over one database, each counting for itself: one event for the window."""
    settings = make_settings(database_url, plan_limits=SMALL_PLANS)
    async with World.start(settings) as first, World.start(settings) as second:
        await first.tenant("acme")
        await first.member("acme", "ann@acme.test", "owner")
        token = await first.login("ann@acme.test")
        # Without Redis each worker counts for itself: both go over the principal's 5/minute.
        for world in (first, second):
            statuses = [(await get(world, token, ACCESS)).status_code for _ in range(7)]
            assert statuses == [200] * 5 + [429] * 2, statuses
        assert len(await trail(first, "acme", "rate_limit.exceeded")) == 1


async def test_auditor_reads_audit_and_access_but_no_items(world: World) -> None:
    await world.tenant("acme")
    token, _ = await member_token(world, "acme", "aud@acme.test", "auditor")
    assert (await get(world, token, "/v1/tenants/acme/audit/events")).status_code == 200
    assert (await get(world, token, "/v1/tenants/acme/audit/access")).status_code == 200
    for path in ("/v1/tenants/acme/items", "/v1/tenants/acme/reports/inventory"):
        response = await get(world, token, path)
        assert response.status_code == 403
        assert response.json()["type"] == "urn:tenantgate:problem:insufficient-scope"
    response = await world.client.post(
        "/v1/tenants/acme/items", headers=bearer(token), json={"sku": "x"}
    )
    assert response.status_code == 403
    denied = await trail(world, "acme", "access.denied")
    assert [e.target for e in denied] == [
        "GET /v1/tenants/{tenant}/items",
        "GET /v1/tenants/{tenant}/reports/inventory",
        "POST /v1/tenants/{tenant}/items",
    ]


async def test_no_secret_in_any_event_or_log_line(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await world.tenant("acme")
    await world.member("acme", "ann@acme.test", "owner")
    password = world.passwords["ann@acme.test"]
    first = (await world.token_response("ann@acme.test")).json()
    refreshed = await world.client.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    )
    second = refreshed.json()
    bad = {"grant_type": "password", "username": "ann@acme.test", "password": password + "x"}
    await world.client.post("/token", data=bad)
    reuse = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    await world.client.post("/token", data=reuse)
    viewer, _ = await member_token(world, "acme", "vic@acme.test", "viewer")
    await get(world, viewer, "/v1/tenants/acme/audit/events")
    await get(world, second["access_token"], "/v1/tenants/acme/audit/events")
    secrets = [
        password,
        password + "x",
        world.passwords["vic@acme.test"],
        first["access_token"],
        first["refresh_token"],
        second["access_token"],
        second["refresh_token"],
        viewer,
    ]
    events = await trail(world, "acme") + await trail(world, None)
    assert {e.action for e in events} >= {
        "token.issued",
        "token.refreshed",
        "token.refused",
        "token.reuse_detected",
        "access.denied",
    }
    everything = await every_stored_value(world)
    logs = "\n".join(record.getMessage() + repr(record.__dict__) for record in caplog.records)
    for secret in secrets:
        assert secret not in everything
        assert secret not in logs
        # Not even a recognisable piece of a token (its signature part).
        assert secret.split(".")[-1] not in everything


async def test_concurrent_audited_changes_in_two_app_instances_keep_the_chain_valid(
    settings: Settings,
) -> None:
    async with World.start(settings) as first, World.start(settings) as second:
        await first.tenant("acme")
        emails = [f"user{n}@acme.test" for n in range(25)]
        for email in emails:
            await first.member("acme", email, "viewer")
        second.passwords = first.passwords

        async def login_then_denied(world: World, email: str) -> None:
            token = await world.login(email)
            response = await get(world, token, "/v1/tenants/acme/audit/events")
            assert response.status_code == 403

        await asyncio.gather(
            *(
                login_then_denied(first if n % 2 else second, email)
                for n, email in enumerate(emails)
            )
        )
        result = await verify(first.database, "acme")
        assert result.ok, result.broken
        assert result.checked == 50
        actions = [e.action for e in await trail(first, "acme")]
        assert sorted(set(actions)) == ["access.denied", "token.issued"]
        assert actions.count("token.issued") == 25


async def test_client_ip_honours_trusted_proxies_only(database_url: str) -> None:
    settings = make_settings(database_url, trusted_proxies=["127.0.0.1/32"])
    async with World.start(settings) as world:
        await world.tenant("acme")
        await world.member("acme", "ann@acme.test", "viewer")
        form = {"grant_type": "password", "username": "ann@acme.test", "password": "wrong-1"}
        forwarded = {"X-Forwarded-For": "198.51.100.23, 203.0.113.9"}
        await world.client.post("/token", data=form, headers=forwarded)
        (event,) = await trail(world, "acme", "token.refused")
        # The right-most hop not a trusted proxy: what the proxy saw, not what the client wrote.
        assert event.client_ip == "203.0.113.9"
    async with World.start(make_settings(database_url)) as world:
        await world.client.post("/token", data=form, headers=forwarded)
        _, second = await trail(world, "acme", "token.refused")
        assert second.client_ip == "127.0.0.1"  # no trusted proxy: the socket peer


async def test_sign_in_throttling_is_one_event_per_ip_and_window(database_url: str) -> None:
    settings = make_settings(database_url, login_rate_limit_username="2/minute")
    async with World.start(settings) as world:
        form = {"grant_type": "password", "username": "ann@acme.test", "password": "guess-1"}
        statuses = [(await world.client.post("/token", data=form)).status_code for _ in range(5)]
        assert statuses == [400, 400, 429, 429, 429]
        event = await only(world, None, "rate_limit.exceeded")
        assert (event.actor_kind, event.target, event.outcome) == (
            "anonymous",
            "login:127.0.0.1",
            "denied",
        )
        assert event.details["policy"] == "username"
        assert event.details["limit"] == 2
        assert event.details["first_route"] == "POST /token"
        # The two refused sign-ins before the limit are recorded one by one.
        assert len(await trail(world, None, "token.refused")) == 2
        assert "guess-1" not in await every_stored_value(world)
