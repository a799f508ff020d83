"""Platform tenant administration (`platform:admin`): create, list, read and change tenants.

Every change republishes the tenant to the guard store inside its write transaction, so a
suspension or a plan change holds on the next request in every worker.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response, Security

from api.deps import DatabaseDep, GuardDep, PasswordsDep
from api.responses import GUARDED_RESPONSES
from api.schemas.common import Problem
from api.schemas.pages import DEFAULT_LIMIT, CursorQuery, LimitQuery, next_cursor
from api.schemas.tenants import (
    OwnerOut,
    TenantCreate,
    TenantCreated,
    TenantOut,
    TenantPage,
    TenantUpdate,
)
from policies import audit, membership
from policies.authorize import require_scopes
from policies.guard import principal_guard
from policies.guard_sync import publish
from policies.roles import role_scopes
from policies.scopes import PLATFORM_ADMIN
from storage import accounts, members, tenants
from storage.tenants import TenantRow

router = APIRouter(
    prefix="/v1/tenants",
    tags=["platform"],
    dependencies=[Depends(principal_guard), Security(require_scopes, scopes=[PLATFORM_ADMIN])],
    responses={
        **GUARDED_RESPONSES,
        403: {"model": Problem, "description": "The token lacks platform:admin"},
        404: {"model": Problem, "description": "No such tenant"},
    },
)

TenantSlug = Annotated[str, Path(description="Tenant slug", max_length=40)]


def _out(row: TenantRow) -> TenantOut:
    return TenantOut.model_validate(row, from_attributes=True)


@router.post(
    "",
    status_code=201,
    summary="Create a tenant, optionally with its first owner",
    responses={409: {"model": Problem, "description": "The slug is taken"}},
)
async def create_tenant(
    request: Request,
    body: TenantCreate,
    response: Response,
    database: DatabaseDep,
    store: GuardDep,
    passwords: PasswordsDep,
) -> TenantCreated:
    invitation = None
    if body.owner_email is not None:
        invitation = await membership.prepare_invitation(database, passwords, body.owner_email)
    owner = None
    async with database.write() as connection:
        await accounts.create_tenant(connection, body.slug, body.name, body.plan)
        await audit.record(
            connection,
            request,
            audit.Action.TENANT_CREATED,
            tenant=body.slug,
            target=f"tenant:{body.slug}",
            details={"name": body.name, "plan": body.plan},
        )
        if invitation is not None:
            added = await membership.enrol(connection, body.slug, membership.OWNER, invitation)
            await audit.record(
                connection,
                request,
                audit.Action.MEMBER_ADDED,
                tenant=body.slug,
                target=f"user:{added.member.user_id}",
                scopes=role_scopes(membership.OWNER),
                details={"role": membership.OWNER, "invited": added.initial_password is not None},
            )
            owner = OwnerOut(
                user_id=added.member.user_id,
                email=added.member.email,
                role=added.member.role,
                initial_password=added.initial_password,
            )
        await publish(connection, store, body.slug)
        row = await tenants.get_tenant(connection, body.slug)
    response.headers["Location"] = f"{router.prefix}/{body.slug}"
    response.headers["Cache-Control"] = "no-store"
    return TenantCreated(**_out(row).model_dump(), owner=owner)


@router.get("", summary="List tenants in slug order")
async def list_tenants(
    database: DatabaseDep, limit: LimitQuery = DEFAULT_LIMIT, cursor: CursorQuery = None
) -> TenantPage:
    async with database.read() as connection:
        rows = await tenants.list_tenants(connection, after=cursor, limit=limit + 1)
    return TenantPage(
        items=[_out(row) for row in rows[:limit]],
        next_cursor=next_cursor([row.slug for row in rows], limit),
    )


@router.get("/{tenant}", summary="Read one tenant")
async def get_tenant(tenant: TenantSlug, database: DatabaseDep) -> TenantOut:
    async with database.read() as connection:
        return _out(await tenants.get_tenant(connection, tenant))


@router.patch("/{tenant}", summary="Rename, change the plan, suspend or reactivate a tenant")
async def update_tenant(
    request: Request,
    tenant: TenantSlug,
    body: TenantUpdate,
    database: DatabaseDep,
    store: GuardDep,
) -> TenantOut:
    async with database.write() as connection:
        await members.lock_tenant(connection, tenant)  # the state before, for the audit trail
        before = await tenants.get_tenant(connection, tenant)
        row = await tenants.update_tenant(
            connection, tenant, name=body.name, plan=body.plan, status=body.status
        )
        await audit.record_tenant_change(connection, request, before, row)
        await publish(connection, store, tenant)
    return _out(row)
