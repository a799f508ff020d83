"""OAuth2 client secrets and client authentication (RFC 6749 section 2.3).

Secrets are 256-bit random values with a recognisable `tgcs_` prefix, so secret scanners can
find leaked ones. Stored as HMAC-SHA-256 keyed per client: a slow password hash buys nothing
against a 256-bit secret, and a fast one keeps every token request cheap.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote_plus

from sqlalchemy.ext.asyncio import AsyncConnection

from auth.errors import OAuthError
from auth.grants import FIRST_PARTY_CLIENT_ID
from storage import clients as client_rows
from storage.clients import ClientRecord

SECRET_PREFIX = "tgcs_"  # noqa: S105 - the public prefix, not a secret
HASH_SCHEME = "hmac-sha256$"
AUTHENTICATION_FAILED = "client authentication failed"
MAX_CREDENTIAL_LENGTH = 512

AuthMethod = Literal["client_secret_basic", "client_secret_post", "none"]


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    """What the caller presented: an id, maybe a secret, and how they were sent."""

    client_id: str
    secret: str | None
    method: AuthMethod


@dataclass(frozen=True, slots=True)
class AuthenticatedClient:
    """A confidential client that proved its secret, or the first-party public client."""

    client_id: str
    record: ClientRecord | None
    tenant_active: bool

    @property
    def tenant(self) -> str | None:
        return self.record.tenant if self.record else None


def generate_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def hash_secret(client_id: str, secret: str) -> str:
    # Keyed by the client id: a hash copied onto another client's row does not verify there.
    key = b"tenantgate-client-secret:" + client_id.encode()
    return HASH_SCHEME + hmac.new(key, secret.encode(), hashlib.sha256).hexdigest()


def secret_matches(client_id: str, secret: str, stored: str) -> bool:
    return hmac.compare_digest(hash_secret(client_id, secret), stored)


def _invalid_client() -> OAuthError:
    return OAuthError("invalid_client", AUTHENTICATION_FAILED)


def parse_credentials(
    authorization: str | None, form_client_id: str | None, form_client_secret: str | None
) -> ClientCredentials | None:
    """Client credentials from HTTP Basic or the form; None when the caller sent none."""
    basic = _basic(authorization)
    if basic is not None:
        if form_client_secret:
            raise OAuthError("invalid_request", "use one client authentication method, not two")
        if form_client_id and form_client_id != basic[0]:
            raise OAuthError("invalid_request", "client_id differs from the Basic credentials")
        return ClientCredentials(basic[0], basic[1], "client_secret_basic")
    if form_client_id:
        if len(form_client_id) > MAX_CREDENTIAL_LENGTH:
            raise _invalid_client()
        if form_client_secret:
            return ClientCredentials(form_client_id, form_client_secret, "client_secret_post")
        return ClientCredentials(form_client_id, None, "none")
    if form_client_secret:
        raise _invalid_client()
    return None


def _basic(authorization: str | None) -> tuple[str, str] | None:
    if not authorization:
        return None
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None  # e.g. a bearer token sent by mistake: not client authentication
    encoded = encoded.strip()
    if len(encoded) > 2 * MAX_CREDENTIAL_LENGTH:
        raise _invalid_client()
    try:
        decoded = base64.b64decode(encoded, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise _invalid_client() from None
    client_id, colon, secret = decoded.partition(":")
    if not colon or not client_id:
        raise _invalid_client()
    # RFC 6749 2.3.1: both parts are form-urlencoded before Base64.
    return unquote_plus(client_id), unquote_plus(secret)


async def authenticate(
    connection: AsyncConnection, credentials: ClientCredentials | None, *, allow_public: bool
) -> AuthenticatedClient:
    """Prove the client's identity or raise invalid_client (401).

    No credentials, or `client_id=tenantgate` without a secret, is the first-party public
    client: accepted only where `allow_public` (revocation of one's own tokens).
    """
    if credentials is None or credentials.client_id == FIRST_PARTY_CLIENT_ID:
        if allow_public and (credentials is None or not credentials.secret):
            return AuthenticatedClient(FIRST_PARTY_CLIENT_ID, None, True)
        raise _invalid_client()
    found = await client_rows.secret_record(connection, credentials.client_id)
    # Compare even when the client is unknown, so both paths cost the same.
    stored = found.secret_hash if found else HASH_SCHEME
    valid = secret_matches(credentials.client_id, credentials.secret or "", stored)
    if found is None or not credentials.secret or not valid:
        raise _invalid_client()
    return AuthenticatedClient(found.client.client_id, found.client, found.tenant_active)


async def create_client(
    connection: AsyncConnection,
    *,
    tenant: str,
    name: str,
    description: str | None,
    scopes: frozenset[str],
    created_by: str,
) -> tuple[ClientRecord, str]:
    """Create a client; returns it with its secret, which is never stored or shown again."""
    client_id = client_rows.new_client_id()
    secret = generate_secret()
    record = await client_rows.insert_client(
        connection,
        client_id=client_id,
        tenant=tenant,
        name=name,
        description=description,
        scopes=scopes,
        secret_hash=hash_secret(client_id, secret),
        created_by=created_by,
    )
    return record, secret


async def rotate_secret(
    connection: AsyncConnection, tenant: str, client_id: str
) -> tuple[str, int]:
    """Replace the secret; returns (new secret, new revision)."""
    secret = generate_secret()
    revision = await client_rows.replace_secret(
        connection, tenant, client_id, hash_secret(client_id, secret)
    )
    return secret, revision
