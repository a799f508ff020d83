"""The tenant's OAuth2 clients: integrators' credentials for the client_credentials grant."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Request, Response, Security

from api.deps import DatabaseDep, GuardDep, SettingsDep
from api.errors import NO_STORE
from api.routers.tenants import tenant_router
from api.schemas.clients import (
    ClientCreate,
    ClientCreated,
    ClientList,
    ClientOut,
    ClientSecretOut,
    ClientUpdate,
)
from api.schemas.common import Problem
from api.schemas.pages import DEFAULT_LIMIT, CursorQuery, LimitQuery, next_cursor
from auth import clients as client_auth
from auth.principal import CLIENT_SUBJECT_PREFIX, CurrentPrincipal
from policies import audit, client_rules
from policies.authorize import require_scopes
from policies.guard_sync import cut_off_subject
from policies.tenancy import CurrentTenant
from storage import clients as client_rows
from storage.clients import ClientRecord

router = tenant_router("/clients", tags=["clients"], read_scopes=["clients:read"])
WRITE = [Security(require_scopes, scopes=["clients:write"])]
# Above every real revision (milliseconds): all tokens of a deleted client fall below it.
# 2**53 - 1 stays exact as a Lua number in the Redis guard script.
DELETED_REVISION = 2**53 - 1

ClientId = Annotated[str, Path(max_length=60, description="The client_id")]
Responses = dict[int | str, dict[str, Any]]
UNKNOWN: Responses = {404: {"model": Problem, "description": "Unknown tenant or client"}}
ESCALATION: Responses = {
    403: {
        "model": Problem,
        "description": "Insufficient scope; a scope the caller lacks (privilege escalation); "
        "a client managing itself; or the tenant is suspended",
    }
}


def _out(record: ClientRecord) -> ClientOut:
    return ClientOut(
        client_id=record.client_id,
        name=record.name,
        description=record.description,
        scopes=sorted(record.scopes),
        rate_limit=record.rate_limit,
        created_by=record.created_by,
        created_at=record.created_at,
        last_used_at=record.last_used_at,
    )


@router.post(
    "",
    status_code=201,
    dependencies=WRITE,
    summary="Create a client; its secret is in this response only",
    responses={
        **ESCALATION,
        409: {"model": Problem, "description": "The tenant's plan allows no more clients"},
    },
)
async def create_client(
    body: ClientCreate,
    request: Request,
    tenant: CurrentTenant,
    principal: CurrentPrincipal,
    database: DatabaseDep,
    response: Response,
) -> ClientCreated:
    # Nobody hands out more than they hold: the ceiling is the creator's token, not their role.
    client_rules.require_grantable(principal.scopes, frozenset(body.scopes))
    async with database.write() as connection:
        await client_rules.require_room(connection, tenant.slug)
        record, secret = await client_auth.create_client(
            connection,
            tenant=tenant.slug,
            name=body.name,
            description=body.description,
            scopes=frozenset(body.scopes),
            created_by=principal.subject,
        )
        await audit.record(
            connection,
            request,
            audit.Action.CLIENT_CREATED,
            tenant=tenant.slug,
            target=f"client:{record.client_id}",
            scopes=record.scopes,
            details={"name": record.name},
        )
    response.headers.update(NO_STORE)
    response.headers["Location"] = f"/v1/tenants/{tenant.slug}/clients/{record.client_id}"
    return ClientCreated(**_out(record).model_dump(), client_secret=secret)


@router.get("", summary="List the tenant's clients, oldest first (never their secrets)")
async def list_clients(
    tenant: CurrentTenant,
    database: DatabaseDep,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> ClientList:
    async with database.read() as connection:
        records = await client_rows.list_clients(
            connection, tenant.slug, after=cursor, limit=limit + 1
        )
    return ClientList(
        clients=[_out(r) for r in records[:limit]],
        next_cursor=next_cursor([r.client_id for r in records], limit),
    )


@router.get("/{client_id}", summary="One client (never its secret)", responses=UNKNOWN)
async def get_client(
    client_id: ClientId, tenant: CurrentTenant, database: DatabaseDep
) -> ClientOut:
    async with database.read() as connection:
        return _out(await client_rows.get_client(connection, tenant.slug, client_id))


@router.patch(
    "/{client_id}",
    dependencies=WRITE,
    summary="Rename, describe, change the scopes or the rate limit of a client (narrowing the "
    "scopes stops its existing tokens)",
    responses={
        **UNKNOWN,
        **ESCALATION,
        422: {"model": Problem, "description": "Invalid body, or a rate limit beyond the plan"},
    },
)
async def update_client(
    body: ClientUpdate,
    request: Request,
    client_id: ClientId,
    tenant: CurrentTenant,
    principal: CurrentPrincipal,
    database: DatabaseDep,
    guard: GuardDep,
    settings: SettingsDep,
) -> ClientOut:
    async with database.write() as connection:
        change = await client_rules.change_client(
            connection,
            guard,
            principal,
            tenant.slug,
            client_id,
            body.changes(),
            token_ttl=settings.access_token_ttl,
        )
        if change.fields:
            await audit.record(
                connection,
                request,
                audit.Action.CLIENT_UPDATED,
                tenant=tenant.slug,
                target=f"client:{client_id}",
                scopes=change.after.scopes,
                details={**change.fields, "tokens_cut_off": change.tokens_cut_off},
            )
    return _out(change.after)


@router.delete(
    "/{client_id}",
    status_code=204,
    dependencies=WRITE,
    responses=UNKNOWN,
    summary="Delete a client; its tokens stop working on their next request",
)
async def delete_client(
    request: Request,
    client_id: ClientId,
    tenant: CurrentTenant,
    database: DatabaseDep,
    guard: GuardDep,
    settings: SettingsDep,
) -> Response:
    async with database.write() as connection:
        await client_rows.delete_client(connection, tenant.slug, client_id)
        target = f"client:{client_id}"
        await audit.record(
            connection, request, audit.Action.CLIENT_REVOKED, tenant=tenant.slug, target=target
        )
        await cut_off_subject(
            connection,
            guard,
            tenant.slug,
            CLIENT_SUBJECT_PREFIX + client_id,
            DELETED_REVISION,
            settings.access_token_ttl,
        )
    return Response(status_code=204)


@router.post(
    "/{client_id}/secret",
    dependencies=WRITE,
    summary="Rotate the secret: the old one and the tokens it obtained stop working",
    responses={**UNKNOWN, **ESCALATION},
)
async def rotate_secret(
    request: Request,
    client_id: ClientId,
    tenant: CurrentTenant,
    principal: CurrentPrincipal,
    database: DatabaseDep,
    guard: GuardDep,
    settings: SettingsDep,
    response: Response,
) -> ClientSecretOut:
    # A client renewing itself would turn a stolen token into a secret that outlives it.
    client_rules.require_not_itself(principal, client_id, "rotate the secret of")
    async with database.write() as connection:
        # The new secret carries the client's whole power: only a caller holding it may ask.
        current = await client_rows.lock_client(connection, tenant.slug, client_id)
        client_rules.require_grantable(principal.scopes, current.scopes)
        secret, revision = await client_auth.rotate_secret(connection, tenant.slug, client_id)
        await audit.record(
            connection,
            request,
            audit.Action.CLIENT_SECRET_ROTATED,
            tenant=tenant.slug,
            target=f"client:{client_id}",
        )
        # A rotation usually means the secret may have leaked: tokens obtained with it go too.
        await cut_off_subject(
            connection,
            guard,
            tenant.slug,
            CLIENT_SUBJECT_PREFIX + client_id,
            revision,
            settings.access_token_ttl,
        )
    response.headers.update(NO_STORE)
    return ClientSecretOut(client_id=client_id, client_secret=secret)
