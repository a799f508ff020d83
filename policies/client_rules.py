"""Client administration rules, and the changes that obey them.

- A tenant holds at most as many clients as its plan allows (policies/plans.py).
- Nobody hands out more than they hold: a new or changed client gets no scope the caller's token
  lacks, and only a caller holding every scope of a client may change it or renew its secret
  (renewing hands over the client's whole power).
- A client cannot renew its own secret or set its own rate limit: a leaked client token must not
  become a credential of its own that outlives revoking that token.

Changes run in the caller's write transaction. Narrowing a client's scopes cuts off its existing
tokens and a new rate limit is published to the guard store, both before the commit, so either
holds on the next request in every worker (as a member's downgrade does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from auth.principal import CLIENT_SUBJECT_PREFIX, Principal
from policies.errors import (
    ClientLimitReached,
    InsufficientScope,
    RateLimitBeyondPlan,
    SelfManagementRefused,
)
from policies.guard_sync import cut_off_subject, publish
from policies.membership import next_revision
from policies.plans import plan_client_cap, plan_windows, window, within
from storage import clients as client_rows
from storage import members, tenants
from storage.clients import ClientRecord
from storage.guard_state import GuardStore

UPDATABLE = frozenset({"name", "description", "scopes", "rate_limit"})


def require_grantable(actor_scopes: frozenset[str], scopes: frozenset[str]) -> None:
    """The caller's token holds every scope it is about to give (or touch) a client: a 403
    naming the missing scopes, as a client's creation has always answered."""
    beyond = scopes - actor_scopes
    if beyond:
        raise InsufficientScope(beyond)


def require_not_itself(actor: Principal, client_id: str, what: str) -> None:
    if actor.subject == CLIENT_SUBJECT_PREFIX + client_id:
        raise SelfManagementRefused(
            f"a client cannot {what} itself; a user with clients:write of this tenant can"
        )


async def require_room(connection: AsyncConnection, tenant: str) -> None:
    """Under the tenant's lock, so two creations cannot both take the last place."""
    await members.lock_tenant(connection, tenant)
    plan = (await tenants.get_tenant(connection, tenant)).plan
    cap = plan_client_cap(plan)
    if await client_rows.count_clients(connection, tenant) >= cap:
        raise ClientLimitReached(plan, cap)


async def checked_rate_limit(connection: AsyncConnection, tenant: str, limit: str) -> str:
    """`limit` ("30/minute"), if it stays within the tenant plan's per-principal limit."""
    plan = (await tenants.get_tenant(connection, tenant)).plan
    ceiling = plan_windows(plan)[0]
    if not within(window(limit), ceiling):
        raise RateLimitBeyondPlan(limit, plan, f"{ceiling.limit} per {ceiling.seconds} s")
    return limit


@dataclass(frozen=True, slots=True)
class Change:
    before: ClientRecord
    after: ClientRecord
    tokens_cut_off: bool

    @property
    def fields(self) -> dict[str, dict[str, Any]]:
        """What changed, as {"field": {"from": ..., "to": ...}} (scopes as sorted lists)."""
        changed: dict[str, dict[str, Any]] = {}
        for name in sorted(UPDATABLE):
            old, new = getattr(self.before, name), getattr(self.after, name)
            if old != new:
                if name == "scopes":
                    old, new = sorted(old), sorted(new)
                changed[name] = {"from": old, "to": new}
        return changed


async def change_client(
    connection: AsyncConnection,
    store: GuardStore,
    actor: Principal,
    tenant: str,
    client_id: str,
    changes: dict[str, Any],
    *,
    token_ttl: int,
) -> Change:
    """Apply `changes` (a subset of UPDATABLE; rate_limit None removes the override)."""
    unknown = set(changes) - UPDATABLE
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    before = await client_rows.lock_client(connection, tenant, client_id)
    require_grantable(actor.scopes, before.scopes)
    values = dict(changes)
    if "scopes" in values:
        values["scopes"] = frozenset(values["scopes"])
        require_grantable(actor.scopes, values["scopes"])
    new_limit = values.get("rate_limit", before.rate_limit)
    if new_limit != before.rate_limit:
        require_not_itself(actor, client_id, "change the rate limit of")
        if new_limit is not None:
            values["rate_limit"] = await checked_rate_limit(connection, tenant, new_limit)
    narrowed = "scopes" in values and not before.scopes <= values["scopes"]
    if narrowed:
        # Gaining scopes needs no cut-off: existing tokens keep their old, smaller scope set.
        values["revision"] = next_revision(before.revision)
    after = await client_rows.update_client(connection, before, values)
    if narrowed:
        subject = CLIENT_SUBJECT_PREFIX + client_id
        await cut_off_subject(connection, store, tenant, subject, after.revision, token_ttl)
    if after.rate_limit != before.rate_limit:
        await publish(connection, store, tenant)
    return Change(before, after, narrowed)
