"""Reports: aggregates the database computes over a tenant's data."""

from __future__ import annotations

from fastapi import APIRouter, Security

from api.deps import DatabaseDep
from api.schemas.common import Problem
from api.schemas.reports import InventoryReport
from policies.authorize import require_scopes
from policies.tenancy import CurrentTenant
from storage import items
from storage.tables import utcnow

router = APIRouter(
    prefix="/reports",
    tags=["reports"],
    dependencies=[Security(require_scopes, scopes=["reports:read"])],
)


@router.get(
    "/inventory",
    name="reports:inventory",
    summary="Per category: item count, total quantity and exact stock value; plus totals",
    responses={409: {"model": Problem, "description": "The stock value is too large to sum"}},
)
async def inventory(tenant: CurrentTenant, database: DatabaseDep) -> InventoryReport:
    stocks = await items.inventory(database.driver, tenant.slug)
    return InventoryReport.of(utcnow(), stocks)
