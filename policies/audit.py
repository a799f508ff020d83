"""Audit events built from a request: the actor (token), where it came from, what happened.

Routers record a change with `record(connection, request, ...)` inside the change's own write
transaction. Refusals that fail the request (insufficient scope, rate limit) are written in a short
transaction of their own by the error handlers; those never turn the refusal into a 500.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.requests import HTTPConnection

from auth.grants import FIRST_PARTY_CLIENT_ID
from auth.principal import CLIENT_SUBJECT_PREFIX, PRINCIPAL_SCOPE_KEY, Principal
from auth.tokens import AccessClaims
from config.settings import Settings
from policies.access_matrix import WEBSOCKET, route_template
from policies.errors import InsufficientScope, PrivilegeEscalation, RateLimited
from policies.rate_limit import LOGIN_STATE, Quota, request_client_ip
from storage.access import refresh_family_owner
from storage.audit import (
    ANONYMOUS,
    Action,
    Actor,
    Context,
    Event,
    EventOutcome,
    NewEvent,
    append,
    append_once_per_window,
)
from storage.database import Database
from storage.tables import utcnow
from storage.tenants import TenantRow

__all__ = [
    "Action",
    "EventOutcome",
    "actor_of",
    "record",
    "record_access_denied",
    "record_login_throttled",
    "record_rate_limited",
    "record_tenant_change",
    "record_token_revoked",
    "request_context",
]

log = logging.getLogger("tenantgate.audit")

# Rate-limit windows already recorded by this process: (chain, subject, counter) -> end (epoch ms).
# Only spares the database a look-up per 429; the database decides across workers.
_WINDOWS_ATTRIBUTE = "audit_rate_limit_windows"
_WINDOWS_MAX = 10_000


def request_context(request: HTTPConnection) -> Context:
    """Client IP as the limiter sees it (X-Forwarded-For only from trusted proxies)."""
    request_id = getattr(request.state, "request_id", None)
    settings = cast(Settings, request.app.state.settings)
    client_ip = request_client_ip(request.scope, settings) if request.client else None
    return Context(
        client_ip=client_ip,
        user_agent=request.headers.get("user-agent"),
        request_id=request_id if isinstance(request_id, str) else None,
    )


def request_principal(request: HTTPConnection) -> Principal | None:
    """The caller get_principal verified, from this request's own ASGI scope."""
    principal = request.scope.get(PRINCIPAL_SCOPE_KEY)
    return principal if isinstance(principal, Principal) else None


def actor_of(principal: Principal | None) -> Actor:
    return ANONYMOUS if principal is None else Actor(principal.kind, principal.subject)


def route_of(request: HTTPConnection) -> str:
    """`METHOD /path/{template}`: the route, never the raw path (ids and slugs stay out)."""
    template = route_template(request.app.routes, request.scope)
    # A WebSocket handshake has no method of its own: WS, as the access matrix lists it.
    method = request.scope.get("method", WEBSOCKET)
    return f"{method} {template or '(unmatched)'}"


async def record(
    connection: AsyncConnection,
    request: HTTPConnection,
    action: Action,
    *,
    tenant: str | None,
    target: str | None = None,
    outcome: EventOutcome = EventOutcome.SUCCESS,
    scopes: Iterable[str] = (),
    details: Mapping[str, Any] | None = None,
    actor: Actor | None = None,
) -> Event:
    """Append one event for a change made in `connection`'s transaction by the caller (the
    token's principal, unless `actor` says otherwise)."""
    event = NewEvent(
        action=action,
        tenant=tenant,
        actor=actor or actor_of(request_principal(request)),
        outcome=outcome,
        target=target,
        scopes=scopes,
        context=request_context(request),
        details=details or {},
    )
    return await append(connection, event)


def _database(request: HTTPConnection) -> Database:
    return cast(Database, request.app.state.database)


async def record_access_denied(request: HTTPConnection, error: InsufficientScope) -> None:
    principal = request_principal(request)
    if principal is None:
        return
    event = NewEvent(
        action=Action.ACCESS_DENIED,
        tenant=principal.tenant,
        actor=actor_of(principal),
        outcome=EventOutcome.DENIED,
        target=route_of(request),
        scopes=error.required,
        context=request_context(request),
        details={
            "reason": (
                "privilege_escalation"
                if isinstance(error, PrivilegeEscalation)
                else "insufficient_scope"
            ),
            "missing": sorted(error.required - principal.scopes),
            "client_id": principal.claims.client_id,
        },
    )
    try:
        async with _database(request).write() as connection:
            await append(connection, event)
    except Exception as failure:  # noqa: BLE001 - the 403 stands; the failure is logged
        log.error("audit: access.denied not recorded (%s)", type(failure).__name__)


async def record_rate_limited(request: HTTPConnection, error: RateLimited) -> None:
    """One event per (principal, exhausted counter, window), not one per rejected request."""
    principal = request_principal(request)
    if principal is None:
        return
    names = error.names or (("principal", "tenant") if len(error.counters) == 2 else ())
    exhausted = [
        (names[index] if names else f"counter{index}", counter)
        for index, counter in enumerate(error.counters)
        if counter.remaining == 0
    ]
    if not exhausted:
        return
    name, counter = exhausted[0]
    now_ms = time.time_ns() // 1_000_000
    key = (principal.tenant or "", principal.subject, name)
    windows = _recorded_windows(request)
    if windows.get(key, 0) > now_ms:
        return
    window_end = utcnow() + timedelta(milliseconds=counter.reset_ms)
    event = NewEvent(
        action=Action.RATE_LIMIT_EXCEEDED,
        tenant=principal.tenant,
        actor=actor_of(principal),
        outcome=EventOutcome.DENIED,
        target=f"rate_limit:{name}",
        context=request_context(request),
        details={
            "limit": counter.limit,
            "window_seconds": counter.window,
            "first_route": route_of(request),
            "client_id": principal.claims.client_id,
        },
    )
    try:
        await append_once_per_window(_database(request), event, window_end)
    except Exception as failure:  # noqa: BLE001 - the 429 stands; the failure is logged
        log.error("audit: rate_limit.exceeded not recorded (%s)", type(failure).__name__)
        return
    _remember(windows, key, now_ms + counter.reset_ms, now_ms)


def _recorded_windows(request: HTTPConnection) -> dict[tuple[str, str, str], int]:
    state = request.app.state
    windows = getattr(state, _WINDOWS_ATTRIBUTE, None)
    if windows is None:
        windows = {}
        setattr(state, _WINDOWS_ATTRIBUTE, windows)
    return cast(dict[tuple[str, str, str], int], windows)


def _remember(windows: dict[tuple[str, str, str], int], key: Any, end: int, now: int) -> None:
    if len(windows) >= _WINDOWS_MAX:
        for stale in [k for k, v in windows.items() if v <= now]:
            del windows[stale]
        if len(windows) >= _WINDOWS_MAX:
            windows.clear()
    windows[key] = end


def _subject_actor(subject: str) -> Actor:
    return Actor("client" if subject.startswith(CLIENT_SUBJECT_PREFIX) else "user", subject)


async def record_token_revoked(
    connection: AsyncConnection,
    request: HTTPConnection,
    caller: str,
    *,
    access: AccessClaims | None = None,
    family: str | None = None,
) -> None:
    """RFC 7009 revocation of an access token (by jti) or a refresh-token family, by `caller`
    (a client_id; the first-party public client means the token's own user)."""
    if access is not None:
        tenant, subject, scopes = access.tenant, access.subject, access.scopes
        target = f"token:{access.jti}"
        details = {"token_type": "access_token", "jti": access.jti, "client_id": access.client_id}
    else:
        assert family is not None
        owner = await refresh_family_owner(connection, family)
        if owner is None:
            return
        subject, tenant, scopes = owner
        target = f"refresh_family:{family}"
        details = {"token_type": "refresh_token", "family": family, "client_id": caller}
    actor = (
        _subject_actor(subject)
        if caller == FIRST_PARTY_CLIENT_ID
        else Actor("client", CLIENT_SUBJECT_PREFIX + caller)
    )
    await record(
        connection,
        request,
        Action.TOKEN_REVOKED,
        tenant=tenant,
        target=target,
        scopes=scopes,
        details={**details, "subject": subject},
        actor=actor,
    )


async def record_tenant_change(
    connection: AsyncConnection, request: HTTPConnection, before: TenantRow, after: TenantRow
) -> None:
    """tenant.suspended when it was suspended, else tenant.changed; nothing when nothing did."""
    changes = {
        field: {"from": getattr(before, field), "to": getattr(after, field)}
        for field in ("name", "plan", "status")
        if getattr(before, field) != getattr(after, field)
    }
    if not changes:
        return
    suspended = before.status != "suspended" and after.status == "suspended"
    await record(
        connection,
        request,
        Action.TENANT_SUSPENDED if suspended else Action.TENANT_CHANGED,
        tenant=after.slug,
        target=f"tenant:{after.slug}",
        details=changes,
    )


async def record_login_throttled(request: HTTPConnection) -> None:
    """/token refused over its sign-in limits: one event per client IP and window (platform
    trail, anonymous: the attempts are not authenticated)."""
    quotas = getattr(request.state, LOGIN_STATE, None)
    exhausted = [q for q in quotas or () if isinstance(q, Quota) and q.counter.remaining == 0]
    if not exhausted:
        return
    quota = exhausted[-1]  # the username limit, when it is the one refusing
    ip = request_context(request).client_ip or "unknown"
    event = NewEvent(
        action=Action.RATE_LIMIT_EXCEEDED,
        tenant=None,
        actor=ANONYMOUS,
        outcome=EventOutcome.DENIED,
        target=f"login:{ip}",
        context=request_context(request),
        details={
            "policy": quota.policy,
            "limit": quota.counter.limit,
            "window_seconds": quota.counter.window,
            "first_route": route_of(request),
        },
    )
    window_end = utcnow() + timedelta(milliseconds=quota.counter.reset_ms)
    try:
        await append_once_per_window(_database(request), event, window_end)
    except Exception as failure:  # noqa: BLE001 - the 429 stands; the failure is logged
        log.error("audit: rate_limit.exceeded not recorded (%s)", type(failure).__name__)
