"""POST /token (RFC 6749) and the public key set (RFC 7517)."""

from __future__ import annotations

from typing import Annotated, Any, cast

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse

from api.errors import NO_STORE
from api.schemas.common import contains_nul
from api.schemas.token import OAuthErrorOut, TokenOut
from auth.client_grant import ClientCredentialsGrant
from auth.clients import parse_credentials
from auth.errors import OAuthError
from auth.grants import FIRST_PARTY_CLIENT_ID, Grants, TokenResponse
from auth.keys import KeyRing
from policies.attempt_limits import limit_client_attempt
from policies.audit import request_context
from policies.rate_limit import limit_login

router = APIRouter(tags=["oauth2"])

OptionalField = Annotated[str | None, Form()]
SUPPORTED_GRANTS = frozenset({"password", "refresh_token", "client_credentials"})


def _required(name: str, value: str | None) -> str:
    if not value:
        raise OAuthError("invalid_request", f"the `{name}` parameter is required")
    return value


@router.post(
    "/token",
    response_model=TokenOut,
    summary="Issue an access token (password, refresh_token or client_credentials grant)",
    responses={
        400: {"model": OAuthErrorOut, "description": "RFC 6749 5.2 error"},
        401: {"model": OAuthErrorOut, "description": "invalid_client"},
        429: {"model": OAuthErrorOut, "description": "Too many attempts; see Retry-After"},
    },
)
async def token(
    request: Request,
    grant_type: OptionalField = None,
    username: OptionalField = None,
    password: OptionalField = None,
    scope: OptionalField = None,
    tenant: OptionalField = None,
    refresh_token: OptionalField = None,
    client_id: OptionalField = None,
    client_secret: OptionalField = None,
) -> JSONResponse:
    request.state.grant_type = grant_type  # counted by grant type once a token is issued
    grants = cast(Grants, request.app.state.grants)
    credentials = parse_credentials(request.headers.get("authorization"), client_id, client_secret)
    presented = (grant_type, username, password, scope, tenant, refresh_token)
    if contains_nul(presented) or (
        credentials is not None and contains_nul((credentials.client_id, credentials.secret))
    ):
        raise OAuthError("invalid_request", "parameters must not contain NUL characters")
    client_grant = ClientCredentialsGrant(
        request.app.state.settings, request.app.state.database, request.app.state.keyring
    )
    if grant_type == "client_credentials":
        if credentials is not None:
            await limit_client_attempt(request, credentials.client_id)
        return _token_response(
            await client_grant.issue(credentials, scope, request_context(request))
        )
    if credentials is not None and credentials.client_id != FIRST_PARTY_CLIENT_ID:
        # RFC 6749 section 5.2: a client that authenticates is authenticated first; only then
        # is it told what is wrong with its request. Each attempt counts like a sign-in.
        await limit_client_attempt(request, credentials.client_id)
        await client_grant.authenticate(credentials, grant_type or "", request_context(request))
        _supported(grant_type)
        # Third-party clients never see a password (RFC 9700 2.4): they use client_credentials.
        raise OAuthError("unauthorized_client", "this client may only use client_credentials")
    _supported(grant_type)
    if grant_type == "password":
        await limit_login(request, _required("username", username))
        response = await grants.password(
            _required("username", username),
            _required("password", password),
            scope,
            tenant or None,
            request_context(request),
        )
    else:  # refresh_token
        response = await grants.refresh(
            _required("refresh_token", refresh_token), scope, request_context(request)
        )
    return _token_response(response)


def _supported(grant_type: str | None) -> None:
    """invalid_request without a grant_type, unsupported_grant_type for an unknown one."""
    if not grant_type:
        raise OAuthError("invalid_request", "the `grant_type` parameter is required")
    if grant_type not in SUPPORTED_GRANTS:
        raise OAuthError(
            "unsupported_grant_type", "supported: password, refresh_token, client_credentials"
        )


def _token_response(response: TokenResponse) -> JSONResponse:
    body: dict[str, Any] = {
        "access_token": response.access_token,
        "token_type": "Bearer",
        "expires_in": response.expires_in,
        "scope": response.scope,
    }
    if response.refresh_token is not None:
        body["refresh_token"] = response.refresh_token
    return JSONResponse(body, headers=NO_STORE)


@router.get("/.well-known/jwks.json", summary="Public keys that verify access tokens")
async def jwks(request: Request) -> JSONResponse:
    keyring = cast(KeyRing, request.app.state.keyring)
    return JSONResponse(keyring.jwks, headers={"Cache-Control": "public, max-age=60"})
