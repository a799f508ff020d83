"""GET /v1/me: who the token says the caller is."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from api.responses import GUARDED_RESPONSES
from api.schemas.token import MeOut
from auth.principal import authenticated
from policies.guard import principal_guard

router = APIRouter(
    prefix="/v1",
    tags=["identity"],
    dependencies=[Depends(principal_guard)],
    responses=GUARDED_RESPONSES,
)


@router.get("/me", summary="The caller's subject, tenant, scopes and token expiry")
async def me(request: Request) -> MeOut:
    principal = authenticated(request)  # what the guard verified: no dependency node of its own
    claims = principal.claims
    return MeOut(
        subject=claims.subject,
        kind=principal.kind,
        tenant=claims.tenant,
        client_id=claims.client_id,
        scopes=sorted(claims.scopes),
        expires_at=claims.expires_at,
    )
