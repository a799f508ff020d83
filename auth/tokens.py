"""RFC 9068 access tokens: issue() signs, TokenVerifier checks with a bounded cache."""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

import jwt

from auth.errors import InvalidToken
from auth.keys import KeyRing

ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 - a media type, not a secret
REQUIRED_CLAIMS = ("iss", "aud", "sub", "exp", "iat", "jti", "client_id", "scope")


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """The claims of a verified access token."""

    subject: str
    client_id: str
    scopes: frozenset[str]
    tenant: str | None
    jti: str
    issued_at: int
    expires_at: int
    revision: int
    issuer: str
    audience: str

    @property
    def scope(self) -> str:
        return " ".join(sorted(self.scopes))


def issue(
    keyring: KeyRing,
    *,
    issuer: str,
    audience: str,
    ttl: int,
    subject: str,
    client_id: str,
    scopes: frozenset[str],
    tenant: str | None,
    revision: int,
) -> tuple[str, AccessClaims]:
    key = keyring.signing_key
    now = int(time.time())
    claims = AccessClaims(
        subject=subject,
        client_id=client_id,
        scopes=scopes,
        tenant=tenant,
        jti=secrets.token_urlsafe(16),
        issued_at=now,
        expires_at=now + ttl,
        revision=revision,
        issuer=issuer,
        audience=audience,
    )
    payload: dict[str, object] = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "client_id": client_id,
        "scope": claims.scope,
        "iat": now,
        "exp": claims.expires_at,
        "jti": claims.jti,
        "rev": revision,
    }
    if tenant is not None:
        payload["tid"] = tenant
    headers = {"typ": ACCESS_TOKEN_TYPE, "kid": key.kid}
    token = jwt.encode(payload, key.key, algorithm=key.algorithm, headers=headers)
    return token, claims


class TokenVerifier:
    """Verifies signature, typ, algorithm pinned per kid, issuer, audience and expiry.

    Verified tokens are cached (bounded, LRU): a hit still checks expiry and that the key is
    not retired; revocation is checked on every request by the guard, not here.
    """

    def __init__(self, keyring: KeyRing, *, issuer: str, audience: str, cache_size: int) -> None:
        self._keyring = keyring
        self._issuer = issuer
        self._audience = audience
        self._cache_size = cache_size
        self._cache: OrderedDict[str, tuple[str, AccessClaims]] = OrderedDict()

    async def verify(self, token: str) -> AccessClaims:
        cached = self._cache.get(token)
        if cached is not None:
            kid, claims = cached
            if claims.expires_at <= time.time():
                self._cache.pop(token, None)
                raise InvalidToken("expired")
            if self._keyring.verification_key(kid) is None:
                self._cache.pop(token, None)
                raise InvalidToken("unknown_key")
            self._cache.move_to_end(token)
            return claims
        kid, claims = await self._verify_uncached(token)
        if self._cache_size:
            self._cache[token] = (kid, claims)
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return claims

    async def _verify_uncached(self, token: str) -> tuple[str, AccessClaims]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("malformed") from None
        kid = header.get("kid")
        if header.get("typ", "").lower() not in (ACCESS_TOKEN_TYPE, "application/at+jwt"):
            raise InvalidToken("wrong_type")
        if not isinstance(kid, str):
            raise InvalidToken("unknown_key")
        key = self._keyring.verification_key(kid)
        if key is None and self._keyring.may_refresh_for_unknown_kid():
            await self._keyring.load()
            key = self._keyring.verification_key(kid)
        if key is None:
            raise InvalidToken("unknown_key")
        try:
            payload = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": list(REQUIRED_CLAIMS), "strict_aud": True},
                leeway=0,
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("expired") from None
        except jwt.PyJWTError:
            raise InvalidToken("invalid") from None
        return kid, _claims(payload)


def _claims(payload: dict[str, object]) -> AccessClaims:
    scope, tenant, revision = payload["scope"], payload.get("tid"), payload.get("rev", 0)
    if not isinstance(scope, str) or not (tenant is None or isinstance(tenant, str)):
        raise InvalidToken("invalid")
    if not isinstance(revision, int):
        raise InvalidToken("invalid")
    return AccessClaims(
        subject=str(payload["sub"]),
        client_id=str(payload["client_id"]),
        scopes=frozenset(scope.split()),
        tenant=tenant,
        jti=str(payload["jti"]),
        issued_at=int(str(payload["iat"])),
        expires_at=int(str(payload["exp"])),
        revision=revision,
        issuer=str(payload["iss"]),
        audience=str(payload["aud"]),
    )
