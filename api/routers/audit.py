"""The tenant's audit trail and access matrix, for security teams (`audit:read`)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime

from api.deps import DatabaseDep
from api.routers.tenants import tenant_router
from api.schemas.audit import (
    CSV,
    NDJSON,
    AccessMatrixOut,
    AuditEventOut,
    AuditEventPage,
    AuditVerificationOut,
    csv_lines,
    ndjson_line,
)
from api.schemas.pages import CURSOR_DESCRIPTION, encode_cursor, keyed_cursor
from policies.access_matrix import role_matrix, route_matrix, tenant_access
from policies.tenancy import CurrentTenant
from storage.audit import EventOutcome, chain_of
from storage.audit_queries import EventFilter, all_events, events, verify

# Continues after this sequence number of the tenant's chain.
SeqCursor = Annotated[
    str | None,
    Query(max_length=200, description=CURSOR_DESCRIPTION),
    keyed_cursor(re.compile(r"[0-9]{1,18}")),
]

router = tenant_router("/audit", tags=["audit"], read_scopes=["audit:read"])

EXPORT_RESPONSES = {
    200: {
        "description": "A page of events; with `Accept: application/x-ndjson` or `text/csv` "
        "the whole filtered range, streamed (one event per line / row, oldest first)",
        "content": {NDJSON: {"schema": {"type": "string"}}, CSV: {"schema": {"type": "string"}}},
    }
}


def _export_type(request: Request) -> str | None:
    """The first export media type the client accepts, in its order (q-values: 0 = refused)."""
    for part in request.headers.get("accept", "").split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        if "q=0" in params or "q=0.0" in params:
            continue
        if media.lower() in (NDJSON, CSV):
            return media.lower()
    return None


ActionQuery = Annotated[str | None, Query(max_length=60, description="e.g. token.refused")]
ActorQuery = Annotated[str | None, Query(max_length=80, description="Actor subject")]
OutcomeQuery = Annotated[EventOutcome | None, Query()]
SinceQuery = Annotated[AwareDatetime | None, Query(description="Inclusive")]
UntilQuery = Annotated[AwareDatetime | None, Query(description="Exclusive")]
PageLimit = Annotated[int, Query(ge=1, le=100)]


@router.get(
    "/events",
    response_model=AuditEventPage,
    summary="Audit events, oldest first; filters; cursor pages or a streamed NDJSON/CSV export",
    responses=EXPORT_RESPONSES,  # type: ignore[arg-type]
)
async def list_events(
    request: Request,
    tenant: CurrentTenant,
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
    return await events_answer(request, database, tenant.slug, filters, cursor, limit)


async def events_answer(
    request: Request,
    database: DatabaseDep,
    tenant: str | None,
    filters: EventFilter,
    cursor: str | None,
    limit: int,
) -> AuditEventPage | StreamingResponse:
    """A page of the chain of `tenant` (None: the platform's), or its export when asked for."""
    export = _export_type(request)
    if export is not None:
        return _stream(export, database, tenant, filters)
    async with database.read() as connection:
        page = await events(
            connection, tenant, filters, after_seq=int(cursor or 0), limit=limit + 1
        )
    more = len(page) > limit
    page = page[:limit]
    return AuditEventPage(
        events=[AuditEventOut.of(event) for event in page],
        next_cursor=encode_cursor(str(page[-1].seq)) if more else None,
    )


def _stream(
    media: str, database: DatabaseDep, tenant: str | None, filters: EventFilter
) -> StreamingResponse:
    async def ndjson() -> AsyncIterator[str]:
        async for event in all_events(database, tenant, filters):
            yield ndjson_line(event)

    async def csv() -> AsyncIterator[str]:
        header = True
        async for event in all_events(database, tenant, filters):
            for chunk in csv_lines([event], header=header):
                yield chunk
            header = False
        if header:  # no events: still a valid CSV document with its header
            for chunk in csv_lines([]):
                yield chunk

    extension = "ndjson" if media == NDJSON else "csv"
    return StreamingResponse(
        ndjson() if media == NDJSON else csv(),
        media_type=media + ("; charset=utf-8" if media == CSV else ""),
        headers={
            "Content-Disposition": f'attachment; filename="audit-{chain_of(tenant)}.{extension}"',
            "Cache-Control": "no-store",
        },
    )


@router.get(
    "/access",
    response_model=AccessMatrixOut,
    summary="Who can do what: routes x scopes, roles, members, clients, open sessions",
)
async def access_matrix(
    request: Request, tenant: CurrentTenant, database: DatabaseDep
) -> AccessMatrixOut:
    async with database.read() as connection:
        holders = await tenant_access(connection, tenant.slug)
    return AccessMatrixOut.of(tenant.slug, route_matrix(request.app.routes), role_matrix(), holders)


@router.get(
    "/verify",
    response_model=AuditVerificationOut,
    summary="Check the tenant's hash chain, as `tenantgate audit verify` does",
    description="Walks the whole chain in seq order, in batches (bounded memory), in one "
    "snapshot, and compares its end with the chain head. A broken chain is a 200 with "
    "`ok: false`, the first broken seq and the reason.",
)
async def verify_chain(
    response: Response, tenant: CurrentTenant, database: DatabaseDep
) -> AuditVerificationOut:
    response.headers["Cache-Control"] = "no-store"
    return AuditVerificationOut.of(tenant.slug, await verify(database, tenant.slug))
