"""GET /v1/me: who the token says the caller is."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from api.responses import GUARDED_RESPONSES
from api.schemas.token import MeOut
from auth.principal import CurrentPrincipal
from policies.admission import admit_principal

router = APIRouter(
    prefix="/v1",
    tags=["identity"],
    dependencies=[Depends(admit_principal)],
    responses=GUARDED_RESPONSES,
)


@router.get("/me", summary="The caller's subject, tenant, scopes and token expiry")
async def me(principal: CurrentPrincipal) -> MeOut:
    claims = principal.claims
    return MeOut(
        subject=claims.subject,
        kind=principal.kind,
        tenant=claims.tenant,
        client_id=claims.client_id,
        scopes=sorted(claims.scopes),
        expires_at=claims.expires_at,
    )
