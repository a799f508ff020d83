"""Policy errors (tenant, rate limit, scopes): mapped to responses by api/errors.py."""

from __future__ import annotations

from storage.errors import DomainError
from storage.guard_state import Counter


class TenantNotFound(DomainError):
    """Unknown tenant, or one the caller does not belong to: the two must read the same."""


class TenantSuspended(DomainError):
    """The tenant exists and the caller belongs to it, but it is suspended."""


class InsufficientScope(DomainError):
    def __init__(self, required: frozenset[str]) -> None:
        super().__init__(" ".join(sorted(required)))
        self.required = required


class RateLimited(DomainError):
    def __init__(self, counters: tuple[Counter, ...], names: tuple[str, ...] = ()) -> None:
        super().__init__("rate limit exceeded")
        self.counters = counters
        self.names = names  # of the counters, for the audit trail (admission's are implied)

    @property
    def retry_after(self) -> int:
        exhausted = [c.reset_ms for c in self.counters if c.remaining == 0]
        return max(1, -(-max(exhausted, default=1000) // 1000))


class GuardStateUnavailable(DomainError):
    """A security change could not be shared with the other workers; nothing was changed."""


class PrivilegeEscalation(InsufficientScope):
    """Granting, or changing a member holding, scopes the caller's own token does not hold."""


class LastOwner(DomainError):
    """The change would leave the tenant without an owner."""


class PasswordRejected(DomainError):
    """A password change was refused (wrong current password, or an unusable new one)."""
