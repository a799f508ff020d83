"""Password hashing off the event loop: Argon2id for new hashes, bcrypt verified and upgraded."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher

from config.settings import Settings

T = TypeVar("T")


class PasswordTooLong(ValueError):
    """Rejected before hashing: hashing megabytes would be a denial of service."""


class Passwords:
    """Hash and verify in a small thread pool, so a login never stalls other requests."""

    def __init__(self, settings: Settings) -> None:
        self._hash = PasswordHash(
            (
                Argon2Hasher(
                    time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_cost
                ),
                BcryptHasher(),
            )
        )
        self._max_length = settings.password_max_length
        self._pool = ThreadPoolExecutor(
            max_workers=settings.password_hash_concurrency, thread_name_prefix="password-hash"
        )
        # Verified against when the user does not exist, so both paths cost one hash.
        self._dummy = self._hash.hash("tenantgate-timing-equaliser")

    def check_length(self, password: str) -> None:
        if len(password.encode()) > self._max_length:
            raise PasswordTooLong(f"passwords are at most {self._max_length} bytes")

    async def hash(self, password: str) -> str:
        self.check_length(password)
        return await self._run(self._hash.hash, password)

    async def verify(self, password: str, stored: str | None) -> tuple[bool, str | None]:
        """(valid, new hash if the stored one should be upgraded); a missing user costs the same."""
        self.check_length(password)
        return await self._run(self._verify_sync, password, stored)

    def _verify_sync(self, password: str, stored: str | None) -> tuple[bool, str | None]:
        try:
            valid, updated = self._hash.verify_and_update(password, stored or self._dummy)
        except ValueError:  # e.g. bcrypt refusing a NUL byte or more than 72 bytes
            return False, None
        return (valid and stored is not None), updated

    async def _run(self, function: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, function, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
