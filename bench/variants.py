"""The real app with the limiter taken out, for the with/without comparison of `make bench`.

Admission (revocation, tenant status and both counters: one guard-store call) is replaced by
a dependency that keeps identity and tenant; everything else is the app as served.
`uvicorn bench.variants:without_limiter --factory`.
"""

from __future__ import annotations

from fastapi import FastAPI

from api.app import create_app
from auth.principal import CurrentPrincipal
from policies.admission import admit_tenant_request
from policies.tenancy import CurrentTenant


async def identity_and_tenant_only(principal: CurrentPrincipal, tenant: CurrentTenant) -> None:
    return None


def without_limiter() -> FastAPI:
    app = create_app()
    app.dependency_overrides[admit_tenant_request] = identity_and_tenant_only
    return app
