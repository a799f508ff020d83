"""Membership rules (no escalation, an owner remains) and the changes that obey them.

Rules are plain functions of scopes and roles. The changes run inside the caller's write
transaction and, when a member loses scopes, cut off the member's existing tokens through the
guard store in the same transaction, so every worker refuses them on their next request.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace

from sqlalchemy.ext.asyncio import AsyncConnection

from auth.passwords import Passwords
from policies.errors import LastOwner, PrivilegeEscalation
from policies.guard_sync import cut_off_subject
from policies.roles import role_scopes
from storage import accounts, members
from storage.database import Database
from storage.errors import Conflict
from storage.guard_state import GuardStore
from storage.members import Member

OWNER = "owner"


def require_holds(actor_scopes: frozenset[str], role: str) -> None:
    """The actor's token holds every scope of `role` (to grant it, or to touch a member with it)."""
    missing = role_scopes(role) - actor_scopes
    if missing:
        raise PrivilegeEscalation(missing)


def require_an_owner_remains(current_role: str, new_role: str | None, owners: int) -> None:
    """`new_role` None means removal; the tenant's last owner can be neither removed nor demoted."""
    if current_role == OWNER and new_role != OWNER and owners <= 1:
        raise LastOwner("the tenant's last owner cannot be removed or demoted")


def loses_scopes(old_role: str, new_role: str) -> bool:
    """Roles are not a ladder (auditor vs member): lowering means losing any scope."""
    return not role_scopes(old_role) <= role_scopes(new_role)


def next_revision(previous: int) -> int:
    """Milliseconds now, but always after `previous` (clocks of two workers may disagree)."""
    return max(accounts.now_ms(), previous + 1)


@dataclass(frozen=True, slots=True)
class Invitation:
    """A user to add by email; a one-time password is ready in case the email is unknown."""

    email: str
    password: str | None = None
    password_hash: str | None = None


@dataclass(frozen=True, slots=True)
class Added:
    member: Member
    initial_password: str | None


async def prepare_invitation(database: Database, passwords: Passwords, email: str) -> Invitation:
    """Hash a one-time password before the write transaction, if the user looks new."""
    async with database.read() as connection:
        if await accounts.user_id_by_email(connection, email) is not None:
            return Invitation(email)
    password = secrets.token_urlsafe(18)
    return Invitation(email, password, await passwords.hash(password))


async def enrol(
    connection: AsyncConnection, tenant: str, role: str, invitation: Invitation
) -> Added:
    """Make the invited user a member, creating the user when the email is unknown."""
    user_id = await accounts.user_id_by_email(connection, invitation.email)
    initial_password = None
    if user_id is None:
        if invitation.password_hash is None:
            raise Conflict("the user changed while being added; retry")
        user_id = await accounts.create_user(
            connection, invitation.email, invitation.password_hash, must_change_password=True
        )
        initial_password = invitation.password
    # A re-invited former member starts at or above the cut-off that stopped their old tokens.
    cutoff = await members.subject_cutoff(connection, tenant, user_id)
    revision = max(accounts.now_ms(), cutoff)
    await accounts.add_member(connection, tenant, user_id, role, revision=revision)
    return Added(await members.get_member(connection, tenant, user_id), initial_password)


async def add_member(
    connection: AsyncConnection,
    tenant: str,
    actor_scopes: frozenset[str],
    role: str,
    invitation: Invitation,
) -> Added:
    await members.lock_tenant(connection, tenant)
    require_holds(actor_scopes, role)
    return await enrol(connection, tenant, role, invitation)


async def change_role(
    connection: AsyncConnection,
    store: GuardStore,
    tenant: str,
    actor_scopes: frozenset[str],
    user_id: str,
    role: str,
    *,
    token_ttl: int,
) -> tuple[Member, Member]:
    """(before, after) of the membership, read under the tenant's lock."""
    await members.lock_tenant(connection, tenant)
    member = await members.get_member(connection, tenant, user_id)
    require_holds(actor_scopes, member.role)
    require_holds(actor_scopes, role)
    if role == member.role:
        return member, member
    require_an_owner_remains(member.role, role, await members.count_role(connection, tenant, OWNER))
    revision = next_revision(member.revision)
    await members.set_role(connection, tenant, user_id, role, revision)
    if loses_scopes(member.role, role):
        # Gaining scopes needs no cut-off: old tokens keep their old, smaller scope set.
        await cut_off_subject(connection, store, tenant, user_id, revision, token_ttl)
    return member, replace(member, role=role, revision=revision)


async def remove_member(
    connection: AsyncConnection,
    store: GuardStore,
    tenant: str,
    actor_scopes: frozenset[str],
    user_id: str,
    *,
    token_ttl: int,
) -> Member:
    """Remove the membership (read under the tenant's lock) and return it as it was."""
    await members.lock_tenant(connection, tenant)
    member = await members.get_member(connection, tenant, user_id)
    require_holds(actor_scopes, member.role)
    require_an_owner_remains(member.role, None, await members.count_role(connection, tenant, OWNER))
    await members.delete_member(connection, tenant, user_id)
    await members.revoke_member_sessions(connection, tenant, user_id)
    revision = next_revision(member.revision)
    await cut_off_subject(connection, store, tenant, user_id, revision, token_ttl)
    return member
