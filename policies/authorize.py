"""Stage 4, policy: the scopes a router or route declares, checked against the token."""

from __future__ import annotations

from functools import lru_cache

from fastapi.security import SecurityScopes
from starlette.requests import HTTPConnection

from auth.principal import Principal, authenticated
from policies.decisions import missing_scopes
from policies.errors import InsufficientScope


@lru_cache(maxsize=256)
def _required(scopes: tuple[str, ...]) -> frozenset[str]:
    return frozenset(scopes)


async def require_scopes(security_scopes: SecurityScopes, request: HTTPConnection) -> Principal:
    """Every scope declared along the dependency chain must be in the token.

    It reads the principal the identity stage verified (which runs first: it sits in the
    route's guard dependencies) instead of naming identity again, which would make FastAPI
    solve it once more per scope check; a route without identity before it gets a 401.
    OpenAPI lists these scopes on each route (api/app.py).
    """
    required = _required(tuple(security_scopes.scopes))
    principal = authenticated(request)
    missing = missing_scopes(required, principal.scopes)
    if missing:
        raise InsufficientScope(required or missing)
    return principal
