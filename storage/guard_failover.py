"""Redis first, the in-process store while Redis fails; a breaker stops paying the timeout."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import RedisError

from storage.guard_memory import MemoryGuardStore
from storage.guard_redis import RedisGuardStore
from storage.guard_state import Admission, TenantState, Verdict

log = logging.getLogger("tenantgate.guard")
T = TypeVar("T")


class StateStoreUnavailable(Exception):
    """A change to shared guard state could not be recorded; the caller must not commit it."""


class FailoverGuardStore:
    """Admits from Redis; on failure, from this process's own store until Redis answers again."""

    def __init__(
        self,
        primary: RedisGuardStore,
        *,
        cooldown: float = 2.0,
        on_transition: Callable[[bool], None] | None = None,
    ) -> None:
        self.primary = primary
        self.fallback = MemoryGuardStore()
        self.cooldown = cooldown
        self.fallback_admissions = 0
        self._open_until = 0.0
        self._degraded = False
        self._on_transition = on_transition
        self.on_recovery: Callable[[], Awaitable[None]] | None = None

    @property
    def degraded(self) -> bool:
        return self._degraded

    async def admit(self, admission: Admission) -> Verdict:
        if time.monotonic() >= self._open_until:
            try:
                verdict = await self.primary.admit(admission)
            except (RedisError, OSError, TimeoutError) as error:
                self._trip(error)
            else:
                if self._degraded:
                    await self._recover()
                return verdict
        self.fallback_admissions += 1
        return await self.fallback.admit(admission)

    def _trip(self, error: Exception) -> None:
        self._open_until = time.monotonic() + self.cooldown
        if not self._degraded:
            self._degraded = True
            log.warning(
                "redis unavailable, guard falls back to the in-process store: %s",
                type(error).__name__,
            )
            if self._on_transition:
                self._on_transition(True)

    async def _recover(self) -> None:
        self._degraded = False
        log.warning("redis answers again, guard uses it")
        if self._on_transition:
            self._on_transition(False)
        if self.on_recovery is not None:
            await self.on_recovery()

    async def _write(self, call: Callable[[], Awaitable[None]]) -> None:
        try:
            await call()
        except (RedisError, OSError, TimeoutError) as error:
            raise StateStoreUnavailable(type(error).__name__) from error

    async def put_tenant(self, tag: str, state: TenantState) -> None:
        await self.fallback.put_tenant(tag, state)
        await self._write(lambda: self.primary.put_tenant(tag, state))

    async def revoke_token(self, tag: str, jti: str, ttl_seconds: int) -> None:
        await self.fallback.revoke_token(tag, jti, ttl_seconds)
        await self._write(lambda: self.primary.revoke_token(tag, jti, ttl_seconds))

    async def set_subject_revision(
        self, tag: str, subject: str, revision: int, ttl_seconds: int
    ) -> None:
        await self.fallback.set_subject_revision(tag, subject, revision, ttl_seconds)
        await self._write(
            lambda: self.primary.set_subject_revision(tag, subject, revision, ttl_seconds)
        )

    async def ping(self) -> None:
        await self.primary.ping()

    async def close(self) -> None:
        await self.primary.close()
