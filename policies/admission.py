"""Stages 1-3 share one trip to the guard store: revocation, tenant status and rate limits together.

`admit_tenant_request` guards the tenant router (after identity and tenant, before scopes);
`admit_principal` guards authenticated routes bound to no tenant (/v1/me, platform admin).
"""

from __future__ import annotations

import logging
from typing import cast

from starlette.requests import HTTPConnection

from auth.errors import InvalidToken
from auth.principal import CurrentPrincipal, Principal, authenticated
from policies.errors import GuardStateUnavailable, RateLimited, TenantSuspended
from policies.guard_sync import publish
from policies.tenancy import TenantStage
from storage.database import Database
from storage.guard_failover import FailoverGuardStore
from storage.guard_state import PLATFORM_TAG, Admission, GuardStore, Outcome, Verdict

log = logging.getLogger("tenantgate.guard")


def guard_store(request: HTTPConnection) -> GuardStore:
    return cast(GuardStore, request.app.state.guard)


async def _admit(request: HTTPConnection, principal: Principal, *, tenant: bool) -> Verdict:
    store = guard_store(request)
    claims = principal.claims
    admission = Admission(
        tag=claims.tenant or PLATFORM_TAG,
        jti=claims.jti,
        subject=claims.subject,
        revision=claims.revision,
        tenant=tenant,
    )
    verdict = await store.admit(admission)
    if verdict.outcome is Outcome.UNKNOWN_TENANT:
        # The store lost the tenant (new worker, Redis restarted, fallback reset when Redis
        # failed): publish it from the database once and ask again. Never for a warm tenant.
        seeded = await _reseed(request, store, admission.tag)
        verdict = await seeded.admit(admission)
    request.state.rate_limit = verdict
    if verdict.outcome is Outcome.REVOKED:
        raise InvalidToken("revoked")
    if verdict.outcome is Outcome.SUSPENDED:
        raise TenantSuspended()
    if verdict.outcome is Outcome.UNKNOWN_TENANT:
        log.error("tenant %s has a token but no row", admission.tag)
        raise TenantSuspended()
    if verdict.outcome is Outcome.LIMITED:
        assert verdict.principal is not None
        assert verdict.tenant is not None
        raise RateLimited((verdict.principal, verdict.tenant))
    return verdict


async def _reseed(request: HTTPConnection, store: GuardStore, tag: str) -> GuardStore:
    """Publish `tag` from the database; returns the store to ask again (while Redis fails,
    this process's own, so the request does not wait for Redis a second time)."""
    database = cast(Database, request.app.state.database)
    async with database.read() as connection:
        if not isinstance(store, FailoverGuardStore):
            await publish(connection, store, tag)
            return store
        target = store.seeding_target()
        try:
            await publish(connection, target, tag)
        except GuardStateUnavailable:
            # Redis failed while being seeded: serve this request from the process's own
            # store, seeded from the same rows.
            target = store.fallback
            await publish(connection, target, tag)
        return target


async def admit_tenant_request(request: HTTPConnection, _tenant: TenantStage) -> None:
    # The tenant stage ran identity first; its principal is this request's.
    await _admit(request, authenticated(request), tenant=True)


async def admit_principal(request: HTTPConnection, principal: CurrentPrincipal) -> None:
    await _admit(request, principal, tenant=False)
