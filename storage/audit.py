"""Audit events, appended in the caller's transaction to a per-tenant SHA-256 hash chain.

Each event stores `seq` (1, 2, ... per chain), `prev_hash` (the previous event's hash, or 64 zeros)
and `hash` = SHA-256 of the canonical JSON of its fields including `prev_hash`. Appends lock the
chain's row in `audit_heads` first, so writers in any number of workers take turns (SQLite's
BEGIN IMMEDIATE already serialises them; on PostgreSQL it is `SELECT ... FOR UPDATE`).
The event is part of the caller's transaction: it commits with the change it records, and a failing
append fails the change.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from storage import commit_hooks
from storage.database import Database
from storage.guard_state import PLATFORM_TAG
from storage.ids import new_id
from storage.tables import audit_events, audit_heads, utcnow

PLATFORM_CHAIN = PLATFORM_TAG
GENESIS_HASH = "0" * 64


class Action(StrEnum):
    """The audit vocabulary. Stored as text: add members, never rename them."""

    TOKEN_ISSUED = "token.issued"  # noqa: S105 - an action name
    TOKEN_REFUSED = "token.refused"  # noqa: S105 - an action name
    TOKEN_REFRESHED = "token.refreshed"  # noqa: S105 - an action name
    TOKEN_REVOKED = "token.revoked"  # noqa: S105 - an action name
    REFRESH_TOKEN_REUSE = "token.reuse_detected"  # noqa: S105 - an action name
    CLIENT_CREATED = "client.created"
    CLIENT_REVOKED = "client.revoked"
    CLIENT_SECRET_ROTATED = "client.secret_rotated"  # noqa: S105 - an action name
    CLIENT_UPDATED = "client.updated"
    MEMBER_ADDED = "member.added"
    MEMBER_ROLE_CHANGED = "member.role_changed"
    MEMBER_REMOVED = "member.removed"
    TENANT_CREATED = "tenant.created"
    TENANT_CHANGED = "tenant.changed"
    TENANT_SUSPENDED = "tenant.suspended"
    ACCESS_DENIED = "access.denied"
    RATE_LIMIT_EXCEEDED = "rate_limit.exceeded"
    PASSWORD_CHANGED = "password.changed"  # noqa: S105 - an action name
    PASSWORD_CHANGE_REFUSED = "password.change_refused"  # noqa: S105 - an action name
    SIGNING_KEY_ROTATED = "signing_key.rotated"
    PLATFORM_ADMIN_CREATED = "platform_admin.created"


class EventOutcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"  # the caller asked and was refused (e.g. bad credentials)
    DENIED = "denied"  # authenticated, but not allowed (scope, rate limit, reuse)


@dataclass(frozen=True, slots=True)
class Actor:
    kind: str  # user, client, anonymous, system
    subject: str | None = None


ANONYMOUS = Actor("anonymous")


@dataclass(frozen=True, slots=True)
class Context:
    """Where a request came from; all optional (the CLI has none of them)."""

    client_ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None


NO_CONTEXT = Context()


@dataclass(frozen=True, slots=True)
class NewEvent:
    action: str
    tenant: str | None  # None: a platform event, chained under PLATFORM_CHAIN
    actor: Actor
    outcome: str = EventOutcome.SUCCESS
    target: str | None = None
    scopes: Iterable[str] = ()
    context: Context = NO_CONTEXT
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Event:
    """A stored event: everything in it is covered by `hash`."""

    id: str
    seq: int
    tenant: str | None
    time: datetime
    actor_kind: str
    actor_subject: str | None
    action: str
    target: str | None
    outcome: str
    scopes: tuple[str, ...]
    client_ip: str | None
    user_agent: str | None
    request_id: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str

    def fields(self) -> dict[str, Any]:
        """JSON-ready fields, `time` in the canonical form the hash covers."""
        return {
            "id": self.id,
            "seq": self.seq,
            "tenant": self.tenant,
            "time": canonical_time(self.time),
            "actor_kind": self.actor_kind,
            "actor_subject": self.actor_subject,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "scopes": list(self.scopes),
            "client_ip": self.client_ip,
            "user_agent": self.user_agent,
            "request_id": self.request_id,
            "details": self.details,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }

    def computed_hash(self) -> str:
        hashed = self.fields()
        del hashed["hash"]
        return hashlib.sha256(canonical_json(hashed).encode()).hexdigest()


def canonical_json(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def canonical_time(value: datetime) -> str:
    """Fixed width, microseconds, UTC: what every backend stores and returns unchanged."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def chain_of(tenant: str | None) -> str:
    return tenant or PLATFORM_CHAIN


def _clip(value: str | None, length: int) -> str | None:
    # An empty value is stored as null, so exports have one spelling for "nothing".
    return value[:length] if value else None


async def append(connection: AsyncConnection, event: NewEvent) -> Event:
    """Add `event` to its tenant's chain, inside the caller's (write) transaction."""
    chain = chain_of(event.tenant)
    seq, prev_hash = await _lock_head(connection, chain)
    return await _insert(connection, chain, event, seq + 1, prev_hash)


async def window_open(connection: AsyncConnection, event: NewEvent) -> bool:
    """Whether the chain's latest event of the same action, actor and target was recorded for
    a window that has not ended yet (see append_once)."""
    latest = (
        await connection.execute(
            sa.select(audit_events.c.details)
            .where(
                audit_events.c.chain == chain_of(event.tenant),
                audit_events.c.action == event.action,
                audit_events.c.actor_subject == _clip(event.actor.subject, 80),
                audit_events.c.target == _clip(event.target, 200),
            )
            .order_by(audit_events.c.seq.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    if latest is None:
        return False
    recorded_end = json.loads(latest).get("window_end")
    return isinstance(recorded_end, str) and recorded_end > canonical_time(utcnow())


async def append_once(
    connection: AsyncConnection, event: NewEvent, window_end: datetime
) -> Event | None:
    """Append unless the chain already holds the same action, actor and target for a window
    ending after now: one event per window, whichever worker sees the window first."""
    chain = chain_of(event.tenant)
    seq, prev_hash = await _lock_head(connection, chain)
    if await window_open(connection, event):
        return None
    details = {**event.details, "window_end": canonical_time(window_end)}
    stamped = NewEvent(**{**_as_kwargs(event), "details": details})
    return await _insert(connection, chain, stamped, seq + 1, prev_hash)


async def append_once_per_window(
    database: Database, event: NewEvent, window_end: datetime
) -> Event | None:
    """append_once in a transaction of its own, for refusals that fail their request. A read
    comes first, so a flood of refusals in a recorded window never takes the write lock."""
    async with database.read() as connection:
        if await window_open(connection, event):
            return None
    async with database.write() as connection:
        return await append_once(connection, event, window_end)


def _as_kwargs(event: NewEvent) -> dict[str, Any]:
    return {name: getattr(event, name) for name in NewEvent.__dataclass_fields__}


async def _lock_head(connection: AsyncConnection, chain: str) -> tuple[int, str]:
    locked = (
        sa.select(audit_heads.c.seq, audit_heads.c.hash)
        .where(audit_heads.c.chain == chain)
        .with_for_update()
    )
    head = (await connection.execute(locked)).first()
    if head is None:
        # The chain's first event: concurrent creators race here; one inserts, the others do
        # nothing (and wait for it on PostgreSQL), then everyone takes the lock in turn.
        insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
        await connection.execute(
            insert(audit_heads)
            .values(chain=chain, seq=0, hash=GENESIS_HASH)
            .on_conflict_do_nothing(index_elements=["chain"])
        )
        head = (await connection.execute(locked)).one()
    return int(head.seq), str(head.hash)


async def _insert(
    connection: AsyncConnection, chain: str, new: NewEvent, seq: int, prev_hash: str
) -> Event:
    # Stamped after the head lock, so time never goes backwards along a chain.
    details = json.loads(canonical_json(dict(new.details)))
    unsigned = Event(
        id=new_id("aud"),
        seq=seq,
        tenant=new.tenant,
        time=utcnow(),
        actor_kind=new.actor.kind,
        actor_subject=_clip(new.actor.subject, 80),
        action=new.action,
        target=_clip(new.target, 200),
        outcome=new.outcome,
        scopes=tuple(sorted(set(new.scopes))),
        client_ip=_clip(new.context.client_ip, 64),
        user_agent=_clip(new.context.user_agent, 400),
        request_id=_clip(new.context.request_id, 128),
        details=details,
        prev_hash=prev_hash,
        hash="",
    )
    event = _replace_hash(unsigned, unsigned.computed_hash())
    await connection.execute(audit_events.insert().values(chain=chain, **_row(event)))
    await connection.execute(
        audit_heads.update()
        .where(audit_heads.c.chain == chain)
        .values(seq=event.seq, hash=event.hash)
    )
    commit_hooks.note(event)  # for the live stream, once the transaction has committed
    return event


def _replace_hash(event: Event, value: str) -> Event:
    values = {name: getattr(event, name) for name in Event.__dataclass_fields__}
    return Event(**{**values, "hash": value})


def _row(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "seq": event.seq,
        "tenant": event.tenant,
        "occurred_at": event.time,
        "actor_kind": event.actor_kind,
        "actor_subject": event.actor_subject,
        "action": event.action,
        "target": event.target,
        "outcome": event.outcome,
        "scopes": " ".join(event.scopes),
        "client_ip": event.client_ip,
        "user_agent": event.user_agent,
        "request_id": event.request_id,
        "details": canonical_json(event.details),
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def event_from_row(row: sa.Row[Any]) -> Event:
    return Event(
        id=row.id,
        seq=int(row.seq),
        tenant=row.tenant,
        time=row.occurred_at,
        actor_kind=row.actor_kind,
        actor_subject=row.actor_subject,
        action=row.action,
        target=row.target,
        outcome=row.outcome,
        scopes=tuple(row.scopes.split()),
        client_ip=row.client_ip,
        user_agent=row.user_agent,
        request_id=row.request_id,
        details=json.loads(row.details),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def event_from_fields(fields: Mapping[str, Any]) -> Event:
    """The inverse of Event.fields(): how exports are read back (and verified offline)."""
    return Event(
        id=fields["id"],
        seq=int(fields["seq"]),
        tenant=fields["tenant"],
        time=parse_time(fields["time"]),
        actor_kind=fields["actor_kind"],
        actor_subject=fields["actor_subject"],
        action=fields["action"],
        target=fields["target"],
        outcome=fields["outcome"],
        scopes=tuple(fields["scopes"]),
        client_ip=fields["client_ip"],
        user_agent=fields["user_agent"],
        request_id=fields["request_id"],
        details=dict(fields["details"]),
        prev_hash=fields["prev_hash"],
        hash=fields["hash"],
    )
