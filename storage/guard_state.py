"""Shared state the guard path reads in one step: revocations, tenant status, rate-limit counters.

Every check of a guarded request is one call to `GuardStore.admit`: one Redis script call with
Redis, a few dict look-ups without. Writers record changes with the other methods.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol

# Tags that are not tenants start with "_", which a tenant slug cannot (policies/tenancy.py).
PLATFORM_TAG = "_platform"
LOGIN_TAG = "_login"


class Outcome(IntEnum):
    OK = 0
    REVOKED = 1
    UNKNOWN_TENANT = 2
    SUSPENDED = 3
    LIMITED = 4


@dataclass(frozen=True, slots=True)
class Window:
    limit: int
    seconds: int


@dataclass(frozen=True, slots=True)
class TenantState:
    """What the guard needs to know of a tenant, written whenever the tenant changes."""

    active: bool
    principal_window: Window
    tenant_window: Window
    overrides: dict[str, Window] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Admission:
    """One guarded request: `tenant` is None for routes bound to no tenant."""

    tag: str
    jti: str
    subject: str
    revision: int
    tenant: bool


@dataclass(frozen=True, slots=True)
class Counter:
    limit: int
    remaining: int
    reset_ms: int
    window: int


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    principal: Counter | None = None
    tenant: Counter | None = None


@dataclass(frozen=True, slots=True)
class Tally:
    """Result of counting one request against several fixed windows at once (`GuardStore.hit`)."""

    allowed: bool
    counters: tuple[Counter, ...]


class GuardStore(Protocol):
    async def admit(self, admission: Admission) -> Verdict: ...

    async def hit(self, tag: str, windows: Sequence[tuple[str, Window]]) -> Tally:
        """Count one request in every named window of `tag`, all or none: a request over any
        limit is not counted anywhere."""
        ...

    async def put_tenant(self, tag: str, state: TenantState) -> None: ...

    async def revoke_token(self, tag: str, jti: str, ttl_seconds: int) -> None: ...

    async def set_subject_revision(
        self, tag: str, subject: str, revision: int, ttl_seconds: int
    ) -> None: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...
