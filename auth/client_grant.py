"""The client_credentials grant (RFC 6749 section 4.4): a tenant-bound token for a client."""

from __future__ import annotations

from auth.clients import ClientCredentials, authenticate
from auth.errors import OAuthError
from auth.grants import TokenResponse, narrow, parse_scope
from auth.keys import KeyRing
from auth.principal import CLIENT_SUBJECT_PREFIX
from auth.tokens import issue
from config.settings import Settings
from storage import clients as client_rows
from storage.database import Database


class ClientCredentialsGrant:
    def __init__(self, settings: Settings, database: Database, keyring: KeyRing) -> None:
        self._settings = settings
        self._database = database
        self._keyring = keyring

    async def issue(
        self, credentials: ClientCredentials | None, scope: str | None
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
        async with self._database.write() as connection:
            await client_rows.record_use(connection, client.client_id)
        # Signed with the revision read above: a secret rotation or a deletion committed since
        # cuts that revision off, so such a token is refused like any older one.
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
        return TokenResponse(access, settings.access_token_ttl, claims.scope, None)
