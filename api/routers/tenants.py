"""The tenant router: every route under /v1/tenants/{tenant} passes identity, tenant and admission.

Resource routers are included here, never on the app directly, so none can forget a guard:
identity (token) -> tenant (path == token tid) -> admission (revocation, tenant status, rate
limit: one trip to the guard store) -> the scopes each resource router declares.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from api.responses import GUARDED_RESPONSES
from api.routers import access, audit, clients, items, members, reports
from policies.admission import admit_tenant_request

tenant_router = APIRouter(
    prefix="/v1/tenants/{tenant}",
    dependencies=[Depends(admit_tenant_request)],
    responses=GUARDED_RESPONSES,
)
tenant_router.include_router(items.router)
tenant_router.include_router(reports.router)
tenant_router.include_router(members.router)
tenant_router.include_router(clients.router)
tenant_router.include_router(audit.router)
tenant_router.include_router(access.router)
