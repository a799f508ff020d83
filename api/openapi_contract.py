"""The OpenAPI document made exact: every status an operation can answer, with its media type,
its schema and the headers it carries. schemathesis holds the service to it (tests/contract/).

FastAPI documents what routes declare; some answers come from below the routes and are added
here for every operation they reach: a `Host` not served, a body that cannot be parsed or text
the database cannot store (400), a body over the limit (413), a JSON body sent as another media
type (415), request headers over the limit (431), a database or state store out of reach or a
request past its deadline (503). Errors are `application/problem+json` (RFC 9457) except on the
token endpoints (RFC 6749 JSON bodies).
"""

from __future__ import annotations

import re
from typing import Any

PROBLEM_MEDIA = "application/problem+json"
OAUTH_PATHS = frozenset({"/token", "/revoke", "/introspect"})
# Answered from memory, no input, no database: no 503 (and no 400 but a refused Host).
NO_IO_PATHS = frozenset(
    {"/health", "/.well-known/jwks.json", "/.well-known/oauth-authorization-server"}
)
# Probes answer whatever the Host (api/middleware/stack.py), so a load balancer can reach them.
PROBES = frozenset({"/health", "/ready"})
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
OAUTH_REF = {"$ref": "#/components/schemas/OAuthErrorOut"}
ITEMS = "/v1/tenants/{tenant}/items"
ITEM = ITEMS + "/{item_id}"
REPORT = "/v1/tenants/{tenant}/reports/inventory"
# Which ETag an answer carries (200, 201 and 304): an item's version (strong) or a digest of a
# page or a report (weak, api/conditional.py).
STRONG_TAGS = {(ITEMS, "post"), (ITEM, "get"), (ITEM, "patch")}
WEAK_TAGS = {(ITEMS, "get"), (REPORT, "get")}

_TEXT = {"type": "string"}
HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-ID": {"description": "The request's id, also in its log lines", "schema": _TEXT},
    "Retry-After": {
        "description": "Seconds to wait before retrying",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    "WWW-Authenticate": {"description": "RFC 6750 (or Basic) challenge", "schema": _TEXT},
    "ETag": {
        "description": 'The item\'s version as a strong entity tag, e.g. "3"',
        "schema": {"type": "string", "pattern": '^"[0-9]+"$'},
    },
    "Weak-ETag": {
        "description": "A weak entity tag over what the body shows, for If-None-Match",
        "schema": {"type": "string", "pattern": '^W/"[0-9a-f]+"$'},
    },
    "Accept": {"description": "The media type the operation reads", "schema": _TEXT},
    "Location": {"description": "The path of the created resource", "schema": _TEXT},
    "RateLimit-Policy": {"description": "IETF draft: the quotas that apply", "schema": _TEXT},
    "RateLimit": {"description": "IETF draft: what is left of each quota", "schema": _TEXT},
    "X-RateLimit-Limit": {"description": "The most restrictive quota", "schema": _TEXT},
    "X-RateLimit-Remaining": {"description": "What is left of it", "schema": _TEXT},
    "X-RateLimit-Reset": {"description": "Seconds until it resets", "schema": _TEXT},
}
RATE_LIMIT_HEADERS = (
    "RateLimit-Policy",
    "RateLimit",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
)
ADDED = {
    400: "Malformed input: a body that cannot be parsed, or text the database cannot store; "
    "or a Host this service does not serve",
    413: "The body is over the size limit",
    415: "The body is not JSON (see Accept)",
    431: "The request headers are over the size limit",
    503: "The database or the shared state store is out of reach (or the request timed out)",
}


# Path parameters read from the matched path rather than declared by a route (the tenant guard
# reads `tenant`, policies/guard.py): documented here, like every `{name}` of a path.
PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "tenant": {
        "description": "Tenant slug",
        "schema": {"type": "string", "maxLength": 40, "title": "Tenant"},
    },
}


_TEXT_PARAM: dict[str, Any] = {"schema": _TEXT}


def make_exact(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {})
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            _operation(path, method, operation)
    schemas = components.get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return schema


def _operation(path: str, method: str, operation: dict[str, Any]) -> None:
    _path_parameters(path, operation)
    responses: dict[str, Any] = operation["responses"]
    body = operation.get("requestBody", {}).get("content", {})
    if path not in PROBES:
        responses.setdefault("400", {"description": ADDED[400]})
    if path not in NO_IO_PATHS:
        responses.setdefault("503", {"description": ADDED[503]})
    if body:
        responses.setdefault("413", {"description": ADDED[413]})
    if "application/json" in body:
        responses.setdefault("415", {"description": ADDED[415]})
    responses.setdefault("431", {"description": ADDED[431]})
    if path in OAUTH_PATHS:
        responses.setdefault("429", {"description": "Too many attempts; see Retry-After"})
    if path == "/revoke":
        # RFC 7009 2.2: an empty 200; the client ignores any body.
        responses["200"] = {"description": "Revoked, or an unknown token (no body)"}
    for status, response in responses.items():
        _response(path, method, int(status), response)


def _path_parameters(path: str, operation: dict[str, Any]) -> None:
    """Every `{name}` of the path is a documented path parameter, in the path's order."""
    declared = {p["name"] for p in operation.get("parameters", ()) if p.get("in") == "path"}
    missing = [
        {"name": name, "in": "path", "required": True, **PATH_PARAMETERS.get(name, _TEXT_PARAM)}
        for name in re.findall(r"{(\w+)}", path)
        if name not in declared
    ]
    if missing:
        operation["parameters"] = [*missing, *operation.get("parameters", ())]


def _response(path: str, method: str, status: int, response: dict[str, Any]) -> None:
    headers = response.setdefault("headers", {})
    headers["X-Request-ID"] = _header("X-Request-ID", required=True)
    guarded = path.startswith("/v1/")
    if status >= 400:
        response["content"] = _error_content(path, status)
    if status in (429, 503):
        headers["Retry-After"] = _header("Retry-After", required=True)
    if status in (401, 403) and (guarded or (status == 401 and path in OAUTH_PATHS)):
        headers["WWW-Authenticate"] = _header("WWW-Authenticate", required=True)
    if (guarded and (status < 400 or status == 429)) or path == "/token":
        for name in RATE_LIMIT_HEADERS:
            headers[name] = _header(name, required=False)
    if status in (200, 201, 304) and (path, method) in STRONG_TAGS:
        headers["ETag"] = _header("ETag", required=True)
    if status in (200, 304) and (path, method) in WEAK_TAGS:
        headers["ETag"] = _header("Weak-ETag", required=True)
    if status == 201:
        headers["Location"] = _header("Location", required=True)
    if status == 415:
        headers["Accept"] = _header("Accept", required=True)


def _error_content(path: str, status: int) -> dict[str, Any]:
    problem = {PROBLEM_MEDIA: {"schema": PROBLEM_REF}}
    if path in OAUTH_PATHS and status in (400, 401, 429, 503):
        # RFC 6749 bodies; a malformed body, an oversized one or a timeout is still a problem.
        return {"application/json": {"schema": OAUTH_REF}, **problem}
    return problem


def _header(name: str, *, required: bool) -> dict[str, Any]:
    return {**HEADERS[name], "required": required}
