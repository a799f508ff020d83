"""POST /v1/me/password: a user replaces their password (e.g. the one-time one of an invitation)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from api.deps import DatabaseDep, PasswordsDep
from api.responses import GUARDED_RESPONSES
from api.schemas.account import PasswordChange
from api.schemas.common import Problem
from auth.passwords import PasswordTooLong
from auth.principal import CurrentPrincipal
from policies import audit
from policies.attempt_limits import limit_password_change
from policies.errors import PasswordRejected
from policies.guard import principal_guard
from storage import accounts
from storage.audit import EventOutcome

router = APIRouter(
    prefix="/v1",
    tags=["identity"],
    dependencies=[Depends(principal_guard)],
    responses=GUARDED_RESPONSES,
)


@router.post(
    "/me/password",
    status_code=204,
    summary="Change the caller's password; every refresh token of the user is revoked",
    responses={
        400: {"model": Problem, "description": "Wrong current password"},
        429: {"model": Problem, "description": "Too many password change attempts"},
    },
)
async def change_password(
    request: Request,
    body: PasswordChange,
    principal: CurrentPrincipal,
    database: DatabaseDep,
    passwords: PasswordsDep,
) -> Response:
    if principal.kind != "user":
        raise PasswordRejected("only users have passwords")
    try:
        # Both, before any hashing: an over-long current password costs nothing either.
        passwords.check_length(body.current_password)
        passwords.check_length(body.new_password)
    except PasswordTooLong as error:
        raise PasswordRejected(str(error)) from None
    # A stolen access token must not become a way to guess the current password.
    await limit_password_change(request, principal.subject)
    target = f"user:{principal.subject}"
    async with database.read() as connection:
        stored = await accounts.password_hash_of(connection, principal.subject)
    try:
        valid, _ = await passwords.verify(body.current_password, stored)
        new_hash = await passwords.hash(body.new_password) if valid else None
    except PasswordTooLong as error:
        raise PasswordRejected(str(error)) from None
    if new_hash is None:
        async with database.write() as connection:
            await audit.record(
                connection,
                request,
                audit.Action.PASSWORD_CHANGE_REFUSED,
                tenant=principal.tenant,
                target=target,
                outcome=EventOutcome.FAILURE,
                details={"reason": "wrong_current_password"},
            )
        raise PasswordRejected("the current password is not correct")
    async with database.write() as connection:
        await accounts.set_password(connection, principal.subject, new_hash)
        # Whoever else holds a session made with the old password loses it at the next refresh.
        await accounts.revoke_user_sessions(connection, principal.subject)
        await audit.record(
            connection,
            request,
            audit.Action.PASSWORD_CHANGED,
            tenant=principal.tenant,
            target=target,
        )
    return Response(status_code=204)
