"""POST /revoke (RFC 7009), POST /introspect (RFC 7662), the RFC 8414 metadata document.

Who may revoke what: a confidential client revokes the tokens it obtained (client
authentication by Basic or form); a user revokes their own tokens through the first-party
public client `tenantgate` (no secret; presenting the token is the proof, as RFC 7009 allows
for public clients). Introspection is for confidential clients only, about their own tenant.
"""

from __future__ import annotations

import time
from typing import Annotated, cast

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncConnection

from api.deps import DatabaseDep, GuardDep, SettingsDep
from api.errors import NO_STORE
from api.schemas.oauth import IntrospectionOut, ServerMetadata
from api.schemas.token import OAuthErrorOut
from auth.clients import AuthenticatedClient, authenticate, parse_credentials
from auth.errors import OAuthError
from auth.grants import revoke_family
from auth.revocation import access_claims, access_token_revoked, live_refresh_token
from auth.tokens import AccessClaims, TokenVerifier
from policies.attempt_limits import limit_client_attempt
from policies.audit import record_token_revoked
from policies.errors import GuardStateUnavailable
from policies.guard_sync import revoke_token
from policies.scopes import SCOPES
from storage.guard_state import PLATFORM_TAG

router = APIRouter(tags=["oauth2"])

OptionalField = Annotated[str | None, Form()]
INACTIVE = IntrospectionOut(active=False)
CLIENT_ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": OAuthErrorOut, "description": "RFC 6749 5.2 error"},
    401: {"model": OAuthErrorOut, "description": "invalid_client"},
}


def _verifier(request: Request) -> TokenVerifier:
    return cast(TokenVerifier, request.app.state.verifier)


async def _caller_and_token(
    request: Request,
    connection: AsyncConnection,
    token: str | None,
    client_id: str | None,
    client_secret: str | None,
    *,
    allow_public: bool,
) -> tuple[AuthenticatedClient, str, AccessClaims | None]:
    """Authenticate the caller, require `token`, and read it if it is a valid access token."""
    credentials = parse_credentials(request.headers.get("authorization"), client_id, client_secret)
    if credentials is not None and credentials.secret is not None:
        await limit_client_attempt(request, credentials.client_id)
    caller = await authenticate(connection, credentials, allow_public=allow_public)
    if not token:
        raise OAuthError("invalid_request", "the `token` parameter is required")
    return caller, token, await access_claims(_verifier(request), token)


def _not_yours() -> OAuthError:
    return OAuthError("invalid_grant", "the token was not issued to this client")


def _state_store_down() -> OAuthError:
    # RFC 7009 section 2.2.1: on 503 the client must assume the token still exists, and retry.
    return OAuthError(
        "temporarily_unavailable",
        "the shared state store is unreachable, nothing was revoked; retry shortly",
        retry_after=5,
        status=503,
    )


@router.post(
    "/revoke",
    summary="Revoke an access or refresh token (RFC 7009); 200 also for unknown tokens",
    responses={
        **CLIENT_ERRORS,
        503: {"model": OAuthErrorOut, "description": "temporarily_unavailable; see Retry-After"},
    },
)
async def revoke(
    request: Request,
    database: DatabaseDep,
    guard: GuardDep,
    token: OptionalField = None,
    token_type_hint: OptionalField = None,
    client_id: OptionalField = None,
    client_secret: OptionalField = None,
) -> Response:
    # token_type_hint is only a hint (RFC 7009 2.1): the token's shape says what it is.
    del token_type_hint
    async with database.read() as connection:
        caller, token, claims = await _caller_and_token(
            request, connection, token, client_id, client_secret, allow_public=True
        )
        refresh = None if claims else await live_refresh_token(connection, token)
    if claims is not None:
        if claims.client_id != caller.client_id:
            raise _not_yours()
        ttl = max(claims.expires_at - int(time.time()), 0) + 1
        try:
            async with database.write() as connection:
                tag = claims.tenant or PLATFORM_TAG
                await revoke_token(connection, guard, tag, claims.jti, ttl)
                await record_token_revoked(connection, request, caller.client_id, access=claims)
        except GuardStateUnavailable:
            raise _state_store_down() from None
    elif refresh is not None:
        if refresh.client_id != caller.client_id:
            raise _not_yours()
        async with database.write() as connection:
            await revoke_family(connection, refresh.family_id)
            await record_token_revoked(
                connection, request, caller.client_id, family=refresh.family_id
            )
    return Response(status_code=200, headers=NO_STORE)


@router.post(
    "/introspect",
    summary="Is this token active, and its claims (RFC 7662); client authentication required",
    response_model=IntrospectionOut,
    response_model_exclude_none=True,
    responses=CLIENT_ERRORS,
)
async def introspect(
    request: Request,
    database: DatabaseDep,
    token: OptionalField = None,
    token_type_hint: OptionalField = None,
    client_id: OptionalField = None,
    client_secret: OptionalField = None,
) -> JSONResponse:
    del token_type_hint
    async with database.read() as connection:
        caller, token, claims = await _caller_and_token(
            request, connection, token, client_id, client_secret, allow_public=False
        )
        # Refresh tokens are first-party credentials: to a client they are never "active".
        active = (
            claims is not None
            and caller.tenant_active
            and claims.tenant is not None
            and claims.tenant == caller.tenant
            and not await access_token_revoked(connection, claims)
        )
    body = _active(claims) if active and claims else INACTIVE
    return JSONResponse(body.model_dump(exclude_none=True), headers=NO_STORE)


def _active(claims: AccessClaims) -> IntrospectionOut:
    return IntrospectionOut(
        active=True,
        scope=claims.scope,
        client_id=claims.client_id,
        sub=claims.subject,
        tid=claims.tenant,
        exp=claims.expires_at,
        iat=claims.issued_at,
        iss=claims.issuer,
        aud=claims.audience,
        jti=claims.jti,
        token_type="Bearer",  # noqa: S106 - RFC 7662 token_type, as in the token response
    )


@router.get(
    "/.well-known/oauth-authorization-server",
    summary="Authorization server metadata (RFC 8414)",
    response_model=ServerMetadata,
)
async def metadata(settings: SettingsDep) -> JSONResponse:
    base = settings.issuer.rstrip("/")
    confidential = ["client_secret_basic", "client_secret_post"]
    document = ServerMetadata(
        issuer=settings.issuer,
        token_endpoint=f"{base}/token",
        jwks_uri=f"{base}/.well-known/jwks.json",
        revocation_endpoint=f"{base}/revoke",
        introspection_endpoint=f"{base}/introspect",
        grant_types_supported=["password", "refresh_token", "client_credentials"],
        # "none": the first-party public client (password and refresh grants, revocation).
        token_endpoint_auth_methods_supported=[*confidential, "none"],
        revocation_endpoint_auth_methods_supported=[*confidential, "none"],
        introspection_endpoint_auth_methods_supported=confidential,
        scopes_supported=list(SCOPES),
        service_documentation=f"{base}/docs",
    )
    # No authorization endpoint, so no response_types_supported: RFC 8414 section 3.2 says
    # empty claims are omitted (see also RFC 8414 erratum 7793).
    return JSONResponse(document.model_dump(), headers={"Cache-Control": "public, max-age=300"})
