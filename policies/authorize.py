"""Stage 4, policy: the scopes a router or route declares, checked against the token."""

from __future__ import annotations

from fastapi.security import SecurityScopes

from auth.principal import CurrentPrincipal, Principal
from policies.decisions import missing_scopes
from policies.errors import InsufficientScope


async def require_scopes(security_scopes: SecurityScopes, principal: CurrentPrincipal) -> Principal:
    """Every scope declared along the dependency chain must be in the token."""
    required = frozenset(security_scopes.scopes)
    missing = missing_scopes(required, principal.scopes)
    if missing:
        raise InsufficientScope(required or missing)
    return principal
