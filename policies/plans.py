"""Plans are data: the rate limits each tenant plan buys, in slowapi's limit-string syntax.

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
    # per (tenant, principal), and per tenant in total
    "free": {"principal": "60/minute", "tenant": "300/minute"},
    "pro": {"principal": "600/minute", "tenant": "3000/minute"},
    "enterprise": {"principal": "3000/minute", "tenant": "20000/minute"},
}
DEFAULT_PLAN: Final = "free"
COUNTERS: Final = ("principal", "tenant")


@lru_cache(maxsize=256)
def window(limit: str) -> Window:
    """'100/minute' -> Window(100, 60); raises ValueError on a malformed string."""
    item: RateLimitItem = parse(limit)
    return Window(item.amount, item.get_expiry())


class PlanTable:
    def __init__(self) -> None:
        self._windows: dict[str, tuple[Window, Window]] = {}
        self.configure({})

    def configure(self, overrides: Mapping[str, Mapping[str, str]]) -> None:
        """PLANS with `overrides` on top; raises ValueError naming the first bad entry."""
        merged = {name: dict(limits) for name, limits in PLANS.items()}
        for name, limits in overrides.items():
            unknown = set(limits) - set(COUNTERS)
            if unknown:
                raise ValueError(f"plan {name!r}: unknown counter(s) {sorted(unknown)}")
            merged.setdefault(name, {}).update(limits)
        windows: dict[str, tuple[Window, Window]] = {}
        for name, limits in merged.items():
            missing = [counter for counter in COUNTERS if counter not in limits]
            if missing:
                raise ValueError(f"plan {name!r}: missing {', '.join(missing)} limit")
            try:
                windows[name] = (window(limits["principal"]), window(limits["tenant"]))
            except ValueError as error:
                raise ValueError(f"plan {name!r}: {error}") from None
        self._windows = windows

    def names(self) -> tuple[str, ...]:
        return tuple(self._windows)

    def windows(self, plan: str) -> tuple[Window, Window]:
        return self._windows.get(plan, self._windows[DEFAULT_PLAN])


_TABLE: Final = PlanTable()


def configure_plans(overrides: Mapping[str, Mapping[str, str]]) -> None:
    _TABLE.configure(overrides)


def known_plans() -> tuple[str, ...]:
    """The built-in plans and those TENANTGATE_PLAN_LIMITS adds, as configured in this process."""
    return _TABLE.names()


def plan_windows(plan: str) -> tuple[Window, Window]:
    """(per principal, per tenant) windows of `plan`; unknown plans get the default plan's."""
    return _TABLE.windows(plan)
