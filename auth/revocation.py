"""What a token presented to /revoke or /introspect is, and whether it was revoked.

Access tokens are recognised by verifying them (a JWT has dots, a refresh token never does);
refresh tokens by their hash. Revocations are read from the durable copy of the guard state
(the `revocations` table written by policies/guard_sync.py), so these answers agree with the
guard path without asking Redis.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from auth.errors import InvalidToken
from auth.grants import hash_refresh_token
from auth.tokens import AccessClaims, TokenVerifier
from storage.guard_state import PLATFORM_TAG
from storage.tables import refresh_tokens, revocations, utcnow

MAX_TOKEN_LENGTH = 8192


@dataclass(frozen=True, slots=True)
class RefreshTokenRecord:
    family_id: str
    client_id: str


async def access_claims(verifier: TokenVerifier, token: str) -> AccessClaims | None:
    """The claims of a valid, unexpired access token signed by a current key; else None."""
    if "." not in token or len(token) > MAX_TOKEN_LENGTH:
        return None
    try:
        return await verifier.verify(token)
    except InvalidToken:
        return None


async def live_refresh_token(connection: AsyncConnection, token: str) -> RefreshTokenRecord | None:
    """The refresh token's family, unless it is unknown, expired or already revoked."""
    if not token or "." in token or len(token) > MAX_TOKEN_LENGTH:
        return None
    query = sa.select(
        refresh_tokens.c.family_id,
        refresh_tokens.c.client_id,
        refresh_tokens.c.expires_at,
        refresh_tokens.c.revoked_at,
    ).where(refresh_tokens.c.token_hash == hash_refresh_token(token))
    row = (await connection.execute(query)).first()
    if row is None or row.revoked_at is not None or row.expires_at <= utcnow():
        return None
    return RefreshTokenRecord(row.family_id, row.client_id)


async def access_token_revoked(connection: AsyncConnection, claims: AccessClaims) -> bool:
    """Revoked by jti, or its subject cut off at a revision newer than the token's."""
    by_jti = (revocations.c.kind == "jti") & (revocations.c.key == claims.jti)
    by_subject = (
        (revocations.c.kind == "subject")
        & (revocations.c.key == claims.subject)
        & (revocations.c.value > claims.revision)
    )
    query = (
        sa.select(sa.func.count())
        .select_from(revocations)
        .where(
            revocations.c.tag == (claims.tenant or PLATFORM_TAG),
            revocations.c.expires_at > utcnow(),
            by_jti | by_subject,
        )
    )
    return bool((await connection.execute(query)).scalar_one())
