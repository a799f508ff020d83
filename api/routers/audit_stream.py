"""`WS /v1/tenants/{tenant}/audit/stream` (`audit:read`): the tenant's audit events, live.

Behind the same identity, tenant, admission and scope stages as every tenant route (a refused
handshake is an HTTP 401/403/404/429 problem). The token comes in `Sec-WebSocket-Protocol:
bearer, <token>`, an Authorization header, or the first message (api/middleware/websocket_auth.py),
never the query string. See api/audit_stream.py for what the stream sends and when it closes.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, WebSocket

from api.audit_stream import serve
from api.routers.tenants import tenant_router
from auth.principal import authenticated
from policies.tenancy import CurrentTenant

router = tenant_router("/audit", tags=["audit"], read_scopes=["audit:read"])

FromSeq = Annotated[
    int | None,
    Query(
        ge=1,
        le=2**62,
        description="Replay from this event of the chain (your last seq + 1), then go live; "
        "default: only events from now on",
    ),
]


@router.websocket("/stream", name="audit:stream")
async def audit_stream(
    websocket: WebSocket, tenant: CurrentTenant, from_seq: FromSeq = None
) -> None:
    """Audit events as they commit, over a WebSocket (resumable with from_seq)."""
    await serve(websocket, authenticated(websocket), tenant.slug, from_seq)
