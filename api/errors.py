"""Domain error -> HTTP response: the only module that knows both.

RFC 6749 section 5.2 bodies on the token endpoints, RFC 9457 problem+json everywhere else,
RFC 6750 WWW-Authenticate on 401 and 403. Problem types are documented in docs/problems.md.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError, WebSocketRequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection
from starlette.routing import compile_path

from api.conditional import NotModified
from api.media_type import JSON, unreadable_json_body
from api.metrics import record_auth_failure
from api.schemas.common import NUL_ERROR, NUL_MESSAGE
from auth.errors import InvalidToken, MissingToken, OAuthError
from policies.audit import record_access_denied, record_login_throttled, record_rate_limited
from policies.errors import (
    ClientLimitReached,
    GuardStateUnavailable,
    InsufficientScope,
    LastOwner,
    PasswordRejected,
    PrivilegeEscalation,
    RateLimitBeyondPlan,
    RateLimited,
    SelfManagementRefused,
    TenantNotFound,
    TenantSuspended,
)
from storage.errors import (
    CommitUnknown,
    Conflict,
    DatabaseUnavailable,
    InvalidText,
    NotFound,
    PreconditionFailed,
)

log = logging.getLogger("tenantgate.errors")

PROBLEM_TYPE_BASE = "urn:tenantgate:problem:"
REALM = 'Bearer realm="tenantgate"'
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# Every 503 says when to come back (docs/problems.md): a dependency or the service is busy.
RETRY_LATER = {"Retry-After": "5"}


def problem(
    request: HTTPConnection,
    status: int,
    kind: str,
    title: str,
    detail: str | None = None,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": PROBLEM_TYPE_BASE + kind, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body["instance"] = request.url.path
    request_id = getattr(request.state, "request_id", None)
    if request_id:
        body["request_id"] = request_id
    body.update(extra)
    return JSONResponse(
        body, status_code=status, headers=headers, media_type="application/problem+json"
    )


def oauth_error(error: OAuthError) -> JSONResponse:
    headers = dict(NO_STORE)
    status = 400
    if error.error == "invalid_client":
        status = 401
        headers["WWW-Authenticate"] = 'Basic realm="tenantgate"'
    if error.retry_after is not None:
        status = 429
        headers["Retry-After"] = str(error.retry_after)
    status = error.status or status
    body = {"error": error.error, "error_description": error.description}
    return JSONResponse(body, status_code=status, headers=headers)


def _bearer_challenge(error: str, description: str, scope: str | None = None) -> str:
    challenge = f'{REALM}, error="{error}", error_description="{description}"'
    return challenge + (f', scope="{scope}"' if scope else "")


async def _missing_token(request: Request, _: Exception) -> JSONResponse:
    record_auth_failure(request, "bearer", "missing")
    return problem(
        request,
        401,
        "unauthenticated",
        "Authentication required",
        "Send an access token: Authorization: Bearer <token>",
        headers={"WWW-Authenticate": REALM},
    )


async def _invalid_token(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, InvalidToken)
    record_auth_failure(request, "bearer", error.reason)
    description = f"the access token is {error.reason.replace('_', ' ')}"
    return problem(
        request,
        401,
        "invalid-token",
        "Invalid access token",
        description,
        headers={"WWW-Authenticate": _bearer_challenge("invalid_token", description)},
    )


async def _insufficient_scope(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, InsufficientScope)
    await record_access_denied(request, error)
    scope = " ".join(sorted(error.required))
    description = f"this operation needs the scope(s): {scope}"
    return problem(
        request,
        403,
        "insufficient-scope",
        "Insufficient scope",
        description,
        headers={"WWW-Authenticate": _bearer_challenge("insufficient_scope", description, scope)},
        required_scopes=sorted(error.required),
    )


async def _privilege_escalation(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, PrivilegeEscalation)
    await record_access_denied(request, error)
    scope = " ".join(sorted(error.required))
    description = f"the role needs scope(s) this token does not hold: {scope}"
    return problem(
        request,
        403,
        "privilege-escalation",
        "Privilege escalation refused",
        description,
        headers={"WWW-Authenticate": _bearer_challenge("insufficient_scope", description, scope)},
        missing_scopes=sorted(error.required),
    )


async def _last_owner(request: Request, error: Exception) -> JSONResponse:
    return problem(request, 409, "last-owner", "The last owner must stay", str(error))


async def _client_limit(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ClientLimitReached)
    return problem(
        request,
        409,
        "client-limit-reached",
        "Client limit reached",
        str(error),
        plan=error.plan,
        limit=error.limit,
    )


async def _rate_limit_beyond_plan(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RateLimitBeyondPlan)
    return problem(
        request,
        422,
        "rate-limit-beyond-plan",
        "Rate limit beyond the plan",
        str(error),
        plan=error.plan,
    )


async def _self_management(request: Request, error: Exception) -> JSONResponse:
    return problem(
        request,
        403,
        "self-management-refused",
        "A client cannot manage itself",
        str(error),
        headers={"WWW-Authenticate": REALM},
    )


async def _password_rejected(request: Request, error: Exception) -> JSONResponse:
    return problem(request, 400, "password-rejected", "Password change refused", str(error))


async def _tenant_not_found(request: Request, _: Exception) -> JSONResponse:
    return problem(request, 404, "tenant-not-found", "Tenant not found")


async def _tenant_suspended(request: Request, _: Exception) -> JSONResponse:
    return problem(
        request,
        403,
        "tenant-suspended",
        "Tenant suspended",
        "this tenant is suspended; contact the platform operator",
        headers={"WWW-Authenticate": REALM},
    )


async def _rate_limited(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RateLimited)
    await record_rate_limited(request, error)
    return problem(
        request,
        429,
        "rate-limited",
        "Too many requests",
        f"retry after {error.retry_after} seconds",
        headers={"Retry-After": str(error.retry_after)},
    )


async def _guard_state_unavailable(request: Request, _: Exception) -> JSONResponse:
    return problem(
        request,
        503,
        "state-store-unavailable",
        "Change not possible right now",
        "the shared state store is unreachable, nothing was changed; retry shortly",
        headers=RETRY_LATER,
    )


async def _database_unavailable(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, DatabaseUnavailable)
    unknown = isinstance(error, CommitUnknown)
    # One line for operators; the reason names the failure, never a statement or a parameter.
    log.error(
        "database unavailable on %s %s: %s",
        request.method,
        request.url.path,
        error,
        extra={"commit_unknown": unknown},
    )
    headers = dict(RETRY_LATER)
    if request.url.path in OAUTH_ENDPOINTS:
        description = "the service cannot reach its database; retry shortly"
        body = {"error": "temporarily_unavailable", "error_description": description}
        return JSONResponse(body, status_code=503, headers={**NO_STORE, **headers})
    if unknown:
        return problem(
            request,
            503,
            "commit-unknown",
            "Outcome unknown",
            "the database connection failed while the change was being committed; it may or "
            "may not have been stored: read it back before retrying",
            headers=headers,
        )
    return problem(
        request,
        503,
        "database-unavailable",
        "Database unavailable",
        "the database cannot be reached right now; nothing was changed, retry shortly",
        headers=headers,
    )


async def _oauth(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, OAuthError)
    if error.retry_after is not None and error.status is None:
        await record_login_throttled(request)
    record_auth_failure(request, "token", error.error)
    return oauth_error(error)


async def _not_found(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, NotFound)
    return problem(
        request, 404, f"{error.resource}-not-found", f"{error.resource.title()} not found"
    )


async def _conflict(request: Request, error: Exception) -> JSONResponse:
    return problem(request, 409, "conflict", "Conflict", str(error))


async def _precondition(request: Request, error: Exception) -> JSONResponse:
    return problem(request, 412, "precondition-failed", "Precondition failed", str(error))


OAUTH_ENDPOINTS = frozenset({"/token", "/revoke", "/introspect"})


async def _invalid_text(request: Request, error: Exception) -> JSONResponse:
    if request.url.path in OAUTH_ENDPOINTS:
        return oauth_error(OAuthError("invalid_request", str(error)))
    return problem(request, 400, "invalid-text", "Invalid text", str(error))


async def _validation(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError | WebSocketRequestValidationError)
    if any(e.get("type") == NUL_ERROR for e in error.errors()):
        return problem(request, 400, "invalid-text", "Invalid text", NUL_MESSAGE)
    if unreadable_json_body(request):
        return problem(
            request,
            415,
            "unsupported-media-type",
            "Unsupported media type",
            f"send the body as {JSON}",
            headers={"Accept": JSON},
        )
    # Never echo the input back: it may hold a password or a token.
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in error.errors()
    ]
    return problem(
        request,
        422,
        "validation-error",
        "Invalid request",
        "the request does not match the schema",
        errors=errors,
    )


async def _http(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    kind = {404: "not-found", 405: "method-not-allowed", 413: "payload-too-large"}.get(
        error.status_code, "http-error"
    )
    headers = dict(error.headers or {})
    if error.status_code == 405:
        # The router names the methods of the first route matching the path only; RFC 9110
        # 15.5.6 wants all of the resource's.
        headers["Allow"] = ", ".join(allowed_methods(request))
    return problem(request, error.status_code, kind, str(error.detail), headers=headers)


def allowed_methods(request: Request) -> list[str]:
    path = request.scope.get("path", "")
    methods = {
        method
        for route in iter_route_contexts(request.app.routes)
        if route.path and compile_path(route.path)[0].match(path)
        for method in route.methods or ()
    }
    return sorted(methods)


async def _not_modified(request: Request, error: Exception) -> Response:
    assert isinstance(error, NotModified)
    return Response(status_code=304, headers={"ETag": error.etag})


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    method = request.scope.get("method", "WS")
    # exc_info: the JSON formatter logs the type and the frames, never the message.
    log.error(
        "unhandled %s on %s %s",
        type(error).__name__,
        method,
        request.url.path,
        exc_info=(type(error), error, error.__traceback__),
    )
    return problem(request, 500, "internal-error", "Internal error")


def install_error_handlers(app: FastAPI) -> None:
    handlers = {
        MissingToken: _missing_token,
        InvalidToken: _invalid_token,
        InsufficientScope: _insufficient_scope,
        PrivilegeEscalation: _privilege_escalation,
        LastOwner: _last_owner,
        ClientLimitReached: _client_limit,
        RateLimitBeyondPlan: _rate_limit_beyond_plan,
        SelfManagementRefused: _self_management,
        PasswordRejected: _password_rejected,
        TenantNotFound: _tenant_not_found,
        TenantSuspended: _tenant_suspended,
        RateLimited: _rate_limited,
        GuardStateUnavailable: _guard_state_unavailable,
        DatabaseUnavailable: _database_unavailable,
        OAuthError: _oauth,
        NotFound: _not_found,
        Conflict: _conflict,
        PreconditionFailed: _precondition,
        InvalidText: _invalid_text,
        RequestValidationError: _validation,
        WebSocketRequestValidationError: _validation,
        NotModified: _not_modified,
        StarletteHTTPException: _http,
        Exception: _unexpected,
    }
    for error_type, handler in handlers.items():
        app.add_exception_handler(error_type, handler)
