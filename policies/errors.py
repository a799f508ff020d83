"""Policy errors (tenant, rate limit, scopes): mapped to responses by api/errors.py."""

from __future__ import annotations

from storage.errors import Conflict, DomainError
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


class ClientLimitReached(Conflict):
    """The tenant holds as many OAuth2 clients as its plan allows."""

    def __init__(self, plan: str, limit: int) -> None:
        super().__init__(
            f"the {plan} plan allows {limit} clients; delete one or move to a larger plan"
        )
        self.plan = plan
        self.limit = limit


class RateLimitBeyondPlan(DomainError):
    """A per-client rate limit that would exceed the tenant plan's per-principal limit."""

    def __init__(self, requested: str, plan: str, ceiling: str) -> None:
        super().__init__(
            f"{requested} exceeds the {plan} plan's per-principal limit of {ceiling}: a client "
            "limit may lower it, not raise it (no larger burst, no higher average rate)"
        )
        self.plan = plan
        self.ceiling = ceiling


class SelfManagementRefused(DomainError):
    """A client tried to renew its own secret or set its own rate limit."""
