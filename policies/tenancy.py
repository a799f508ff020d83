"""Stage 2, tenant: the tenant in the path must be the token's (status is checked on admission)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, Path
from starlette.requests import HTTPConnection

from auth.principal import CurrentPrincipal
from policies.decisions import in_tenant
from policies.errors import TenantNotFound

SLUG_PATTERN = r"^[a-z0-9-]{3,40}$"
TENANT_SCOPE_KEY = "tenantgate.tenant"


@dataclass(frozen=True, slots=True)
class Tenant:
    slug: str


TenantInPath = Annotated[str, Path(description="Tenant slug", max_length=40)]


async def get_tenant(
    request: HTTPConnection, principal: CurrentPrincipal, tenant: TenantInPath
) -> Tenant:
    # Decided from the token alone, before any I/O: a foreign tenant and an unknown one cost and
    # read the same.
    if not in_tenant(principal.tenant, tenant):
        raise TenantNotFound()
    checked = Tenant(tenant)
    request.scope[TENANT_SCOPE_KEY] = checked
    return checked


def tenant_of(connection: HTTPConnection) -> Tenant:
    """The tenant the tenant stage checked for this request.

    Handlers read the stage's result instead of naming the stage again (FastAPI re-solves a
    dependency's whole sub-tree wherever it appears); the hottest ones call this directly,
    without a dependency node of their own.
    """
    checked = connection.scope.get(TENANT_SCOPE_KEY)
    if checked is None:
        # A handler outside the tenant router: refuse rather than serve unchecked.
        raise TenantNotFound()
    return cast(Tenant, checked)


async def checked_tenant(request: HTTPConnection) -> Tenant:
    """`tenant_of` as a dependency (CurrentTenant)."""
    return tenant_of(request)


TenantStage = Annotated[Tenant, Depends(get_tenant)]
CurrentTenant = Annotated[Tenant, Depends(checked_tenant)]
