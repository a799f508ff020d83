"""The document itself, without a server: the shapes schemathesis then holds the service to."""

from __future__ import annotations

import re
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
            if path in OAUTH and status in {"413", "422", "431"}:
                expected = {PROBLEM}
            assert media == expected, (method, path, status, media)
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_statuses_from_below_the_routes_are_documented(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        statuses = set(operation["responses"])
        assert "431" in statuses, (method, path)  # header limit: every request
        if path.startswith("/v1/"):
            assert {"400", "401", "403", "422", "429", "503"} <= statuses, (method, path)
        if path not in {"/health", "/ready"}:
            assert "400" in statuses, (method, path)  # a Host not served, at least
        body = operation.get("requestBody", {}).get("content", {})
        if body:
            assert "413" in statuses, (method, path)
        assert ("415" in statuses) == ("application/json" in body), (method, path)
    assert {"400", "401", "429", "503"} <= set(document["paths"]["/token"]["post"]["responses"])
    assert "415" not in document["paths"]["/token"]["post"]["responses"]  # a form: RFC 6749 400


def test_headers_are_declared(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        for status, response in operation["responses"].items():
            headers = response["headers"]
            assert headers["X-Request-ID"]["required"] is True
            if status in {"429", "503"}:
                assert headers["Retry-After"]["required"] is True, (method, path, status)
            if status in {"401", "403"} and path.startswith("/v1/"):
                assert headers["WWW-Authenticate"]["required"] is True, (method, path, status)
            if status == "201":
                assert headers["Location"]["required"] is True, (method, path)
            if status == "415":
                assert headers["Accept"]["required"] is True, (method, path)
    listing = document["paths"]["/v1/tenants/{tenant}/items"]["get"]["responses"]
    assert "RateLimit" in listing["200"]["headers"]


def _tag_pattern(document: dict[str, Any], path: str, method: str, status: str) -> str:
    header = document["paths"][path][method]["responses"][status]["headers"]["ETag"]
    assert header["required"] is True, (method, path, status)
    pattern: str = header["schema"]["pattern"]
    return pattern


@pytest.mark.parametrize(
    ("path", "method", "statuses", "tag"),
    [
        ("/v1/tenants/{tenant}/items", "post", ("201",), '"1"'),
        ("/v1/tenants/{tenant}/items/{item_id}", "get", ("200", "304"), '"7"'),
        ("/v1/tenants/{tenant}/items/{item_id}", "patch", ("200",), '"8"'),
        ("/v1/tenants/{tenant}/items", "get", ("200", "304"), 'W/"0f3a"'),
        ("/v1/tenants/{tenant}/reports/inventory", "get", ("200", "304"), 'W/"9b"'),
    ],
)
def test_every_etag_is_declared_with_its_shape(
    document: dict[str, Any], path: str, method: str, statuses: tuple[str, ...], tag: str
) -> None:
    """The tags the service sends (api/routers/items.py, api/conditional.py) match the schema."""
    for status in statuses:
        assert re.fullmatch(_tag_pattern(document, path, method, status), tag), (path, status)


def test_revoke_answers_200_without_a_body(document: dict[str, Any]) -> None:
    assert "content" not in document["paths"]["/revoke"]["post"]["responses"]["200"]


def test_every_path_parameter_is_documented_once_with_a_schema(document: dict[str, Any]) -> None:
    """The tenant guard reads `tenant` from the matched path (policies/guard.py): the document
    still lists it, as every `{name}` of a path, exactly once."""
    for path, method, operation in operations(document):
        names = [p["name"] for p in operation.get("parameters", ()) if p["in"] == "path"]
        assert sorted(names) == sorted(re.findall(r"{(\w+)}", path)), (method, path)
        for parameter in operation.get("parameters", ()):
            if parameter["in"] == "path":
                assert parameter["schema"]["type"] == "string", (method, path, parameter)
        if "{tenant}" in path:
            tenant = next(p for p in operation["parameters"] if p["name"] == "tenant")
            assert (tenant["required"], tenant["schema"]["maxLength"]) == (True, 40)
