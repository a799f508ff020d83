"""Plans are data: the rate limits each tenant plan buys, in slowapi's limit-string syntax,
and how many OAuth2 clients a tenant may register.

`limits` (the engine under slowapi) parses the strings; counting is done by the guard store.
Deployments may override or add plans with TENANTGATE_PLAN_LIMITS (JSON); `configure_plans` is
called once by create_app, so the table is per process, like the settings it comes from.
"""

from collections.abc import Mapping
from functools import lru_cache
from typing import Final

from limits import RateLimitItem, parse

from storage.guard_state import Window

PLANS: Final[dict[str, dict[str, str]]] = {
    # per (tenant, principal), and per tenant in total; at most this many OAuth2 clients
    "free": {"principal": "60/minute", "tenant": "300/minute", "clients": "5"},
    "pro": {"principal": "600/minute", "tenant": "3000/minute", "clients": "50"},
    "enterprise": {"principal": "3000/minute", "tenant": "20000/minute", "clients": "500"},
}
DEFAULT_PLAN: Final = "free"
COUNTERS: Final = ("principal", "tenant")
CLIENTS: Final = "clients"  # optional in an added plan: the default plan's cap then applies


@lru_cache(maxsize=256)
def window(limit: str) -> Window:
    """'100/minute' -> Window(100, 60); raises ValueError on a malformed string."""
    item: RateLimitItem = parse(limit)
    return Window(item.amount, item.get_expiry())


class PlanTable:
    def __init__(self) -> None:
        self._windows: dict[str, tuple[Window, Window]] = {}
        self._client_caps: dict[str, int] = {}
        self.configure({})

    def configure(self, overrides: Mapping[str, Mapping[str, str]]) -> None:
        """PLANS with `overrides` on top; raises ValueError naming the first bad entry."""
        merged = {name: dict(limits) for name, limits in PLANS.items()}
        for name, limits in overrides.items():
            unknown = set(limits) - {*COUNTERS, CLIENTS}
            if unknown:
                raise ValueError(f"plan {name!r}: unknown counter(s) {sorted(unknown)}")
            merged.setdefault(name, {}).update(limits)
        windows: dict[str, tuple[Window, Window]] = {}
        caps: dict[str, int] = {}
        default_cap = merged[DEFAULT_PLAN][CLIENTS]
        for name, limits in merged.items():
            missing = [counter for counter in COUNTERS if counter not in limits]
            if missing:
                raise ValueError(f"plan {name!r}: missing {', '.join(missing)} limit")
            try:
                windows[name] = (window(limits["principal"]), window(limits["tenant"]))
            except ValueError as error:
                raise ValueError(f"plan {name!r}: {error}") from None
            caps[name] = _cap(name, limits.get(CLIENTS, default_cap))
        self._windows = windows
        self._client_caps = caps

    def names(self) -> tuple[str, ...]:
        return tuple(self._windows)

    def windows(self, plan: str) -> tuple[Window, Window]:
        return self._windows.get(plan, self._windows[DEFAULT_PLAN])

    def client_cap(self, plan: str) -> int:
        return self._client_caps.get(plan, self._client_caps[DEFAULT_PLAN])


def _cap(plan: str, value: str) -> int:
    if not value.isdigit():
        raise ValueError(f"plan {plan!r}: {CLIENTS} must be a whole number, not {value!r}")
    return int(value)


_TABLE: Final = PlanTable()


def configure_plans(overrides: Mapping[str, Mapping[str, str]]) -> None:
    _TABLE.configure(overrides)


def known_plans() -> tuple[str, ...]:
    """The built-in plans and those TENANTGATE_PLAN_LIMITS adds, as configured in this process."""
    return _TABLE.names()


def plan_windows(plan: str) -> tuple[Window, Window]:
    """(per principal, per tenant) windows of `plan`; unknown plans get the default plan's."""
    return _TABLE.windows(plan)


def plan_client_cap(plan: str) -> int:
    """How many OAuth2 clients a tenant on `plan` may hold; unknown plans get the default's."""
    return _TABLE.client_cap(plan)


def within(override: Window, ceiling: Window) -> bool:
    """An override stays within a plan's window: no larger burst and no higher average rate
    (so "30/minute" fits "60/minute", while "3600/hour" and "2/second" do not)."""
    return (
        override.limit <= ceiling.limit
        and override.limit * ceiling.seconds <= ceiling.limit * override.seconds
    )
