"""OAuth2 grants (RFC 6749): password and refresh_token, returning a TokenResponse or raising."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from auth.errors import OAuthError
from auth.keys import KeyRing
from auth.passwords import Passwords, PasswordTooLong
from auth.tokens import issue
from config.settings import Settings
from storage.database import Database
from storage.ids import new_id
from storage.tables import memberships, refresh_tokens, tenants, users, utcnow

FIRST_PARTY_CLIENT_ID = "tenantgate"
INVALID_CREDENTIALS = "invalid username or password"
PLATFORM_ADMIN_SCOPE = "platform:admin"


@dataclass(frozen=True, slots=True)
class TokenResponse:
    access_token: str
    expires_in: int
    scope: str
    refresh_token: str | None


@dataclass(frozen=True, slots=True)
class _Grant:
    user_id: str
    tenant: str | None
    allowed: frozenset[str]
    revision: int


def parse_scope(scope: str | None) -> frozenset[str]:
    return frozenset((scope or "").split())


def hash_refresh_token(token: str) -> str:
    # Refresh tokens are 256-bit random values: a fast hash is enough and keeps lookups indexable.
    return hashlib.sha256(token.encode()).hexdigest()


def narrow(requested: frozenset[str], allowed: frozenset[str]) -> frozenset[str]:
    """Empty request = everything allowed; asking for more than allowed is invalid_scope."""
    if not requested:
        return allowed
    if not requested <= allowed:
        raise OAuthError("invalid_scope", "the requested scope exceeds what this grant allows")
    return requested


class Grants:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        keyring: KeyRing,
        passwords: Passwords,
        role_scopes: Callable[[str], frozenset[str]],
    ) -> None:
        self._settings = settings
        self._database = database
        self._keyring = keyring
        self._passwords = passwords
        self._role_scopes = role_scopes

    async def password(
        self, username: str, password: str, scope: str | None, tenant: str | None
    ) -> TokenResponse:
        try:
            self._passwords.check_length(password)
        except PasswordTooLong as error:
            raise OAuthError("invalid_request", str(error)) from None
        async with self._database.read() as connection:
            user = (
                await connection.execute(
                    sa.select(users).where(users.c.email == username.strip().lower())
                )
            ).first()
        valid, upgraded = await self._passwords.verify(
            password, user.password_hash if user else None
        )
        if user is None or not valid or not user.is_active:
            raise OAuthError("invalid_grant", INVALID_CREDENTIALS)
        async with self._database.write() as connection:
            if upgraded is not None:
                await connection.execute(
                    users.update().where(users.c.id == user.id).values(password_hash=upgraded)
                )
            grant = await self._user_grant(connection, user.id, user.is_platform_admin, tenant)
            scopes = narrow(parse_scope(scope), grant.allowed)
            return await self._respond(connection, grant, scopes, family=new_id("fam"))

    async def _user_grant(
        self, connection: AsyncConnection, user_id: str, platform_admin: bool, tenant: str | None
    ) -> _Grant:
        if tenant is None and platform_admin:
            return _Grant(user_id, None, frozenset({PLATFORM_ADMIN_SCOPE}), 0)
        query = (
            sa.select(memberships.c.tenant, memberships.c.role, memberships.c.revision)
            .where(memberships.c.user_id == user_id)
            .order_by(memberships.c.tenant)
        )
        if tenant is not None:
            query = query.where(memberships.c.tenant == tenant)
        rows = (await connection.execute(query.limit(2))).all()
        if not rows:
            raise OAuthError("invalid_grant", INVALID_CREDENTIALS)
        if len(rows) > 1:
            raise OAuthError(
                "invalid_request", "the user belongs to several tenants: send `tenant`"
            )
        membership = rows[0]
        await self._require_active(connection, membership.tenant)
        allowed = self._role_scopes(membership.role)
        return _Grant(user_id, membership.tenant, allowed, membership.revision)

    @staticmethod
    async def _require_active(connection: AsyncConnection, tenant: str) -> None:
        status = (
            await connection.execute(sa.select(tenants.c.status).where(tenants.c.slug == tenant))
        ).scalar_one_or_none()
        if status != "active":
            raise OAuthError("invalid_grant", "the tenant is suspended")

    async def refresh(self, refresh_token: str, scope: str | None) -> TokenResponse:
        token_hash = hash_refresh_token(refresh_token)
        async with self._database.write() as connection:
            row = (
                await connection.execute(
                    sa.select(refresh_tokens).where(refresh_tokens.c.token_hash == token_hash)
                )
            ).first()
            now = utcnow()
            if row is None or row.revoked_at is not None or row.expires_at <= now:
                raise OAuthError("invalid_grant", "the refresh token is invalid or expired")
            claimed = await connection.execute(
                refresh_tokens.update()
                .where(refresh_tokens.c.id == row.id, refresh_tokens.c.used_at.is_(None))
                .values(used_at=now)
            )
            if claimed.rowcount == 1:
                grant = await self._refresh_grant(connection, row.user_id, row.tenant)
                original = parse_scope(row.scope)
                scopes = narrow(parse_scope(scope), original & grant.allowed)
                return await self._respond(connection, grant, scopes, row.family_id, original)
            # Reuse of a spent token: someone else holds a copy. Revoke the whole family, and
            # commit that before answering.
            await revoke_family(connection, row.family_id)
        raise OAuthError("invalid_grant", "the refresh token is invalid or expired")

    async def _refresh_grant(
        self, connection: AsyncConnection, user_id: str, tenant: str | None
    ) -> _Grant:
        user = (await connection.execute(sa.select(users).where(users.c.id == user_id))).first()
        if user is None or not user.is_active:
            raise OAuthError("invalid_grant", "the refresh token is invalid or expired")
        if tenant is None:
            if not user.is_platform_admin:
                raise OAuthError("invalid_grant", "the refresh token is invalid or expired")
            return _Grant(user_id, None, frozenset({PLATFORM_ADMIN_SCOPE}), 0)
        return await self._user_grant(connection, user_id, False, tenant)

    async def _respond(
        self,
        connection: AsyncConnection,
        grant: _Grant,
        scopes: frozenset[str],
        family: str,
        refresh_scopes: frozenset[str] | None = None,
    ) -> TokenResponse:
        settings = self._settings
        access, claims = issue(
            self._keyring,
            issuer=settings.issuer,
            audience=settings.audience,
            ttl=settings.access_token_ttl,
            subject=grant.user_id,
            client_id=FIRST_PARTY_CLIENT_ID,
            scopes=scopes,
            tenant=grant.tenant,
            revision=grant.revision,
        )
        refresh = secrets.token_urlsafe(32)
        now = utcnow()
        await connection.execute(
            refresh_tokens.insert().values(
                id=new_id("rt"),
                token_hash=hash_refresh_token(refresh),
                family_id=family,
                user_id=grant.user_id,
                tenant=grant.tenant,
                client_id=FIRST_PARTY_CLIENT_ID,
                scope=" ".join(sorted(refresh_scopes or scopes)),
                created_at=now,
                expires_at=now + timedelta(seconds=settings.refresh_token_ttl),
            )
        )
        return TokenResponse(access, settings.access_token_ttl, claims.scope, refresh)


async def revoke_family(connection: AsyncConnection, family_id: str) -> None:
    await connection.execute(
        refresh_tokens.update()
        .where(refresh_tokens.c.family_id == family_id, refresh_tokens.c.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
