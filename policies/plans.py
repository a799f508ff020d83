"""Plans are data: the rate limits each tenant plan buys, in slowapi's limit-string syntax."""

from typing import Final

from limits import RateLimitItem, parse

from storage.guard_state import Window

PLANS: Final[dict[str, dict[str, str]]] = {
    # per (tenant, principal), and per tenant in total
    "free": {"principal": "60/minute", "tenant": "300/minute"},
    "pro": {"principal": "600/minute", "tenant": "3000/minute"},
    "enterprise": {"principal": "3000/minute", "tenant": "20000/minute"},
}
DEFAULT_PLAN: Final = "free"


def window(limit: str) -> Window:
    """'100/minute' -> Window(100, 60); raises ValueError on a malformed string."""
    item: RateLimitItem = parse(limit)
    return Window(item.amount, item.get_expiry())


def plan_windows(plan: str) -> tuple[Window, Window]:
    limits = PLANS.get(plan, PLANS[DEFAULT_PLAN])
    return window(limits["principal"]), window(limits["tenant"])
