"""The client_credentials grant (RFC 6749 section 4.4): a tenant-bound token for a client."""

from __future__ import annotations

import logging
from datetime import timedelta

from auth.clients import ClientCredentials, authenticate
from auth.errors import OAuthError
from auth.grants import REFUSAL_REASONS, TokenResponse, narrow, parse_scope
from auth.keys import KeyRing
from auth.principal import CLIENT_SUBJECT_PREFIX
from auth.tokens import issue
from config.settings import Settings
from storage import clients as client_rows
from storage.audit import (
    ANONYMOUS,
    NO_CONTEXT,
    Action,
    Actor,
    Context,
    EventOutcome,
    NewEvent,
    append,
    append_once_per_window,
)
from storage.database import Database
from storage.tables import utcnow

# Refused client authentications are recorded once per client and minute (unknown clients
# together): a flood of bad secrets must not become a flood of writes.
REFUSAL_WINDOW = timedelta(minutes=1)

log = logging.getLogger("tenantgate.grants")


class ClientCredentialsGrant:
    def __init__(self, settings: Settings, database: Database, keyring: KeyRing) -> None:
        self._settings = settings
        self._database = database
        self._keyring = keyring

    async def issue(
        self,
        credentials: ClientCredentials | None,
        scope: str | None,
        context: Context = NO_CONTEXT,
    ) -> TokenResponse:
        try:
            return await self._issue(credentials, scope, context)
        except OAuthError as error:
            await self._audit_refusal(error, credentials, context)
            raise

    async def _issue(
        self, credentials: ClientCredentials | None, scope: str | None, context: Context
    ) -> TokenResponse:
        """Authenticate, cap the scope, sign; no refresh token (the client can ask again)."""
        settings = self._settings
        # Authenticate on a read: a flood of bad credentials never takes the write lock.
        async with self._database.read() as connection:
            client = await authenticate(connection, credentials, allow_public=False)
        assert client.record is not None
        if not client.tenant_active:
            raise OAuthError("invalid_grant", "the tenant is suspended")
        scopes = narrow(parse_scope(scope), client.record.scopes)
        # Signed with the revision read above: a secret rotation or a deletion committed since
        # cuts that revision off, so such a token is refused like any older one.
        await self._keyring.refresh_if_stale()
        access, claims = issue(
            self._keyring,
            issuer=settings.issuer,
            audience=settings.audience,
            ttl=settings.access_token_ttl,
            subject=CLIENT_SUBJECT_PREFIX + client.client_id,
            client_id=client.client_id,
            scopes=scopes,
            tenant=client.record.tenant,
            revision=client.record.revision,
        )
        async with self._database.write() as connection:
            await client_rows.record_use(connection, client.client_id)
            await append(
                connection,
                NewEvent(
                    action=Action.TOKEN_ISSUED,
                    tenant=client.record.tenant,
                    actor=Actor("client", claims.subject),
                    target=claims.subject,
                    scopes=scopes,
                    context=context,
                    details={
                        "grant_type": "client_credentials",
                        "client_id": client.client_id,
                        "jti": claims.jti,
                    },
                ),
            )
        return TokenResponse(access, settings.access_token_ttl, claims.scope, None)

    async def authenticate(
        self, credentials: ClientCredentials, grant_type: str, context: Context = NO_CONTEXT
    ) -> None:
        """Authenticate a client that asked for another grant (RFC 6749 section 5.2: the
        client first, then its grant); a refusal is audited like those of this grant."""
        try:
            async with self._database.read() as connection:
                await authenticate(connection, credentials, allow_public=False)
        except OAuthError as error:
            await self._audit_refusal(error, credentials, context, grant_type[:40])
            raise

    async def _audit_refusal(
        self,
        error: OAuthError,
        credentials: ClientCredentials | None,
        context: Context,
        grant_type: str = "client_credentials",
    ) -> None:
        client_id = credentials.client_id[:60] if credentials else ""
        async with self._database.read() as connection:
            found = await client_rows.secret_record(connection, client_id) if client_id else None
        details = {
            "grant_type": grant_type,
            "error": error.error,
            "reason": REFUSAL_REASONS.get(error.description, error.error),
            "client_id": client_id,
        }
        if found is None:
            tenant, actor, target = None, ANONYMOUS, "client:unknown"
        else:
            subject = CLIENT_SUBJECT_PREFIX + client_id
            tenant, actor, target = found.client.tenant, Actor("client", subject), subject
        event = NewEvent(
            action=Action.TOKEN_REFUSED,
            tenant=tenant,
            actor=actor,
            outcome=EventOutcome.FAILURE,
            target=target,
            context=context,
            details=details,
        )
        try:
            await append_once_per_window(self._database, event, utcnow() + REFUSAL_WINDOW)
        except Exception as failure:  # noqa: BLE001 - the refusal stands; the failure is logged
            log.error("audit: token.refused not recorded (%s)", type(failure).__name__)
