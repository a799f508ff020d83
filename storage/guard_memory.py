"""In-process GuardStore: the embedded default, and the fallback while Redis is unreachable."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from storage.guard_state import (
    Admission,
    Counter,
    Outcome,
    Tally,
    TenantState,
    Verdict,
    Window,
)


@dataclass(slots=True)
class _Count:
    hits: int
    expires: float


class MemoryGuardStore:
    """Exact within one process (no await between read and write); each process counts alone.

    As the fallback of a shared store, `share` processes count alone at once: each admits
    `limit // share` (at least 1) per window, so together they stay within one limit, and
    starts from its share of what the shared store last reported (`observe`).

    Expired entries are swept at most every `sweep_interval` seconds, so counters of subjects and
    IPs that never come back do not accumulate.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sweep_interval: float = 30.0,
        share: int = 1,
    ) -> None:
        self._clock = clock
        self._sweep_interval = sweep_interval
        self._next_sweep = clock() + sweep_interval
        self.share = share
        self._tenants: dict[str, TenantState] = {}
        self._revoked: dict[tuple[str, str], float] = {}
        self._revisions: dict[tuple[str, str], tuple[int, float]] = {}
        self._counts: dict[str, _Count] = {}
        self._seen: dict[str, _Count] = {}

    def size(self) -> int:
        """Entries held (tenants, revocations, counters): for tests and metrics."""
        held = (self._tenants, self._revoked, self._revisions, self._counts, self._seen)
        return sum(len(entries) for entries in held)

    def forget_tenants(self) -> None:
        """Drop every tenant state, so each is loaded again from the database on next use."""
        self._tenants.clear()

    def observe(self, key: str, counter: Counter) -> None:
        """What the shared store counted for `key` (a `principal_key`, `tenant_key` or
        `hit_key`): if this process has to count alone, it starts from its share of that."""
        self._seen[key] = _Count(
            counter.limit - counter.remaining, self._clock() + counter.reset_ms / 1000
        )

    async def admit(self, admission: Admission) -> Verdict:
        now = self._now()
        tag = admission.tag
        state = self._tenants.get(tag)
        if state is None:
            return Verdict(Outcome.UNKNOWN_TENANT)
        expiry = self._revoked.get((tag, admission.jti))
        if expiry is not None and expiry > now:
            return Verdict(Outcome.REVOKED)
        cutoff = self._revisions.get((tag, admission.subject))
        if cutoff is not None and cutoff[1] > now and admission.revision < cutoff[0]:
            return Verdict(Outcome.REVOKED)
        if not admission.tenant:
            return Verdict(Outcome.OK)
        if not state.active:
            return Verdict(Outcome.SUSPENDED)
        principal_window = state.overrides.get(admission.subject, state.principal_window)
        allowed, counters = self._count(
            now,
            [
                (principal_key(tag, admission.subject), principal_window),
                (tenant_key(tag), state.tenant_window),
            ],
        )
        return Verdict(Outcome.OK if allowed else Outcome.LIMITED, *counters)

    async def hit(self, tag: str, windows: Sequence[tuple[str, Window]]) -> Tally:
        now = self._now()
        allowed, counters = self._count(now, [(hit_key(tag, name), w) for name, w in windows])
        return Tally(allowed, counters)

    def _count(
        self, now: float, windows: Sequence[tuple[str, Window]]
    ) -> tuple[bool, tuple[Counter, ...]]:
        """Fixed windows, all or none: over any limit means nothing is counted."""
        if self.share > 1:
            windows = [
                (key, Window(max(1, window.limit // self.share), window.seconds))
                for key, window in windows
            ]
        counts = [self._current(key, now) for key, _ in windows]
        allowed = all(
            count is None or count.hits < window.limit
            for count, (_, window) in zip(counts, windows, strict=True)
        )
        if allowed:
            for index, (key, window) in enumerate(windows):
                count = counts[index]
                if count is None:
                    count = counts[index] = self._counts[key] = _Count(0, now + window.seconds)
                count.hits += 1
        return allowed, tuple(
            _counter(count, window, now) for count, (_, window) in zip(counts, windows, strict=True)
        )

    def _current(self, key: str, now: float) -> _Count | None:
        count = self._counts.get(key)
        if count is not None and count.expires <= now:
            del self._counts[key]
            count = None
        seen = self._seen.pop(key, None)
        if seen is not None and seen.expires > now:
            start = -(-seen.hits // self.share)
            if count is None:
                count = self._counts[key] = _Count(start, seen.expires)
            elif count.hits < start:
                count.hits = start
        return count

    def _now(self) -> float:
        now = self._clock()
        if now >= self._next_sweep:
            self._sweep(now)
        return now

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + self._sweep_interval
        self._counts = {k: c for k, c in self._counts.items() if c.expires > now}
        self._seen = {k: c for k, c in self._seen.items() if c.expires > now}
        self._revoked = {k: e for k, e in self._revoked.items() if e > now}
        self._revisions = {k: r for k, r in self._revisions.items() if r[1] > now}

    async def put_tenant(self, tag: str, state: TenantState) -> None:
        self._tenants[tag] = state

    async def revoke_token(self, tag: str, jti: str, ttl_seconds: int) -> None:
        self._revoked[(tag, jti)] = self._now() + ttl_seconds

    async def set_subject_revision(
        self, tag: str, subject: str, revision: int, ttl_seconds: int
    ) -> None:
        self._revisions[(tag, subject)] = (revision, self._now() + ttl_seconds)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


def principal_key(tag: str, subject: str) -> str:
    return f"{tag}:p:{subject}"


def tenant_key(tag: str) -> str:
    return f"{tag}:t"


def hit_key(tag: str, name: str) -> str:
    return f"{tag}:{name}"


def _counter(count: _Count | None, window: Window, now: float) -> Counter:
    if count is None:
        return Counter(window.limit, window.limit, window.seconds * 1000, window.seconds)
    reset_ms = round((count.expires - now) * 1000)
    return Counter(window.limit, max(window.limit - count.hits, 0), reset_ms, window.seconds)
