"""OAuth2 grants (RFC 6749): password and refresh_token, returning a TokenResponse or raising."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from auth.errors import OAuthError
from auth.keys import KeyRing
from auth.passwords import Passwords, PasswordTooLong
from auth.tokens import issue
from config.settings import Settings
from storage.audit import ANONYMOUS, NO_CONTEXT, Action, Actor, Context, EventOutcome, NewEvent
from storage.audit import append as audit
from storage.database import Database
from storage.ids import new_id
from storage.tables import memberships, refresh_tokens, tenants, users, utcnow

FIRST_PARTY_CLIENT_ID = "tenantgate"
INVALID_CREDENTIALS = "invalid username or password"
ONE_TIME_PASSWORD = "a one-time password grants no scope: set your own at POST /v1/me/password"  # noqa: S105 - a message
PLATFORM_ADMIN_SCOPE = "platform:admin"
# Reason codes of refused grants in the audit trail (the response stays deliberately vague).
REFUSAL_REASONS = {
    INVALID_CREDENTIALS: "invalid_credentials",
    "the tenant is suspended": "tenant_suspended",
    "the requested scope exceeds what this grant allows": "invalid_scope",
    "the user belongs to several tenants: send `tenant`": "tenant_required",
    "the refresh token is invalid or expired": "invalid_refresh_token",
}

log = logging.getLogger("tenantgate.grants")


class RefreshTokenReused(OAuthError):
    """A spent refresh token came back: its family is revoked, and that is audited already."""

    def __init__(self) -> None:
        super().__init__("invalid_grant", "the refresh token is invalid or expired")


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


def grantable_scopes(allowed: frozenset[str], *, must_change_password: bool) -> frozenset[str]:
    """What a user's token may carry: its role's scopes, none while a one-time password is the
    user's (it opens only the identity routes: /v1/me/password first)."""
    return frozenset() if must_change_password else allowed


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
        self,
        username: str,
        password: str,
        scope: str | None,
        tenant: str | None,
        context: Context = NO_CONTEXT,
    ) -> TokenResponse:
        try:
            return await self._password(username, password, scope, tenant, context)
        except OAuthError as error:
            await self._audit_refusal(error, "password", context, username=username, tenant=tenant)
            raise

    async def _password(
        self, username: str, password: str, scope: str | None, tenant: str | None, context: Context
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
            if user.must_change_password and parse_scope(scope):
                raise OAuthError("invalid_scope", ONE_TIME_PASSWORD)
            allowed = grantable_scopes(
                grant.allowed, must_change_password=user.must_change_password
            )
            grant = replace(grant, allowed=allowed)
            scopes = narrow(parse_scope(scope), grant.allowed)
            return await self._respond(
                connection, grant, scopes, new_id("fam"), Action.TOKEN_ISSUED, context
            )

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

    async def refresh(
        self, refresh_token: str, scope: str | None, context: Context = NO_CONTEXT
    ) -> TokenResponse:
        token_hash = hash_refresh_token(refresh_token)
        try:
            return await self._refresh(token_hash, scope, context)
        except RefreshTokenReused:
            raise
        except OAuthError as error:
            await self._audit_refusal(error, "refresh_token", context, token_hash=token_hash)
            raise

    async def _refresh(self, token_hash: str, scope: str | None, context: Context) -> TokenResponse:
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
                return await self._respond(
                    connection,
                    grant,
                    scopes,
                    row.family_id,
                    Action.TOKEN_REFRESHED,
                    context,
                    original,
                )
            # Reuse of a spent token: someone else holds a copy. Revoke the whole family, and
            # commit that before answering.
            await revoke_family(connection, row.family_id)
            await audit(
                connection,
                NewEvent(
                    action=Action.REFRESH_TOKEN_REUSE,
                    tenant=row.tenant,
                    actor=Actor("user", row.user_id),
                    outcome=EventOutcome.DENIED,
                    target=f"refresh_family:{row.family_id}",
                    scopes=parse_scope(row.scope),
                    context=context,
                    details={"family": row.family_id, "client_id": row.client_id},
                ),
            )
        raise RefreshTokenReused()

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
        action: Action,
        context: Context,
        refresh_scopes: frozenset[str] | None = None,
    ) -> TokenResponse:
        settings = self._settings
        await self._keyring.refresh_if_stale()
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
        await audit(
            connection,
            NewEvent(
                action=action,
                tenant=grant.tenant,
                actor=Actor("user", grant.user_id),
                target=f"user:{grant.user_id}",
                scopes=scopes,
                context=context,
                details={
                    "grant_type": "password" if action is Action.TOKEN_ISSUED else "refresh_token",
                    "client_id": FIRST_PARTY_CLIENT_ID,
                    "jti": claims.jti,
                    "family": family,
                },
            ),
        )
        return TokenResponse(access, settings.access_token_ttl, claims.scope, refresh)

    async def _audit_refusal(
        self,
        error: OAuthError,
        grant_type: str,
        context: Context,
        *,
        username: str | None = None,
        tenant: str | None = None,
        token_hash: str | None = None,
    ) -> None:
        """Refused grants are recorded in a short transaction of their own (the grant's own
        transaction rolled back); never the password or the token, only what they belong to."""
        details: dict[str, str] = {
            "grant_type": grant_type,
            "error": error.error,
            "reason": REFUSAL_REASONS.get(error.description, error.error),
        }
        try:
            async with self._database.write() as connection:
                actor, chain = await self._refused_actor(
                    connection, details, username, tenant, token_hash
                )
                event = NewEvent(
                    action=Action.TOKEN_REFUSED,
                    tenant=chain,
                    actor=actor,
                    outcome=EventOutcome.FAILURE,
                    target=f"user:{actor.subject}" if actor.subject else None,
                    context=context,
                    details=details,
                )
                await audit(connection, event)
        except Exception as failure:  # noqa: BLE001 - the refusal stands; the failure is logged
            log.error("audit: token.refused not recorded (%s)", type(failure).__name__)

    @staticmethod
    async def _refused_actor(
        connection: AsyncConnection,
        details: dict[str, str],
        username: str | None,
        tenant: str | None,
        token_hash: str | None,
    ) -> tuple[Actor, str | None]:
        """Who was refused, and which tenant's trail it belongs to (None: the platform's)."""
        if token_hash is not None:
            row = (
                await connection.execute(
                    sa.select(refresh_tokens.c.user_id, refresh_tokens.c.tenant).where(
                        refresh_tokens.c.token_hash == token_hash
                    )
                )
            ).first()
            return (ANONYMOUS, None) if row is None else (Actor("user", row.user_id), row.tenant)
        email = (username or "").strip().lower()
        user_id = (
            await connection.execute(sa.select(users.c.id).where(users.c.email == email))
        ).scalar_one_or_none()
        if user_id is None:
            details["reason"] = "unknown_user"
            details["username"] = email[:320]
            return ANONYMOUS, None
        query = sa.select(memberships.c.tenant).where(memberships.c.user_id == user_id)
        if tenant is not None:
            query = query.where(memberships.c.tenant == tenant)
        tenants_of_user = (await connection.execute(query.limit(2))).scalars().all()
        return Actor("user", user_id), tenants_of_user[0] if len(tenants_of_user) == 1 else None


async def revoke_family(connection: AsyncConnection, family_id: str) -> None:
    await connection.execute(
        refresh_tokens.update()
        .where(refresh_tokens.c.family_id == family_id, refresh_tokens.c.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
