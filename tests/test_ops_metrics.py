"""GET /metrics: the listed series, exact counts, bounded labels, optional token."""

from __future__ import annotations

import uuid
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from api.metrics import prepare_multiprocess_dir
from tests.support import World, bearer, make_settings
from tests.support_ops import free_port

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(world: World, headers: dict[str, str] | None = None) -> Samples:
    response = await world.client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


async def test_the_listed_series_with_exact_counts(world: World) -> None:
    await world.tenant("acme")
    await world.member("acme", "eve@acme.test", "viewer")
    tokens = (await world.token_response("eve@acme.test")).json()
    refreshed = await world.client.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200
    for _ in range(3):
        assert (await world.client.get("/v1/me", headers=bearer(tokens["access_token"]))).is_success
    await world.client.get("/v1/me")
    await world.client.get("/v1/me", headers=bearer("not-a-jwt"))
    await world.client.post(
        "/token", data={"grant_type": "password", "username": "eve@acme.test", "password": "x"}
    )

    samples = await scrape(world)
    me_ok = {"method": "GET", "route": "/v1/me", "status": "200"}
    assert value(samples, "tenantgate_http_requests_total", **me_ok) == 3
    assert value(samples, "tenantgate_http_request_duration_seconds_count", **me_ok) == 3
    assert (
        value(samples, "tenantgate_http_request_duration_seconds_bucket", le="+Inf", **me_ok) == 3
    )
    assert (
        value(samples, "tenantgate_http_requests_total", method="GET", route="/v1/me", status="401")
        == 2
    )
    assert (
        value(
            samples, "tenantgate_http_requests_total", method="POST", route="/token", status="200"
        )
        == 2
    )
    assert value(samples, "tenantgate_auth_failures_total", kind="bearer", reason="missing") == 1
    assert value(samples, "tenantgate_auth_failures_total", kind="bearer", reason="malformed") == 1
    assert (
        value(samples, "tenantgate_auth_failures_total", kind="token", reason="invalid_grant") == 1
    )
    assert value(samples, "tenantgate_tokens_issued_total", grant_type="password") == 1
    assert value(samples, "tenantgate_tokens_issued_total", grant_type="refresh_token") == 1
    assert value(samples, "tenantgate_rate_limit_decisions_total", decision="allowed") == 3
    assert value(samples, "tenantgate_limiter_fallback_admissions_total") == 0
    assert value(samples, "tenantgate_limiter_degraded") == 0
    assert value(samples, "tenantgate_limiter_breaker_trips_total") == 0


async def test_labels_stay_bounded(world: World) -> None:
    await world.tenant("secret-tenant-slug")
    marker = uuid.uuid4().hex
    for i in range(5):
        await world.client.get(f"/v1/tenants/secret-tenant-slug/items/{marker}{i}")
        await world.client.get(f"/{marker}/{i}")
    await world.client.request("PROPFIND", f"/{marker}")
    response = await world.client.get("/metrics")
    assert marker not in response.text
    assert "secret-tenant-slug" not in response.text
    samples = parse(response.text)
    routes = {dict(labels).get("route") for (_, labels) in samples}
    assert all(route is None or route == "unmatched" or route.startswith("/") for route in routes)
    methods = {dict(labels).get("method") for (_, labels) in samples} - {None}
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER"}
    assert "OTHER" in methods
    tenant_items = {
        dict(labels)["route"]
        for (name, labels) in samples
        if name == "tenantgate_http_requests_total"
        and dict(labels)["route"].startswith("/v1/tenants/")
    }
    assert all("{tenant}" in route for route in tenant_items)


async def test_limiter_fallback_is_visible(database_url: str) -> None:
    # Nothing listens there: seeding at start-up and the sign-in are two failed calls of two,
    # a sustained failure for this breaker.
    settings = make_settings(
        database_url,
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        redis_breaker_failures=2,
    )
    async with World.start(settings) as world:
        await world.tenant("acme")
        await world.member("acme", "fay@acme.test", "viewer")
        token = await world.login("fay@acme.test")
        for _ in range(2):
            assert (await world.client.get("/v1/me", headers=bearer(token))).status_code == 200
        samples = await scrape(world)
    assert value(samples, "tenantgate_limiter_degraded") == 1
    # The sign-in's count and both admissions were decided without Redis.
    assert value(samples, "tenantgate_limiter_fallback_admissions_total") == 3
    assert value(samples, "tenantgate_limiter_breaker_trips_total") == 1
    assert value(samples, "tenantgate_rate_limit_decisions_total", decision="allowed") == 2


async def test_a_metrics_token_protects_the_endpoint(database_url: str) -> None:
    settings = make_settings(database_url, metrics_token="scrape-me-7Hq")
    async with World.start(settings) as world:
        anonymous = await world.client.get("/metrics")
        wrong = await world.client.get("/metrics", headers=bearer("scrape-me-7Hx"))
        samples = await scrape(world, bearer("scrape-me-7Hq"))
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert wrong.status_code == 401
    assert (
        value(
            samples, "tenantgate_http_requests_total", method="GET", route="/metrics", status="401"
        )
        == 2
    )


async def test_metrics_can_be_switched_off(database_url: str) -> None:
    async with World.start(make_settings(database_url, metrics_enabled=False)) as world:
        response = await world.client.get("/metrics")
    assert response.status_code == 404


def test_the_multiprocess_directory_loses_only_old_metric_files(tmp_path: Path) -> None:
    directory = tmp_path / "metrics"
    prepare_multiprocess_dir(str(directory))
    (directory / "counter_123.db").write_bytes(b"old")
    (directory / "keep.txt").write_text("operator's")
    prepare_multiprocess_dir(str(directory))
    assert sorted(path.name for path in directory.iterdir()) == ["keep.txt"]
