"""Bodies of /introspect (RFC 7662) and the authorization server metadata (RFC 8414)."""

from __future__ import annotations

from pydantic import BaseModel


class IntrospectionOut(BaseModel):
    """Inactive tokens get exactly `{"active": false}`: the other fields are left out."""

    active: bool
    scope: str | None = None
    client_id: str | None = None
    sub: str | None = None
    tid: str | None = None
    exp: int | None = None
    iat: int | None = None
    iss: str | None = None
    aud: str | None = None
    jti: str | None = None
    token_type: str | None = None


class ServerMetadata(BaseModel):
    issuer: str
    token_endpoint: str
    jwks_uri: str
    revocation_endpoint: str
    introspection_endpoint: str
    grant_types_supported: list[str]
    token_endpoint_auth_methods_supported: list[str]
    revocation_endpoint_auth_methods_supported: list[str]
    introspection_endpoint_auth_methods_supported: list[str]
    scopes_supported: list[str]
    service_documentation: str
