"""Access evaluation: may this principal call this route, and if not, why (Keycloak's Evaluate).

Computed from the same pieces that guard every request, never from a second copy of the rules:
the route and its required scopes as the router matches and FastAPI resolves them
(policies/access_matrix.py), the scopes a token of the principal carries (its role's, or the
client's, as /token grants them), the tenant decision and the scope decision of the guard
(policies/decisions.py), and the tenant state the guard store is seeded with
(policies/guard_sync.py). Reasons come in the order the stages run; the first is what a live
request gets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.routing import BaseRoute

from auth.grants import grantable_scopes
from auth.principal import CLIENT_SUBJECT_PREFIX
from policies.access_matrix import RouteMatch, match_route
from policies.decisions import in_tenant, missing_scopes
from policies.guard_sync import load_tenant_state
from policies.roles import role_scopes
from storage import standing
from storage.errors import NotFound


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    stage: str  # route, identity, tenant, admission, scope
    status: int  # what the live request answers at that stage
    detail: str


@dataclass(frozen=True, slots=True)
class Holder:
    """What a token of the principal would carry, and what would stop it, stage by stage."""

    scopes: frozenset[str]
    role: str | None = None
    no_token: Reason | None = None  # identity: no token can be had at all
    revoked: Reason | None = None  # admission: the principal's tokens are cut off
    no_scope: Reason | None = None  # scope: why the token carries no scope


@dataclass(frozen=True, slots=True)
class Evaluation:
    principal: str
    route: str | None
    required_scopes: frozenset[str]
    granted_scopes: frozenset[str]
    missing_scopes: frozenset[str]
    role: str | None
    reasons: list[Reason] = field(default_factory=list)

    @property
    def allowed(self) -> bool:
        return not self.reasons


class PrincipalNotFound(NotFound):
    """Unknown here: no such user or client, or one that never belonged to this tenant."""

    def __init__(self) -> None:
        super().__init__("principal")


async def holder(connection: AsyncConnection, tenant: str, principal: str) -> Holder:
    """The principal as this tenant knows it (a user id, or `client:<client_id>`)."""
    if principal.startswith(CLIENT_SUBJECT_PREFIX):
        client_id = principal.removeprefix(CLIENT_SUBJECT_PREFIX)
        client = await standing.client_standing(connection, tenant, client_id)
        if client is None:
            raise PrincipalNotFound()
        if client.scopes is None:
            detail = "the client was deleted: its tokens are cut off, its secret is gone"
            return Holder(frozenset(), revoked=Reason("client_revoked", "admission", 401, detail))
        return Holder(client.scopes)
    user = await standing.user_standing(connection, tenant, principal)
    if user is None:
        raise PrincipalNotFound()
    no_token = None
    if not user.active:
        no_token = Reason("user_inactive", "identity", 401, "the account is deactivated: no token")
    if user.role is None:
        detail = "the user is no longer a member: their tokens are cut off"
        removed = Reason("membership_removed", "admission", 401, detail)
        return Holder(frozenset(), no_token=no_token, revoked=removed)
    one_time = user.one_time_password
    scopes = grantable_scopes(role_scopes(user.role), must_change_password=one_time)
    no_scope = None
    if one_time:
        detail = "the user still signs in with a one-time password: their token has no scope"
        no_scope = Reason("one_time_password", "scope", 403, detail)
    return Holder(scopes, user.role, no_token=no_token, no_scope=no_scope)


async def evaluate(
    connection: AsyncConnection,
    routes: Sequence[BaseRoute],
    tenant: str,
    principal: str,
    method: str,
    path: str,
) -> Evaluation:
    """The answer the guard gives `principal`'s token (as it would be issued now) on a route."""
    who = await holder(connection, tenant, principal)
    match = match_route(routes, method, path.split("?", 1)[0], tenant)
    reasons = _route_reasons(match)
    required: frozenset[str] = frozenset()
    if match is not None and match.access is not None and match.access.authenticated:
        access = match.access
        required = access.scopes
        reasons += [who.no_token] if who.no_token else []
        if access.tenant_bound and (
            match.path_tenant is None or not in_tenant(tenant, match.path_tenant)
        ):
            detail = f"the path's tenant is not {tenant}, the principal's: answered as unknown"
            reasons.append(Reason("tenant_mismatch", "tenant", 404, detail))
        if access.admitted and who.revoked:
            reasons.append(who.revoked)
        if access.tenant_admitted:
            state = await load_tenant_state(connection, tenant)
            if state is None or not state.active:
                detail = f"the tenant {tenant} is suspended"
                reasons.append(Reason("tenant_suspended", "admission", 403, detail))
        missing = missing_scopes(required, who.scopes) if required else frozenset()
        if missing:
            reasons += [who.no_scope] if who.no_scope else []
            detail = "the route needs " + " ".join(sorted(missing)) + ", which it lacks"
            reasons.append(Reason("missing_scope", "scope", 403, detail))
    return Evaluation(
        principal=principal,
        route=match.label if match is not None else None,
        required_scopes=required,
        granted_scopes=who.scopes,
        missing_scopes=required - who.scopes,
        role=who.role,
        reasons=reasons,
    )


def _route_reasons(match: RouteMatch | None) -> list[Reason]:
    if match is None:
        return [Reason("no_route", "route", 404, "no route has this path")]
    if match.access is None:
        return [Reason("method_not_allowed", "route", 405, "the path has no route for this method")]
    return []
