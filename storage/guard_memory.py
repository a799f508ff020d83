"""In-process GuardStore: the embedded default, and the fallback while Redis is unreachable."""

from __future__ import annotations

import time
from dataclasses import dataclass

from storage.guard_state import (
    Admission,
    Counter,
    Outcome,
    TenantState,
    Verdict,
    Window,
)


@dataclass(slots=True)
class _Count:
    hits: int
    expires: float


class MemoryGuardStore:
    """Exact within one process; each process has its own counters."""

    def __init__(self) -> None:
        self._tenants: dict[str, TenantState] = {}
        self._revoked: dict[tuple[str, str], float] = {}
        self._revisions: dict[tuple[str, str], tuple[int, float]] = {}
        self._counts: dict[str, _Count] = {}

    async def admit(self, admission: Admission) -> Verdict:
        now = time.monotonic()
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
        keys = (f"{tag}:p:{admission.subject}", f"{tag}:t")
        windows = (principal_window, state.tenant_window)
        counts = [self._current(key, now) for key in keys]
        if any(c is not None and c.hits >= w.limit for c, w in zip(counts, windows, strict=True)):
            return Verdict(Outcome.LIMITED, *self._counters(counts, windows, now, 0))
        for index, key in enumerate(keys):
            count = counts[index]
            if count is None:
                count = self._counts[key] = _Count(0, now + windows[index].seconds)
                counts[index] = count
            count.hits += 1
        return Verdict(Outcome.OK, *self._counters(counts, windows, now, 0))

    def _current(self, key: str, now: float) -> _Count | None:
        count = self._counts.get(key)
        if count is not None and count.expires <= now:
            del self._counts[key]
            return None
        return count

    @staticmethod
    def _counters(
        counts: list[_Count | None], windows: tuple[Window, Window], now: float, _: int
    ) -> tuple[Counter, Counter]:
        def one(count: _Count | None, window: Window) -> Counter:
            hits = count.hits if count else 0
            reset_ms = int((count.expires - now) * 1000) if count else window.seconds * 1000
            return Counter(window.limit, max(window.limit - hits, 0), reset_ms, window.seconds)

        return one(counts[0], windows[0]), one(counts[1], windows[1])

    async def put_tenant(self, tag: str, state: TenantState) -> None:
        self._tenants[tag] = state

    async def revoke_token(self, tag: str, jti: str, ttl_seconds: int) -> None:
        self._revoked[(tag, jti)] = time.monotonic() + ttl_seconds

    async def set_subject_revision(
        self, tag: str, subject: str, revision: int, ttl_seconds: int
    ) -> None:
        self._revisions[(tag, subject)] = (revision, time.monotonic() + ttl_seconds)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
