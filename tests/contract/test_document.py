"""The document itself, without a server: the shapes schemathesis then holds the service to."""

from __future__ import annotations

from typing import Any

import pytest

from api.app import create_app
from config.settings import Settings

PROBLEM = "application/problem+json"
OAUTH = {"/token", "/revoke", "/introspect"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    app = create_app(Settings(_env_file=None, database_url="sqlite+aiosqlite:///:memory:"))
    return app.openapi()


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def test_every_error_is_documented_with_its_media_type(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        for status, response in operation["responses"].items():
            if int(status) < 400:
                continue
            media = set(response["content"])
            expected = {PROBLEM, "application/json"} if path in OAUTH else {PROBLEM}
            if path in OAUTH and status in {"413", "422"}:
                expected = {PROBLEM}
            assert media == expected, (method, path, status, media)
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_statuses_from_below_the_routes_are_documented(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        statuses = set(operation["responses"])
        if path.startswith("/v1/"):
            assert {"401", "403", "422", "429", "503"} <= statuses, (method, path)
        if operation.get("parameters") or "requestBody" in operation:
            assert "400" in statuses, (method, path)
        if "requestBody" in operation:
            assert "413" in statuses, (method, path)
    assert {"400", "401", "429", "503"} <= set(document["paths"]["/token"]["post"]["responses"])


def test_headers_are_declared(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        for status, response in operation["responses"].items():
            headers = response["headers"]
            assert headers["X-Request-ID"]["required"] is True
            if status in {"429", "503"} and path != "/ready":
                assert headers["Retry-After"]["required"] is True, (method, path, status)
            if status in {"401", "403"} and path.startswith("/v1/"):
                assert headers["WWW-Authenticate"]["required"] is True, (method, path, status)
            if status == "201":
                assert headers["Location"]["required"] is True, (method, path)
    items = document["paths"]["/v1/tenants/{tenant}/items/{item_id}"]
    assert items["get"]["responses"]["200"]["headers"]["ETag"]["required"] is True
    listing = document["paths"]["/v1/tenants/{tenant}/items"]["get"]["responses"]["200"]
    assert "ETag" not in listing["headers"]
    assert "RateLimit" in listing["headers"]


def test_revoke_answers_200_without_a_body(document: dict[str, Any]) -> None:
    assert "content" not in document["paths"]["/revoke"]["post"]["responses"]["200"]
