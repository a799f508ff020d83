"""Guards as one dependency node each: `tenant_guard` runs identity, tenant, admission and
scopes for a tenant route; `principal_guard` runs identity and admission for a route bound to no
tenant (/v1/me, the platform's).

Each stage stays in its own module (auth/principal.py, policies/tenancy.py,
policies/admission.py, policies/authorize.py) and runs in that order, as separate dependencies
would run them. One node, because FastAPI's work per dependency node (solving its sub-tree,
its cache key, four kinds of parameters) cost more than the stages themselves: an item read
solved seven nodes, and the guard's four took a quarter of its CPU (README, "FastAPI's own
per-request work").

The access matrix (policies/access_matrix.py) and the route walk of the tests see the stages
through `stages_of`, so a route guarded by `tenant_guard` reads as identity + tenant + admission +
the scopes it declares, exactly like one guarded by the four dependencies (and `principal_guard`
as identity + admission).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.security import SecurityScopes
from starlette.requests import HTTPConnection

from auth.principal import get_principal
from policies.admission import admit_principal, admit_tenant_request
from policies.authorize import require_scopes
from policies.tenancy import get_tenant


async def tenant_guard(connection: HTTPConnection, security_scopes: SecurityScopes) -> None:
    """`Security(tenant_guard, scopes=[...])`: the caller's token, the path tenant (the token's,
    else 404), one admission (revocation, tenant status, rate limits), then the scopes.

    The tenant comes from the matched path rather than a declared parameter (one cost about
    7 us per request): comparing it with the token's tenant is the only check it needs, and
    anything else, however long, is the 404 of an unknown tenant. api/openapi_contract.py
    documents it."""
    principal = await get_principal(connection)
    tenant: str = connection.path_params.get("tenant", "")
    checked = await get_tenant(connection, principal, tenant)
    await admit_tenant_request(connection, checked)
    await require_scopes(security_scopes, connection)


async def principal_guard(connection: HTTPConnection) -> None:
    """`Depends(principal_guard)` for routes bound to no tenant (/v1/me, the platform's): the
    caller's token and one admission (revocation). Scopes, where a route needs them, are its
    own `Security(require_scopes, ...)`: a scope check that declares none is never met."""
    await admit_principal(connection, await get_principal(connection))


# What a composite guard runs, in order, for whoever reads a route's dependency tree.
STAGES: dict[object, tuple[Callable[..., Any], ...]] = {
    tenant_guard: (get_principal, get_tenant, admit_tenant_request, require_scopes),
    principal_guard: (get_principal, admit_principal),
}


def stages_of(call: Callable[..., Any] | None) -> tuple[Callable[..., Any] | None, ...]:
    """What a dependency of a route's tree runs: itself, or a composite guard's stages."""
    return STAGES.get(call) or (call,)
