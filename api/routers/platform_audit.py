"""The platform's own audit trail (`_platform`: events bound to no tenant), for platform admins.

Same filters, cursor pages and NDJSON/CSV exports as a tenant's `/audit/events`.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Security
from fastapi.responses import StreamingResponse

from api.deps import DatabaseDep
from api.responses import GUARDED_RESPONSES
from api.routers.audit import (
    EXPORT_RESPONSES,
    ActionQuery,
    ActorQuery,
    OutcomeQuery,
    PageLimit,
    SeqCursor,
    SinceQuery,
    UntilQuery,
    events_answer,
)
from api.schemas.audit import AuditEventPage
from api.schemas.common import Problem
from policies.authorize import require_scopes
from policies.guard import principal_guard
from policies.scopes import PLATFORM_ADMIN
from storage.audit_queries import EventFilter

router = APIRouter(
    prefix="/v1/platform/audit",
    tags=["platform"],
    dependencies=[Depends(principal_guard), Security(require_scopes, scopes=[PLATFORM_ADMIN])],
    responses={
        **GUARDED_RESPONSES,
        403: {"model": Problem, "description": "The token lacks platform:admin"},
    },
)


@router.get(
    "/events",
    response_model=AuditEventPage,
    summary="The platform's audit events (no tenant), oldest first; cursor pages or an export",
    responses=EXPORT_RESPONSES,  # type: ignore[arg-type]
)
async def list_platform_events(
    request: Request,
    database: DatabaseDep,
    action: ActionQuery = None,
    actor: ActorQuery = None,
    outcome: OutcomeQuery = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
    cursor: SeqCursor = None,
    limit: PageLimit = 50,
) -> AuditEventPage | StreamingResponse:
    filters = EventFilter(action=action, actor=actor, outcome=outcome, since=since, until=until)
    return await events_answer(request, database, None, filters, cursor, limit)
