"""Access evaluation (`audit:read`): why may, or may not, this principal call this route."""

from __future__ import annotations

from fastapi import Request

from api.deps import DatabaseDep
from api.routers.tenants import tenant_router
from api.schemas.access import AccessEvaluationOut, AccessQuery
from api.schemas.common import Problem
from policies.evaluation import evaluate
from policies.tenancy import CurrentTenant

router = tenant_router("/access", tags=["audit"], read_scopes=["audit:read"])


@router.post(
    "/evaluate",
    summary="Evaluate a principal against a route: allowed or not, and why (reads only)",
    responses={
        404: {"model": Problem, "description": "Unknown tenant, or a principal unknown to it"}
    },
)
async def evaluate_access(
    body: AccessQuery, request: Request, tenant: CurrentTenant, database: DatabaseDep
) -> AccessEvaluationOut:
    async with database.snapshot() as connection:
        evaluation = await evaluate(
            connection, request.app.routes, tenant.slug, body.principal, body.method, body.path
        )
    return AccessEvaluationOut.of(evaluation)
