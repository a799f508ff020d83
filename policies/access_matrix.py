"""The access matrix, derived from the running app and the data, never maintained by hand.

Routes: each route's required scopes are the union of every `Security(require_scopes, scopes=...)`
(or `Security(tenant_guard, scopes=...)`, which runs require_scopes) on its dependency tree
(router and route), exactly what FastAPI hands to `require_scopes` as SecurityScopes. Roles
come from policies/roles.py; members, clients and open refresh sessions from the database.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, APIWebSocketRoute, RouteContext, iter_route_contexts
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.routing import BaseRoute, Match

from auth.principal import get_principal
from policies.admission import admit_principal, admit_tenant_request
from policies.authorize import require_scopes
from policies.guard import stages_of
from policies.roles import ROLES, role_scopes
from policies.scopes import SCOPES
from policies.tenancy import get_tenant
from storage import access

# The method a WebSocket route is listed (and evaluated) under; its handshake is a GET.
WEBSOCKET = "WS"


@dataclass(frozen=True, slots=True)
class RouteAccess:
    method: str
    path: str
    summary: str
    scopes: frozenset[str]
    authenticated: bool  # a bearer token is verified
    tenant_bound: bool  # the path tenant must be the token's
    admitted: bool  # revocation (and, tenant-bound, tenant status and rate limits) is checked
    tenant_admitted: bool = False  # the tenant's status and rate limits are checked

    @property
    def roles(self) -> list[str]:
        """Tenant roles whose scopes cover the route (none for platform or public routes)."""
        if not self.scopes:
            return []
        return [role for role, scopes in ROLES.items() if self.scopes <= scopes]


@dataclass(frozen=True, slots=True)
class MemberAccess:
    user_id: str
    email: str
    role: str
    active: bool
    scopes: frozenset[str]


@dataclass(frozen=True, slots=True)
class TenantAccess:
    """Who holds what in one tenant."""

    members: list[MemberAccess]
    clients: list[access.ClientHolding]
    sessions: list[access.OpenSessions]


def _calls(dependant: Dependant, inherited: tuple[str, ...] = ()) -> Iterable[tuple[Any, set[str]]]:
    """(call, scopes FastAPI passes to it as SecurityScopes) for every node of the tree; a
    composite guard (policies/guard.py) stands for the stages it runs."""
    scopes = (*inherited, *(dependant.own_oauth_scopes or ()))
    for call in stages_of(dependant.call):
        yield call, set(scopes)
    for child in dependant.dependencies:
        yield from _calls(child, scopes)


def route_access(route: RouteContext) -> list[RouteAccess]:
    """The route as served: prefixes and the dependencies of every including router applied."""
    required: set[str] = set()
    calls: set[Callable[..., Any]] = set()
    for call, scopes in _calls(route.dependant):
        if call is not None:
            calls.add(call)
        if call is require_scopes:
            required |= scopes
    summary = (
        getattr(route, "summary", None)
        or _docstring_summary(route)
        or str(route.name).replace("_", " ")
    )
    methods = _methods(route)
    return [
        RouteAccess(
            method=method,
            path=str(route.path),
            summary=summary,
            scopes=frozenset(required),
            authenticated=get_principal in calls,
            tenant_bound=get_tenant in calls,
            admitted=admit_tenant_request in calls or admit_principal in calls,
            tenant_admitted=admit_tenant_request in calls,
        )
        for method in methods
    ]


def _docstring_summary(route: RouteContext) -> str | None:
    """The first line of the endpoint's docstring: WebSocket routes take no `summary`, and a
    route's name (`audit:stream`) says little to a person reading the matrix."""
    doc = inspect.getdoc(route.endpoint) if route.endpoint is not None else None
    return doc.splitlines()[0].rstrip(".") if doc else None


def _methods(route: RouteContext) -> list[str]:
    if isinstance(route.original_route, APIWebSocketRoute):
        return [WEBSOCKET]
    return sorted((route.methods or set()) - {"HEAD", "OPTIONS"})


def _is_api(route: RouteContext) -> bool:
    """HTTP and WebSocket API routes (the docs routes are neither)."""
    return isinstance(route.original_route, APIRoute | APIWebSocketRoute)


def route_matrix(routes: Sequence[BaseRoute]) -> list[RouteAccess]:
    """Every API route of the app, sorted by path then method (docs routes are not APIRoutes)."""
    rows = [
        row
        for route in iter_route_contexts(routes)
        if _is_api(route)
        for row in route_access(route)
    ]
    return sorted(rows, key=lambda row: (row.path, row.method))


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """The route a request would reach, and the tenant its path names (None: no tenant)."""

    access: RouteAccess | None  # None: the path exists, but not for this method (405)
    path_tenant: str | None

    @property
    def label(self) -> str | None:
        return None if self.access is None else f"{self.access.method} {self.access.path}"


def match_route(
    routes: Sequence[BaseRoute], method: str, path: str, tenant: str
) -> RouteMatch | None:
    """The route `METHOD path` reaches, matched as the router itself matches; `path` may also
    be a route template, whose `{tenant}` then stands for `tenant`. None: no such route (404)."""
    method = method.upper()
    partial: RouteMatch | None = None
    for route in iter_route_contexts(routes):
        if not _is_api(route):
            continue
        websocket = isinstance(route.original_route, APIWebSocketRoute)
        if "{" in path:
            if str(route.path) != path:
                continue
            found, path_tenant = Match.FULL, tenant if "{tenant}" in path else None
        else:
            scope = {"type": "websocket" if websocket else "http", "path": path, "method": method}
            found, child = route.matches({**scope, "root_path": ""})
            path_tenant = child.get("path_params", {}).get("tenant") if child else None
        if found is Match.NONE:
            continue
        methods = _methods(route)
        wanted = WEBSOCKET if websocket and method in (WEBSOCKET, "GET") else method
        if wanted in methods or (wanted == "HEAD" and "GET" in methods):
            chosen = "GET" if wanted == "HEAD" else wanted
            access = next(row for row in route_access(route) if row.method == chosen)
            return RouteMatch(access, path_tenant)
        partial = partial or RouteMatch(None, path_tenant)
    return partial


def route_template(routes: Sequence[BaseRoute], scope: Mapping[str, Any]) -> str | None:
    """The full path template of the route that matched (`scope["route"]` is the route as
    declared, without the prefixes of the routers that include it)."""
    matched = scope.get("route")
    candidates = [c for c in iter_route_contexts(routes) if c.original_route is matched]
    for context in candidates:
        regex = getattr(context, "path_regex", None)
        if regex is not None and regex.match(scope.get("path", "")):
            return str(context.path)
    return str(candidates[0].path) if candidates else getattr(matched, "path", None)


def role_matrix() -> dict[str, frozenset[str]]:
    return dict(ROLES)


def scope_catalogue() -> dict[str, str]:
    return dict(SCOPES)


async def tenant_access(connection: AsyncConnection, tenant: str) -> TenantAccess:
    # A deactivated user cannot log in: their membership grants nothing until reactivated.
    members = [
        MemberAccess(
            m.user_id, m.email, m.role, m.active, role_scopes(m.role) if m.active else frozenset()
        )
        for m in await access.members(connection, tenant)
    ]
    return TenantAccess(
        members=members,
        clients=await access.tenant_clients(connection, tenant),
        sessions=await access.open_sessions(connection, tenant),
    )


def guards(row: RouteAccess) -> str:
    if not row.authenticated:
        return "public"
    stages = ["token", "tenant" if row.tenant_bound else "", "admission" if row.admitted else ""]
    return ", ".join(stage for stage in stages if stage)


def markdown(rows: Iterable[RouteAccess]) -> str:
    """docs/scopes.md: generated by `tenantgate scopes doc`, checked by tests/test_scopes_doc.py."""
    lines = [
        "# Routes, scopes and roles",
        "",
        "Generated from the running app by `tenantgate scopes doc > docs/scopes.md`: do not",
        "edit by hand; `tests/test_scopes_doc.py` fails when this file drifts from the code.",
        "The live version, with the tenant's members, clients and sessions, is",
        "`GET /v1/tenants/{tenant}/audit/access` (`audit:read`) or `tenantgate scopes matrix`.",
        "",
        "Guards: `token` = a verified bearer token; `tenant` = the path tenant is the token's;",
        "`admission` = revocation, tenant status and rate limits. A route needs every scope",
        "listed; Roles = the tenant roles holding all of them.",
        "",
        "## Routes",
        "",
        "| Method | Path | Scopes | Guards | Roles |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        scopes = " ".join(f"`{scope}`" for scope in sorted(row.scopes)) or "-"
        roles = ", ".join(row.roles) or "-"
        lines.append(f"| {row.method} | `{row.path}` | {scopes} | {guards(row)} | {roles} |")
    lines += ["", "## Roles", "", "| Role | Scopes |", "|---|---|"]
    for role, granted in ROLES.items():
        lines.append(f"| {role} | {' '.join(f'`{s}`' for s in sorted(granted))} |")
    lines += ["", "## Scopes", "", "| Scope | Meaning |", "|---|---|"]
    lines += [f"| `{scope}` | {text} |" for scope, text in SCOPES.items()]
    return "\n".join(lines) + "\n"
