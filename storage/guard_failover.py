"""Redis first, the in-process store while Redis fails; a breaker stops paying the timeout.

Closed: every call goes to Redis. A call that fails (refused, timed out, reset) is answered by
this process's own store. A sustained failure (storage/breaker.py: at least `failures` distinct
failures, the callers of one pipelined round trip counting once, and half of all calls or more,
within `window` seconds) opens the breaker: admissions and
counters are served by this process's store at once, without touching Redis, and a background
probe pings Redis every `cooldown` seconds. When Redis answers, `on_recovery` re-seeds it from
the database, then the breaker closes. One slow call under CPU load opens nothing.

Whenever this process counts alone it admits its share of each limit (`share` processes count
alone at once: `limit // share` each), starting from its share of what Redis last reported, so
a fail-open never multiplies a tenant's budget by the number of processes.

Changes to shared state (`put_tenant`, `revoke_token`, ...) that Redis does not take fail with
StateStoreUnavailable, at once while the breaker is open: other workers could not see them, so
they must not be committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from enum import Enum

from storage.breaker import FailureRate
from storage.guard_memory import MemoryGuardStore, hit_key, principal_key, tenant_key
from storage.guard_redis import RedisGuardStore
from storage.guard_state import Admission, Tally, TenantState, Verdict, Window
from storage.redis_client import REDIS_FAILURES

log = logging.getLogger("tenantgate.guard")


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
        failures: int = 5,
        window: float = 10.0,
        share: int = 1,
        on_transition: Callable[[bool], None] | None = None,
    ) -> None:
        self.primary = primary
        self.fallback = MemoryGuardStore(share=share)
        self.cooldown = cooldown
        self.failure_rate = FailureRate(window=window, min_failures=failures)
        self.on_recovery: Callable[[], Awaitable[None]] | None = None
        # Counted for /ready and metrics: requests served by the fallback, failed Redis calls,
        # and breaker trips (closed -> open).
        self.fallback_admissions = 0
        self.failures = 0
        self.trips = 0
        self._state = _Breaker.CLOSED
        # Whether the last Redis call failed: the fallback is serving although still closed.
        self._failing = False
        # The last error seen: the callers of one failed pipelined round trip share it.
        self._last_error: BaseException | None = None
        self._on_transition = on_transition
        self._probe: asyncio.Task[None] | None = None
        self._reseeding: asyncio.Task[None] | None = None
        primary.on_failover = self._reseed_soon

    @property
    def degraded(self) -> bool:
        return self._state is not _Breaker.CLOSED

    def seeding_target(self) -> MemoryGuardStore | FailoverGuardStore:
        """Where state loaded from the database goes: while Redis fails, this process's store
        only (re-seeding is not a change, and must not wait for or fail on Redis)."""
        return self.fallback if self.degraded or self._failing else self

    async def admit(self, admission: Admission) -> Verdict:
        if self._state is _Breaker.CLOSED:
            try:
                verdict = await self.primary.admit(admission)
            except REDIS_FAILURES as error:
                self._failed(error)
            else:
                self._succeeded()
                if verdict.principal is not None and verdict.tenant is not None:
                    tag = admission.tag
                    self.fallback.observe(principal_key(tag, admission.subject), verdict.principal)
                    self.fallback.observe(tenant_key(tag), verdict.tenant)
                return verdict
        self.fallback_admissions += 1
        return await self.fallback.admit(admission)

    async def hit(self, tag: str, windows: Sequence[tuple[str, Window]]) -> Tally:
        if self._state is _Breaker.CLOSED:
            try:
                tally = await self.primary.hit(tag, windows)
            except REDIS_FAILURES as error:
                self._failed(error)
            else:
                self._succeeded()
                for (name, _), counter in zip(windows, tally.counters, strict=True):
                    self.fallback.observe(hit_key(tag, name), counter)
                return tally
        self.fallback_admissions += 1
        return await self.fallback.hit(tag, windows)

    def _succeeded(self) -> None:
        self._failing = False
        self.failure_rate.success()

    def _failed(self, error: BaseException) -> None:
        """A Redis call failed: the fallback answers it; the breaker opens on a sustained
        failure, or at once while Redis is being re-seeded (it was just down)."""
        self.failures += 1
        if not self._failing and self._state is _Breaker.CLOSED:
            # The fallback may hold tenant states this worker wrote long ago while other
            # workers changed them since: reload each from the database on first use.
            self.fallback.forget_tenants()
        self._failing = True
        distinct = error is not self._last_error
        self._last_error = error
        sustained = self.failure_rate.failure(distinct=distinct)
        if self._state is _Breaker.RECOVERING:
            self._state = _Breaker.OPEN
        elif self._state is _Breaker.CLOSED and sustained:
            self._open(error)

    def _open(self, error: BaseException) -> None:
        self.trips += 1
        self._state = _Breaker.OPEN
        log.warning(
            "redis unavailable (%s): guard state and rate limits fall back to this process "
            "until it answers again",
            type(error).__name__,
        )
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
            if self._state is _Breaker.RECOVERING:  # no call failed while re-seeding
                self._state = _Breaker.CLOSED
                self._failing = False
                self.failure_rate.reset()
                log.warning("redis answers again; guard state and rate limits use it")
                if self._on_transition:
                    self._on_transition(False)

    def _reseed_soon(self) -> None:
        """A cluster master failed over while the breaker stayed closed (the other masters
        answered): what it had not passed to its replica is lost, so seed Redis again from the
        database (revocations, cut-offs, tenant states), in the background."""
        if self.on_recovery is None or (self._reseeding and not self._reseeding.done()):
            return
        self._reseeding = asyncio.get_running_loop().create_task(self._reseed(self.on_recovery))

    @staticmethod
    async def _reseed(seed: Callable[[], Awaitable[None]]) -> None:
        try:
            await seed()
        except Exception as error:  # noqa: BLE001 - the next failover or recovery tries again
            log.warning("re-seeding redis after a failover failed (%s)", type(error).__name__)

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
            self._failed(error)
            raise StateStoreUnavailable(type(error).__name__) from error
        self._succeeded()
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
        for task in (self._probe, self._reseeding):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.primary.close()
