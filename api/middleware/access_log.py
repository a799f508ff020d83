"""One access-log line per request, built from an allowlist of fields (never headers or bodies)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi.routing import iter_route_contexts
from starlette.types import Scope

from api.metrics import DECISIONS
from auth.principal import Principal
from storage.guard_state import Verdict

log = logging.getLogger("tenantgate.access")

UNMATCHED = "unmatched"


class RouteTemplates:
    """The full path template of the route that answered (`/v1/tenants/{tenant}/items/{id}`).

    Starlette puts the matched route object in the scope; routers included with a prefix keep
    their own short path, so the full template is looked up from the app's route contexts.
    """

    def __init__(self) -> None:
        self._templates: dict[int, str] = {}

    def template(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is None:
            return UNMATCHED
        template = self._templates.get(id(route))
        if template is None:
            template = self._lookup(scope, route)
            self._templates[id(route)] = template
        return template

    @staticmethod
    def _lookup(scope: Scope, route: object) -> str:
        app = scope.get("app")
        paths = {
            str(context.path)
            for context in iter_route_contexts(getattr(app, "routes", []))
            if context.original_route is route and context.path
        }
        if len(paths) == 1:
            return paths.pop()
        # Not included under a prefix (or included twice): the route's own template.
        return str(getattr(route, "path", UNMATCHED))


def record(
    scope: Scope, *, route: str, status: int, duration_ms: float, ip: str | None
) -> dict[str, Any]:
    state: dict[str, Any] = scope.get("state") or {}
    entry: dict[str, Any] = {
        "method": scope.get("method"),
        "route": route,
        "status": status,
        "duration_ms": round(duration_ms, 3),
        "client_ip": ip,
    }
    principal = state.get("principal")
    if isinstance(principal, Principal):
        entry["subject_kind"] = principal.kind
        entry["subject"] = principal.subject
        entry["tenant"] = principal.tenant
    else:
        # The path's tenant (a slug of at most 40 characters when valid); cut whatever else.
        tenant = (scope.get("path_params") or {}).get("tenant")
        entry["tenant"] = str(tenant)[:64] if tenant is not None else None
    verdict = state.get("rate_limit")
    if isinstance(verdict, Verdict):
        entry["rate_limit"] = DECISIONS.get(verdict.outcome, "other")
        counters = [c for c in (verdict.principal, verdict.tenant) if c is not None]
        if counters:
            entry["rate_limit_remaining"] = min(c.remaining for c in counters)
    return entry


def emit(entry: dict[str, Any]) -> None:
    # makeRecord + handle: a log.info() call would also walk the stack to find its caller.
    record = log.makeRecord(
        log.name,
        logging.INFO,
        __file__,
        0,
        "%s %s %s",
        (entry["method"], entry["route"], entry["status"]),
        None,
        extra=entry,
    )
    log.handle(record)
