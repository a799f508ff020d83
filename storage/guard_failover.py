"""Redis first, the in-process store while Redis fails; a breaker stops paying the timeout.

Closed: every call goes to Redis. The first failure (refused, timed out, reset) opens the
breaker: admissions and counters are served by this process's own store at once, without
touching Redis, and a background probe pings Redis every `cooldown` seconds. When Redis answers,
`on_recovery` re-seeds it from the database, then the breaker closes. No request ever waits for
a Redis that is known to be down, and only requests already in flight when it failed paid the
socket timeout.

While open, changes to shared state (`put_tenant`, `revoke_token`, ...) fail at once with
StateStoreUnavailable: other workers could not see them, so they must not be committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from enum import Enum

from redis.exceptions import RedisError

from storage.guard_memory import MemoryGuardStore
from storage.guard_redis import RedisGuardStore
from storage.guard_state import Admission, Tally, TenantState, Verdict, Window

log = logging.getLogger("tenantgate.guard")

REDIS_FAILURES = (RedisError, OSError, TimeoutError)


class StateStoreUnavailable(Exception):
    """A change to shared guard state could not be recorded; the caller must not commit it."""


class _Breaker(Enum):
    CLOSED = "closed"  # Redis serves
    OPEN = "open"  # the fallback serves, changes are refused, a probe waits for Redis
    RECOVERING = "recovering"  # Redis answers again and is being re-seeded; fallback serves


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
        self.on_recovery: Callable[[], Awaitable[None]] | None = None
        # Counted for /ready and metrics: requests served by the fallback, and breaker trips.
        self.fallback_admissions = 0
        self.trips = 0
        self._state = _Breaker.CLOSED
        self._on_transition = on_transition
        self._probe: asyncio.Task[None] | None = None

    @property
    def degraded(self) -> bool:
        return self._state is not _Breaker.CLOSED

    def seeding_target(self) -> MemoryGuardStore | FailoverGuardStore:
        """Where state loaded from the database goes: while degraded, this process's store
        only (re-seeding is not a change, and must not wait for or fail on Redis)."""
        return self.fallback if self.degraded else self

    async def admit(self, admission: Admission) -> Verdict:
        if self._state is _Breaker.CLOSED:
            try:
                return await self.primary.admit(admission)
            except REDIS_FAILURES as error:
                self._trip(error)
        self.fallback_admissions += 1
        return await self.fallback.admit(admission)

    async def hit(self, tag: str, windows: Sequence[tuple[str, Window]]) -> Tally:
        if self._state is _Breaker.CLOSED:
            try:
                return await self.primary.hit(tag, windows)
            except REDIS_FAILURES as error:
                self._trip(error)
        self.fallback_admissions += 1
        return await self.fallback.hit(tag, windows)

    def _trip(self, error: BaseException) -> None:
        self.trips += 1
        was_closed = self._state is _Breaker.CLOSED
        self._state = _Breaker.OPEN
        if was_closed:
            log.warning(
                "redis unavailable (%s): guard state and rate limits fall back to this "
                "process until it answers again",
                type(error).__name__,
            )
            # The fallback may hold tenant states this worker wrote long ago while other
            # workers changed them since: reload each from the database on first use.
            self.fallback.forget_tenants()
            if self._on_transition:
                self._on_transition(True)
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._wait_for_redis())

    async def _wait_for_redis(self) -> None:
        while self._state is not _Breaker.CLOSED:
            await asyncio.sleep(self.cooldown)
            try:
                await self.primary.ping()
            except REDIS_FAILURES:
                continue
            trips = self.trips
            self._state = _Breaker.RECOVERING
            if self.on_recovery is not None:
                try:
                    await self.on_recovery()
                except Exception as error:  # noqa: BLE001 - any failure: try again later
                    log.warning(
                        "re-seeding redis failed (%s); still degraded", type(error).__name__
                    )
                    self._state = _Breaker.OPEN
                    continue
            if self.trips == trips:
                self._state = _Breaker.CLOSED
                log.warning("redis answers again; guard state and rate limits use it")
                if self._on_transition:
                    self._on_transition(False)

    async def _write(
        self, primary: Callable[[], Awaitable[None]], fallback: Callable[[], Awaitable[None]]
    ) -> None:
        """Redis first, then this process's copy (so an open breaker or a failed write leaves
        the copy as it was: the caller rolls the change back)."""
        if self._state is _Breaker.OPEN:
            raise StateStoreUnavailable("redis is unavailable")
        try:
            await primary()
        except REDIS_FAILURES as error:
            self._trip(error)
            raise StateStoreUnavailable(type(error).__name__) from error
        await fallback()

    async def put_tenant(self, tag: str, state: TenantState) -> None:
        await self._write(
            lambda: self.primary.put_tenant(tag, state),
            lambda: self.fallback.put_tenant(tag, state),
        )

    async def revoke_token(self, tag: str, jti: str, ttl_seconds: int) -> None:
        await self._write(
            lambda: self.primary.revoke_token(tag, jti, ttl_seconds),
            lambda: self.fallback.revoke_token(tag, jti, ttl_seconds),
        )

    async def set_subject_revision(
        self, tag: str, subject: str, revision: int, ttl_seconds: int
    ) -> None:
        await self._write(
            lambda: self.primary.set_subject_revision(tag, subject, revision, ttl_seconds),
            lambda: self.fallback.set_subject_revision(tag, subject, revision, ttl_seconds),
        )

    async def ping(self) -> None:
        await self.primary.ping()

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
        await self.primary.close()
