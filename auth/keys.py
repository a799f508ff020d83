"""Signing keys: kid -> (key, algorithm), the JWKS document, rotation. Keys live in the database.

A rotation is announced on the Redis channel `<prefix>:keys`; every worker follows it and
re-reads the key table at once, so all of them sign with the new key within a second. Without
Redis (or while it fails) each worker re-reads the table every KEY_REFRESH_INTERVAL seconds,
and after its pub/sub connection comes back (announcements made meanwhile are lost).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from sqlalchemy.ext.asyncio import AsyncConnection

from config.settings import Settings, SigningAlgorithm
from storage.database import Database
from storage.redis_client import REDIS_FAILURES, create_redis
from storage.redis_pubsub import Subscriber
from storage.tables import signing_keys, utcnow

log = logging.getLogger("tenantgate.keys")

# Seconds on top of the refresh interval for a worker's re-read itself to finish.
ROTATION_MARGIN = 2.0

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


class NoSigningKey(RuntimeError):
    """No active signing key is provisioned (run `tenantgate keys rotate`)."""


@dataclass(frozen=True, slots=True)
class VerificationKey:
    kid: str
    algorithm: str
    key: PublicKey


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    algorithm: str
    key: PrivateKey


def generate_private_key(algorithm: SigningAlgorithm) -> PrivateKey:
    if algorithm is SigningAlgorithm.RS256:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if algorithm is SigningAlgorithm.ES256:
        return ec.generate_private_key(ec.SECP256R1())
    return ed25519.Ed25519PrivateKey.generate()


def public_jwk(key: PublicKey, algorithm: str) -> dict[str, Any]:
    """The RFC 7517 public JWK; the kid is its RFC 7638 thumbprint."""
    if isinstance(key, rsa.RSAPublicKey):
        jwk = json.loads(RSAAlgorithm.to_jwk(key))
        required: tuple[str, ...] = ("e", "kty", "n")
    elif isinstance(key, ec.EllipticCurvePublicKey):
        jwk = json.loads(ECAlgorithm.to_jwk(key))
        required = ("crv", "kty", "x", "y")
    else:
        jwk = json.loads(OKPAlgorithm.to_jwk(key))
        required = ("crv", "kty", "x")
    canonical = json.dumps({k: jwk[k] for k in required}, separators=(",", ":"), sort_keys=True)
    thumbprint = hashlib.sha256(canonical.encode()).digest()
    kid = _b64(thumbprint)
    return {**{k: jwk[k] for k in required}, "kid": kid, "alg": algorithm, "use": "sig"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class KeyRing:
    """This process's view of the key table, refreshed periodically and for unknown kids."""

    def __init__(self, database: Database, *, refresh_interval: float) -> None:
        self._database = database
        self._refresh_interval = refresh_interval
        self._signing: SigningKey | None = None
        self._verification: dict[str, VerificationKey] = {}
        self._jwks: dict[str, Any] = {"keys": []}
        self._loaded_at = 0.0
        self._parsed: dict[str, PrivateKey] = {}
        self._reloading: asyncio.Task[None] | None = None
        self._reload_again = False

    @property
    def signing_key(self) -> SigningKey:
        if self._signing is None:
            raise NoSigningKey("no active signing key; run `tenantgate keys rotate`")
        return self._signing

    @property
    def jwks(self) -> dict[str, Any]:
        return self._jwks

    def verification_key(self, kid: str) -> VerificationKey | None:
        return self._verification.get(kid)

    def stale(self) -> bool:
        return time.monotonic() - self._loaded_at >= self._refresh_interval

    async def refresh_if_stale(self) -> None:
        """Before signing: a copy older than the refresh interval (its refresher missed a turn,
        e.g. while the database was away) is re-read first, so this worker never signs with a
        key that a rotation it has not seen yet retired."""
        if self.stale():
            await self.load()

    def may_refresh_for_unknown_kid(self) -> bool:
        # An attacker can send any kid: re-read the table at most once a second for them.
        return time.monotonic() - self._loaded_at >= 1.0

    async def refresh_forever(self) -> None:
        """Re-read the key table every interval, off the request path (a task of the app)."""
        while True:
            await asyncio.sleep(self._refresh_interval)
            try:
                await self.load()
            except Exception as error:  # noqa: BLE001 - keep the last good keys, try again
                log.warning("could not refresh signing keys: %s", type(error).__name__)

    async def follow_rotations(self, subscriber: Subscriber, prefix: str) -> None:
        """Re-read the key table when a rotation is announced, and whenever the pub/sub
        connection is (re)made: announcements are lost while it is down."""
        subscriber.on_connect(self.reload_soon)
        await subscriber.follow(rotation_channel(prefix), lambda _message: self.reload_soon())

    def reload_soon(self) -> None:
        """Re-read the key table in the background; announcements arriving meanwhile make one
        more read, so the last rotation is always seen."""
        if self._reloading is not None and not self._reloading.done():
            self._reload_again = True
            return
        self._reloading = asyncio.get_running_loop().create_task(self._reload(), name="keys")

    async def _reload(self) -> None:
        while True:
            self._reload_again = False
            try:
                await self.load()
            except Exception as error:  # noqa: BLE001 - keep the last good keys
                log.warning("could not re-read signing keys: %s", type(error).__name__)
            if not self._reload_again:
                return

    async def close(self) -> None:
        if self._reloading is not None:
            self._reloading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reloading

    async def load(self) -> None:
        async with self._database.read() as connection:
            rows = (
                await connection.execute(
                    sa.select(signing_keys).where(signing_keys.c.status != "retired")
                )
            ).all()
        signing: SigningKey | None = None
        verification: dict[str, VerificationKey] = {}
        parsed: dict[str, PrivateKey] = {}
        for row in rows:
            # Parsing checks the key (~50 ms for RSA-2048, on the event loop): only new kids.
            private = self._parsed.get(row.kid) or _parse_private(row.private_pem)
            parsed[row.kid] = private
            verification[row.kid] = VerificationKey(row.kid, row.algorithm, private.public_key())
            if row.status == "active":
                signing = SigningKey(row.kid, row.algorithm, private)
        self._signing = signing
        self._verification = verification
        self._parsed = parsed
        self._jwks = {"keys": [dict(row.public_jwk) for row in rows]}
        self._loaded_at = time.monotonic()


def rotation_channel(prefix: str) -> str:
    return f"{prefix}:keys"


async def announce_rotation(settings: Settings, kid: str) -> bool:
    """Tell every worker to re-read the key table now; False when Redis is not configured or
    did not take it (workers then see the rotation within KEY_REFRESH_INTERVAL)."""
    if settings.redis_url is None:
        return False
    client = create_redis(settings)
    try:
        await client.publish(rotation_channel(settings.redis_prefix), kid)
    except REDIS_FAILURES as error:
        log.warning("could not announce the rotation: %s", type(error).__name__)
        return False
    finally:
        await client.aclose()
    return True


def _parse_private(pem: str) -> PrivateKey:
    private = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(
        private, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    )
    return private


async def lock_key_table(connection: AsyncConnection) -> None:
    """Serialise key changes for the rest of this write transaction.

    Two workers starting on an empty table (or two operators rotating at once) would otherwise
    each see no active key under READ COMMITTED and each insert one. SQLite's writes already
    queue on BEGIN IMMEDIATE."""
    if connection.dialect.name == "postgresql":
        await connection.execute(sa.text("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE"))


async def rotate(connection: AsyncConnection, algorithm: SigningAlgorithm) -> str:
    """Make a new active key; the active one becomes previous, the previous one is retired."""
    await lock_key_table(connection)
    private = generate_private_key(algorithm)
    jwk = public_jwk(private.public_key(), algorithm.value)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    now = utcnow()
    await connection.execute(
        signing_keys.update()
        .where(signing_keys.c.status == "previous")
        .values(status="retired", retired_at=now)
    )
    await connection.execute(
        signing_keys.update().where(signing_keys.c.status == "active").values(status="previous")
    )
    await connection.execute(
        signing_keys.insert().values(
            kid=jwk["kid"],
            algorithm=algorithm.value,
            private_pem=pem,
            public_jwk=jwk,
            status="active",
            created_at=now,
        )
    )
    log.info("signing key rotated", extra={"kid": jwk["kid"]})
    return str(jwk["kid"])


def rotation_delay(
    active_created_at: datetime | None, *, refresh_interval: float, token_ttl: int
) -> float:
    """Seconds before a rotation is safe; 0 when it is.

    A rotation retires the previous key. That is safe once every worker has seen the active key
    (each re-reads the table within `refresh_interval`, and before signing when its copy is
    older) and the tokens the previous key signed until then have expired (`token_ttl`).
    """
    if active_created_at is None:
        return 0.0
    age = (utcnow() - active_created_at).total_seconds()
    return max(0.0, refresh_interval + token_ttl + ROTATION_MARGIN - age)


async def active_key_created_at(connection: AsyncConnection) -> datetime | None:
    query = sa.select(signing_keys.c.created_at).where(signing_keys.c.status == "active")
    created: datetime | None = (await connection.execute(query)).scalar_one_or_none()
    return created


async def has_active_key(connection: AsyncConnection) -> bool:
    query = sa.select(sa.func.count()).where(signing_keys.c.status == "active")
    return bool((await connection.execute(query)).scalar_one())
