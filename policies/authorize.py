"""Stage 4, policy: the scopes a router or route declares, checked against the token."""

from __future__ import annotations

from fastapi.security import SecurityScopes

from auth.principal import CurrentPrincipal, Principal
from policies.errors import InsufficientScope


async def require_scopes(security_scopes: SecurityScopes, principal: CurrentPrincipal) -> Principal:
    """Every scope declared along the dependency chain must be in the token."""
    required = frozenset(security_scopes.scopes)
    if not required:
        # A Security(require_scopes) with no scopes would allow anything: refuse to serve it.
        raise InsufficientScope(frozenset({"<undeclared>"}))
    if not required <= principal.scopes:
        raise InsufficientScope(required)
    return principal
