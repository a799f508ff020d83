"""Reports: aggregates the database computes over a tenant's data."""

from __future__ import annotations

from fastapi import Request, Response

from api.cached_reports import inventory_report
from api.conditional import NOT_MODIFIED_RESPONSE, IfNoneMatch, unless_current
from api.routers.tenants import tenant_router
from api.schemas.common import Problem
from api.schemas.reports import InventoryReport
from policies.tenancy import CurrentTenant

router = tenant_router("/reports", tags=["reports"], read_scopes=["reports:read"])


@router.get(
    "/inventory",
    name="reports:inventory",
    summary="Per category: item count, total quantity and exact stock value; plus totals "
    "(cached until the tenant's next item write; ETag, If-None-Match)",
    response_model=InventoryReport,
    responses={
        **NOT_MODIFIED_RESPONSE,
        409: {"model": Problem, "description": "The stock value is too large to sum"},
    },
)
async def inventory(
    request: Request, tenant: CurrentTenant, if_none_match: IfNoneMatch = None
) -> Response:
    report = await inventory_report(request, tenant.slug)
    unless_current(if_none_match, report.etag)
    return Response(report.body, media_type="application/json", headers={"ETag": report.etag})
