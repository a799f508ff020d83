"""Stage 1, identity: who is calling. The bearer token is decoded once per request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, cast

from fastapi import Depends
from fastapi.security import OAuth2PasswordBearer
from starlette.requests import HTTPConnection

from auth.errors import InvalidToken, MissingToken
from auth.tokens import AccessClaims, TokenVerifier

PrincipalKind = Literal["user", "client"]
CLIENT_SUBJECT_PREFIX = "client:"
PRINCIPAL_SCOPE_KEY = "tenantgate.principal"
MAX_TOKEN_LENGTH = 8192


@dataclass(frozen=True, slots=True)
class Principal:
    claims: AccessClaims

    @property
    def subject(self) -> str:
        return self.claims.subject

    @property
    def kind(self) -> PrincipalKind:
        return "client" if self.claims.subject.startswith(CLIENT_SUBJECT_PREFIX) else "user"

    @property
    def tenant(self) -> str | None:
        return self.claims.tenant

    @property
    def scopes(self) -> frozenset[str]:
        return self.claims.scopes


def token_verifier(connection: HTTPConnection) -> TokenVerifier:
    return cast(TokenVerifier, connection.app.state.verifier)


def bearer_token(connection: HTTPConnection) -> str | None:
    """The token of `Authorization: Bearer <token>` (scheme case-insensitive), or None."""
    header = connection.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token or None


def websocket_protocol_token(connection: HTTPConnection) -> str | None:
    """A WebSocket's token offered as `Sec-WebSocket-Protocol: bearer, <token>`: browsers can set
    no Authorization header on a WebSocket, and a token in the query string lands in logs."""
    if connection.scope["type"] != "websocket":
        return None
    offered = list(connection.scope.get("subprotocols") or ())
    if len(offered) == 2 and offered[0].lower() == "bearer":
        return str(offered[1]) or None
    return None


class BearerIdentity(OAuth2PasswordBearer):
    """The identity stage as the OAuth2 security scheme itself.

    Being the scheme (rather than a dependency on one) makes identity a single node in FastAPI's
    dependency tree, and OpenAPI still documents the password flow with each route's scopes.
    FastAPI calls it once per set of security scopes along a route; the token is verified the
    first time and the principal kept in the ASGI scope, which is this request's own
    (request.state can be one dict shared by every request: asgi-lifespan does that).
    """

    async def __call__(self, request: HTTPConnection) -> Principal:  # type: ignore[override]
        known = request.scope.get(PRINCIPAL_SCOPE_KEY)
        if known is not None:
            return cast(Principal, known)
        token = bearer_token(request) or websocket_protocol_token(request)
        if not token:
            raise MissingToken()
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("malformed")
        principal = Principal(await token_verifier(request).verify(token))
        request.scope[PRINCIPAL_SCOPE_KEY] = principal
        request.state.principal = principal
        return principal


# The name OpenAPI knows the scheme by; scope descriptions are added by the api layer.
get_principal = BearerIdentity(
    tokenUrl="/token", scheme_name="OAuth2PasswordBearer", auto_error=False
)


def authenticated(connection: HTTPConnection) -> Principal:
    """The principal the identity stage verified for this request (later stages use it)."""
    known = connection.scope.get(PRINCIPAL_SCOPE_KEY)
    if known is None:
        # A stage ran without identity before it: refuse rather than guess.
        raise MissingToken()
    return cast(Principal, known)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
