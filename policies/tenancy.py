"""Stage 2, tenant: the tenant in the path must be the token's (status is checked on admission)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path

from auth.principal import CurrentPrincipal
from policies.decisions import in_tenant
from policies.errors import TenantNotFound

SLUG_PATTERN = r"^[a-z0-9-]{3,40}$"


@dataclass(frozen=True, slots=True)
class Tenant:
    slug: str


async def get_tenant(
    principal: CurrentPrincipal,
    tenant: Annotated[str, Path(description="Tenant slug", max_length=40)],
) -> Tenant:
    # Decided from the token alone, before any I/O: a foreign tenant and an unknown one cost and
    # read the same.
    if not in_tenant(principal.tenant, tenant):
        raise TenantNotFound()
    return Tenant(tenant)


CurrentTenant = Annotated[Tenant, Depends(get_tenant)]
