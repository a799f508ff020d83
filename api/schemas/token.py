"""Token endpoint bodies (RFC 6749 section 5)."""

from pydantic import BaseModel


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - RFC 6749 token type
    expires_in: int
    scope: str
    refresh_token: str | None = None


class OAuthErrorOut(BaseModel):
    error: str
    error_description: str | None = None


class MeOut(BaseModel):
    subject: str
    kind: str
    tenant: str | None
    client_id: str
    scopes: list[str]
    expires_at: int
