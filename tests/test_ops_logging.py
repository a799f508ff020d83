"""Request ids, the JSON access log, and no secret in any log line."""

from __future__ import annotations

import json
import logging
import re
import sys

import pytest
from fastapi import APIRouter

from api.observability import JsonFormatter, redact, redact_text
from tests.support import World, bearer, make_settings
from tests.support_ops import capture_logs

GENERATED_ID = re.compile(r"^req_[0-9a-f]{22}$")


async def test_a_request_id_is_generated_and_returned(world: World) -> None:
    first = await world.client.get("/health")
    second = await world.client.get("/health")
    assert GENERATED_ID.match(first.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


@pytest.mark.parametrize(
    "incoming",
    ["3f2b8c1e-6a2d-4e8e-9c51-0d6f5b9a7e21", "01HZY3K5M8T9", "trace:abc/def+1=2@x.y_z-9"],
)
async def test_a_sane_incoming_request_id_is_kept(world: World, incoming: str) -> None:
    response = await world.client.get("/v1/me", headers={"X-Request-ID": incoming})
    assert response.status_code == 401
    assert response.headers["x-request-id"] == incoming
    assert response.json()["request_id"] == incoming


@pytest.mark.parametrize(
    "incoming", ["x" * 129, "has space", "semi;colon", 'quote"d', "new\\nline", "<script>"]
)
async def test_an_insane_incoming_request_id_is_replaced(world: World, incoming: str) -> None:
    response = await world.client.get("/nowhere", headers={"X-Request-ID": incoming})
    assert response.status_code == 404
    assert GENERATED_ID.match(response.headers["x-request-id"])
    assert response.json()["request_id"] == response.headers["x-request-id"]


async def test_every_log_line_of_a_request_carries_its_id(world: World) -> None:
    router = APIRouter()

    @router.get("/explode")
    async def explode() -> None:
        logging.getLogger("tenantgate.test").warning("about to fail")
        raise RuntimeError("secret detail that must not leak: hunter2")

    world.app.include_router(router)
    with capture_logs(logging.INFO) as logs:
        response = await world.client.get("/explode", headers={"X-Request-ID": "req-explode-1"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "req-explode-1"
    assert response.headers["x-content-type-options"] == "nosniff"
    body = response.json()
    assert body["request_id"] == "req-explode-1"
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text
    mine = [e for e in logs.entries() if e.get("request_id") == "req-explode-1"]
    assert {e["logger"] for e in mine} >= {
        "tenantgate.test",
        "tenantgate.errors",
        "tenantgate.access",
    }
    assert all(
        e["request_id"] == "req-explode-1" for e in logs.entries() if "tenantgate" in e["logger"]
    )
    # The 500's log line has the exception type and its frames, never its message.
    [error] = [e for e in mine if e["logger"] == "tenantgate.errors"]
    assert error["error"] == "RuntimeError"
    assert any(frame.endswith(" explode") for frame in error["frames"]), error["frames"]
    # Neither in what is written nor in any message (the exception object itself rides along
    # in the record's exc_info, for the formatter to take its type and frames from).
    assert "hunter2" not in "".join(logs.lines)
    assert not [r for r in logs.records if "hunter2" in r.getMessage()]


async def test_one_access_line_per_request_with_the_listed_fields(world: World) -> None:
    await world.tenant("acme")
    user_id = await world.member("acme", "ann@acme.test", "viewer")
    token = await world.login("ann@acme.test")
    with capture_logs(logging.INFO) as logs:
        ok = await world.client.get("/v1/me", headers=bearer(token))
        missing = await world.client.get("/v1/me")
    access = logs.entries("tenantgate.access")
    assert len(access) == 2
    line = access[0]
    assert line["request_id"] == ok.headers["x-request-id"]
    assert line["method"] == "GET"
    assert line["route"] == "/v1/me"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float)
    assert line["tenant"] == "acme"
    assert line["subject_kind"] == "user"
    assert line["subject"] == user_id
    assert line["client_ip"] == "127.0.0.1"
    assert line["rate_limit"] == "allowed"
    assert line["level"] == "INFO"
    assert line["time"].endswith("+00:00")
    unauthenticated = access[1]
    assert unauthenticated["request_id"] == missing.headers["x-request-id"]
    assert unauthenticated["status"] == 401
    assert "subject" not in unauthenticated
    assert "rate_limit" not in unauthenticated


async def test_the_access_line_names_the_route_template_not_the_path(world: World) -> None:
    outer = APIRouter(prefix="/v1/probe/{thing}")
    inner = APIRouter(prefix="/parts")

    @inner.get("/{part_id}")
    async def part(thing: str, part_id: str) -> dict[str, str]:
        return {"thing": thing, "part": part_id}

    outer.include_router(inner)
    world.app.include_router(outer)
    with capture_logs(logging.INFO) as logs:
        response = await world.client.get("/v1/probe/thing-qx/parts/part-qy")
        unknown = await world.client.get("/v1/probe/thing-qx/nothing-qz")
    assert response.status_code == 200
    assert unknown.status_code == 404
    routes = [entry["route"] for entry in logs.entries("tenantgate.access")]
    assert routes == ["/v1/probe/{thing}/parts/{part_id}", "unmatched"]
    ours = json.dumps(logs.entries("tenantgate.access"))
    for raw in ("thing-qx", "part-qy", "nothing-qz"):  # no 'q' in hex request ids
        assert raw not in ours


async def test_no_secret_reaches_any_log(database_url: str) -> None:
    metrics_token = "metrics-token-5p1x8Qe"
    settings = make_settings(database_url, metrics_token=metrics_token)
    async with World.start(settings) as world:
        await world.tenant("acme")
        await world.member("acme", "sam@acme.test", "admin")
        password = world.passwords["sam@acme.test"]
        wrong_password = "Wr0ng-passw0rd-zq"
        cookie = "session=cookie-value-k2v9"
        secrets_seen: list[str] = [password, wrong_password, cookie, metrics_token]
        with capture_logs(logging.DEBUG) as logs:
            tokens = (await world.token_response("sam@acme.test")).json()
            secrets_seen += [tokens["access_token"], tokens["refresh_token"]]
            refreshed = await world.client.post(
                "/token",
                data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            )
            assert refreshed.status_code == 200
            secrets_seen += [refreshed.json()["access_token"], refreshed.json()["refresh_token"]]
            # Reuse of the spent refresh token, a wrong password, an unknown user.
            reused = await world.client.post(
                "/token",
                data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            )
            assert reused.status_code == 400
            for username, attempt in (
                ("sam@acme.test", wrong_password),
                ("nobody@acme.test", password),
            ):
                failed = await world.client.post(
                    "/token",
                    data={"grant_type": "password", "username": username, "password": attempt},
                )
                assert failed.status_code == 400
            access = refreshed.json()["access_token"]
            headers = {**bearer(access), "Cookie": cookie}
            assert (await world.client.get("/v1/me", headers=headers)).status_code == 200
            assert (
                await world.client.get("/v1/me", headers=bearer(access[:-4] + "AAAA"))
            ).status_code == 401
            nothing = await world.client.get("/v1/tenants/acme/nothing", headers=headers)
            assert nothing.status_code == 404
            metrics = await world.client.get(
                "/metrics", headers={"Authorization": f"Bearer {metrics_token}"}
            )
            assert metrics.status_code == 200
            bad_json = await world.client.post(
                "/token", content=f'{{"password": "{password}"'.encode(), headers=headers
            )
            assert bad_json.status_code == 400
    text = logs.everything()
    assert len(logs.records) >= 10
    leaked = [secret for secret in secrets_seen if secret in text]
    assert leaked == []
    assert "Authorization" not in "".join(logs.lines)
    assert "Bearer" not in text


def test_the_formatter_writes_one_json_object_per_line() -> None:
    record = logging.LogRecord(
        "tenantgate.x", logging.WARNING, __file__, 1, "a\nb %s", ("c",), None
    )
    record.tenant = "acme"
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "a\nb c"
    assert entry["tenant"] == "acme"
    assert entry["level"] == "WARNING"


def test_the_formatter_logs_exception_types_and_frames_never_messages() -> None:
    try:
        raise ValueError("INSERT ... parameters: ('alice@example.com', 'hash')")
    except ValueError:
        record = logging.LogRecord(
            "tenantgate.x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    entry = json.loads(JsonFormatter().format(record))
    assert entry["error"] == "ValueError"
    assert any("test_ops_logging.py" in frame for frame in entry["frames"])
    assert "alice@example.com" not in json.dumps(entry)


def test_redaction_of_secret_looking_text_and_secret_named_fields() -> None:
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c3IifQ.c2lnbmF0dXJl"
    text = redact_text(f"auth Bearer abc.def token={jwt} password: hunter2 client_secret=s3cr3t ok")
    for secret in (jwt, "abc.def", "hunter2", "s3cr3t"):
        assert secret not in text
    assert text.endswith(" ok")
    assert redact({"password": "p", "nested": {"refresh_token": "r", "tenant": "acme"}}) == {
        "password": "[redacted]",
        "nested": {"refresh_token": "[redacted]", "tenant": "acme"},
    }


async def test_access_log_can_be_switched_off(database_url: str) -> None:
    async with World.start(make_settings(database_url, access_log=False)) as world:
        with capture_logs(logging.INFO) as logs:
            response = await world.client.get("/health")
    assert response.status_code == 200
    assert logs.entries("tenantgate.access") == []


async def test_a_limited_request_is_logged_and_counted_as_limited(database_url: str) -> None:
    plans = {"free": {"principal": "2/minute", "tenant": "100/minute"}}
    async with World.start(make_settings(database_url, plan_limits=plans)) as world:
        await world.tenant("acme")
        await world.member("acme", "lee@acme.test", "viewer")
        token = await world.login("lee@acme.test")
        with capture_logs(logging.INFO) as logs:
            statuses = [
                (
                    await world.client.get("/v1/tenants/acme/items", headers=bearer(token))
                ).status_code
                for _ in range(3)
            ]
        metrics = (await world.client.get("/metrics")).text
    assert statuses == [200, 200, 429]
    access = logs.entries("tenantgate.access")
    assert [(e["status"], e["rate_limit"]) for e in access] == [
        (200, "allowed"),
        (200, "allowed"),
        (429, "limited"),
    ]
    assert [e["rate_limit_remaining"] for e in access] == [1, 0, 0]
    assert all(e["route"] == "/v1/tenants/{tenant}/items" for e in access)
    assert 'tenantgate_rate_limit_decisions_total{decision="limited"} 1.0' in metrics


async def test_the_client_ip_comes_from_a_trusted_proxy_only(database_url: str) -> None:
    settings = make_settings(database_url, trusted_proxies="127.0.0.1")
    async with World.start(settings) as world:
        with capture_logs(logging.INFO) as logs:
            await world.client.get(
                "/health", headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.9"}
            )
    async with World.start(make_settings(database_url)) as world:
        with capture_logs(logging.INFO) as untrusted:
            await world.client.get("/health", headers={"X-Forwarded-For": "203.0.113.9"})
    assert logs.entries("tenantgate.access")[0]["client_ip"] == "203.0.113.9"
    assert untrusted.entries("tenantgate.access")[0]["client_ip"] == "127.0.0.1"
