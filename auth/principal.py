"""Stage 1, identity: who is calling. The bearer token is decoded once per request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, cast

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from auth.errors import InvalidToken, MissingToken
from auth.tokens import AccessClaims, TokenVerifier

PrincipalKind = Literal["user", "client"]
CLIENT_SUBJECT_PREFIX = "client:"
PRINCIPAL_SCOPE_KEY = "tenantgate.principal"

# Scope descriptions are added to the OpenAPI document by the api layer, which owns the catalogue.
bearer_scheme = OAuth2PasswordBearer(tokenUrl="/token", auto_error=False)


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


def token_verifier(request: Request) -> TokenVerifier:
    return cast(TokenVerifier, request.app.state.verifier)


async def get_principal(
    request: Request, token: Annotated[str | None, Depends(bearer_scheme)]
) -> Principal:
    # FastAPI caches a dependency per set of security scopes, so with a router-level and a
    # route-level scope check this runs more than once per request: decode only the first time.
    # Kept in the ASGI scope, which is this request's own: request.state can be one dict shared
    # by every request (asgi-lifespan does that), and would hand one caller's principal to another.
    known = request.scope.get(PRINCIPAL_SCOPE_KEY)
    if isinstance(known, Principal):
        return known
    if not token:
        raise MissingToken()
    if len(token) > 8192:
        raise InvalidToken("malformed")
    principal = Principal(await token_verifier(request).verify(token))
    request.scope[PRINCIPAL_SCOPE_KEY] = principal
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
