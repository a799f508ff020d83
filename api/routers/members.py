"""Tenant members: `members:read`, writes `members:write`; rules in policies/membership.py."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Request, Response, Security

from api.deps import DatabaseDep, GuardDep, PasswordsDep, SettingsDep
from api.routers.tenants import tenant_router
from api.schemas.common import Problem
from api.schemas.members import MemberCreate, MemberCreated, MemberOut, MemberPage, MemberUpdate
from api.schemas.pages import DEFAULT_LIMIT, CursorQuery, LimitQuery, next_cursor
from auth.principal import CurrentPrincipal
from policies import audit, membership
from policies.authorize import require_scopes
from policies.roles import role_scopes
from policies.tenancy import CurrentTenant
from storage import members
from storage.members import Member

router = tenant_router(
    "/members",
    tags=["members"],
    read_scopes=["members:read"],
    responses={
        403: {
            "model": Problem,
            "description": "Insufficient scope, privilege escalation refused, or tenant suspended",
        },
    },
)
WRITE = [Security(require_scopes, scopes=["members:write"])]
Responses = dict[int | str, dict[str, Any]]
UNKNOWN_MEMBER: Responses = {404: {"model": Problem, "description": "Unknown tenant or member"}}
LAST_OWNER: Responses = {
    409: {"model": Problem, "description": "The tenant's last owner must stay"}
}

UserId = Annotated[str, Path(max_length=40, description="The member's user id")]


def _out(member: Member) -> MemberOut:
    return MemberOut(
        user_id=member.user_id, email=member.email, role=member.role, created_at=member.created_at
    )


@router.get("", summary="List the tenant's members")
async def list_members(
    tenant: CurrentTenant,
    database: DatabaseDep,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> MemberPage:
    async with database.read() as connection:
        rows = await members.list_members(connection, tenant.slug, after=cursor, limit=limit + 1)
    return MemberPage(
        items=[_out(row) for row in rows[:limit]],
        next_cursor=next_cursor([row.user_id for row in rows], limit),
    )


@router.get("/{user_id}", summary="Read one member", responses=UNKNOWN_MEMBER)
async def get_member(tenant: CurrentTenant, user_id: UserId, database: DatabaseDep) -> MemberOut:
    async with database.read() as connection:
        return _out(await members.get_member(connection, tenant.slug, user_id))


@router.post(
    "",
    status_code=201,
    dependencies=WRITE,
    summary="Add a user by email, inviting them with a one-time password if they are new",
    responses={409: {"model": Problem, "description": "Already a member"}},
)
async def add_member(
    body: MemberCreate,
    request: Request,
    response: Response,
    tenant: CurrentTenant,
    principal: CurrentPrincipal,
    database: DatabaseDep,
    passwords: PasswordsDep,
) -> MemberCreated:
    # Refuse an escalation before paying for a password hash.
    membership.require_holds(principal.scopes, body.role)
    invitation = await membership.prepare_invitation(database, passwords, body.email)
    async with database.write() as connection:
        added = await membership.add_member(
            connection, tenant.slug, principal.scopes, body.role, invitation
        )
        await audit.record(
            connection,
            request,
            audit.Action.MEMBER_ADDED,
            tenant=tenant.slug,
            target=f"user:{added.member.user_id}",
            scopes=role_scopes(body.role),
            details={"role": body.role, "invited": added.initial_password is not None},
        )
    response.headers["Location"] = f"{request.url.path}/{added.member.user_id}"
    response.headers["Cache-Control"] = "no-store"
    return MemberCreated(**_out(added.member).model_dump(), initial_password=added.initial_password)


@router.patch(
    "/{user_id}",
    dependencies=WRITE,
    summary="Change a member's role (lowering it stops their existing tokens)",
    responses={**UNKNOWN_MEMBER, **LAST_OWNER},
)
async def change_role(
    request: Request,
    body: MemberUpdate,
    tenant: CurrentTenant,
    user_id: UserId,
    principal: CurrentPrincipal,
    database: DatabaseDep,
    store: GuardDep,
    settings: SettingsDep,
) -> MemberOut:
    async with database.write() as connection:
        before, member = await membership.change_role(
            connection,
            store,
            tenant.slug,
            principal.scopes,
            user_id,
            body.role,
            token_ttl=settings.access_token_ttl,
        )
        if member.role != before.role:
            await audit.record(
                connection,
                request,
                audit.Action.MEMBER_ROLE_CHANGED,
                tenant=tenant.slug,
                target=f"user:{user_id}",
                scopes=role_scopes(member.role),
                details={
                    "from": before.role,
                    "to": member.role,
                    "tokens_cut_off": membership.loses_scopes(before.role, member.role),
                },
            )
    return _out(member)


@router.delete(
    "/{user_id}",
    status_code=204,
    dependencies=WRITE,
    summary="Remove a member (their existing tokens and refresh tokens stop working)",
    responses={**UNKNOWN_MEMBER, **LAST_OWNER},
)
async def remove_member(
    request: Request,
    tenant: CurrentTenant,
    user_id: UserId,
    principal: CurrentPrincipal,
    database: DatabaseDep,
    store: GuardDep,
    settings: SettingsDep,
) -> Response:
    async with database.write() as connection:
        before = await membership.remove_member(
            connection,
            store,
            tenant.slug,
            principal.scopes,
            user_id,
            token_ttl=settings.access_token_ttl,
        )
        await audit.record(
            connection,
            request,
            audit.Action.MEMBER_REMOVED,
            tenant=tenant.slug,
            target=f"user:{user_id}",
            scopes=role_scopes(before.role),
            details={"role": before.role},
        )
    return Response(status_code=204)
