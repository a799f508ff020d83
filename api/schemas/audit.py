"""Audit events and the access matrix as the API shows them; NDJSON and CSV export encodings."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from policies.access_matrix import RouteAccess, TenantAccess, guards
from storage.audit import Event, event_from_fields
from storage.audit_queries import Verification

NDJSON = "application/x-ndjson"
CSV = "text/csv"

CSV_COLUMNS = (
    "id",
    "seq",
    "tenant",
    "time",
    "actor_kind",
    "actor_subject",
    "action",
    "target",
    "outcome",
    "scopes",
    "client_ip",
    "user_agent",
    "request_id",
    "details",
    "prev_hash",
    "hash",
)
# Cells a spreadsheet would run as a formula get a leading apostrophe (OWASP "CSV injection");
# the apostrophe itself is escaped the same way, so reading back is unambiguous.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")


class AuditEventOut(BaseModel):
    id: str
    seq: int = Field(description="Position in the tenant's chain: 1, 2, 3, ...")
    tenant: str | None
    time: str = Field(description="UTC, YYYY-MM-DDTHH:MM:SS.ffffffZ (the form the hash covers)")
    actor_kind: str = Field(description="user, client, anonymous or system")
    actor_subject: str | None
    action: str
    target: str | None
    outcome: str = Field(description="success, failure or denied")
    scopes: list[str]
    client_ip: str | None
    user_agent: str | None
    request_id: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str = Field(description="SHA-256 of the canonical JSON of every other field")

    @classmethod
    def of(cls, event: Event) -> AuditEventOut:
        return cls(**event.fields())


class AuditEventPage(BaseModel):
    events: list[AuditEventOut]
    next_cursor: str | None


class AuditVerificationOut(BaseModel):
    """The tenant's hash chain checked from seq 1 to its head (`tenantgate audit verify`)."""

    tenant: str = Field(description="Whose chain was checked (a saved result names it)")
    ok: bool = Field(description="Every event matches its hash and links, and the head agrees")
    events_checked: int = Field(description="Events verified in order from seq 1")
    last_seq: int = Field(description="Seq of the last verified event; 0 when none")
    last_hash: str = Field(
        description="Hash of the last verified event (64 zeros when none): keep it elsewhere "
        "to detect a later rewrite of the whole chain"
    )
    first_broken_seq: int | None = Field(description="Where the chain breaks; null when ok")
    reason: str | None = Field(description="What is wrong there; null when ok")

    @classmethod
    def of(cls, tenant: str, result: Verification) -> AuditVerificationOut:
        broken = result.broken
        return cls(
            tenant=tenant,
            ok=broken is None,
            events_checked=result.checked,
            last_seq=result.checked,
            last_hash=result.last_hash,
            first_broken_seq=None if broken is None else broken.seq,
            reason=None if broken is None else broken.reason,
        )


def ndjson_line(event: Event) -> str:
    return json.dumps(event.fields(), ensure_ascii=False, separators=(",", ":")) + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        text = " ".join(value)
    elif isinstance(value, dict):
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    else:
        text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_lines(events: Iterable[Event], *, header: bool = True) -> Iterable[str]:
    """CSV text, one chunk per row (RFC 4180 quoting, CRLF line ends); empty cell = null."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if header:
        writer.writerow(CSV_COLUMNS)
    for event in events:
        fields = event.fields()
        writer.writerow([_cell(fields[column]) for column in CSV_COLUMNS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.getvalue():
        yield buffer.getvalue()


def event_from_csv(row: dict[str, str]) -> Event:
    """Read back one row of an export (csv.DictReader)."""
    text = {k: v[1:] if v.startswith("'") else v for k, v in row.items()}
    fields: dict[str, Any] = {k: (v if v != "" else None) for k, v in text.items()}
    fields["seq"] = int(text["seq"])
    fields["scopes"] = text["scopes"].split()
    fields["details"] = json.loads(text["details"])
    return event_from_fields(fields)


def event_from_ndjson(line: str) -> Event:
    return event_from_fields(json.loads(line))


class RouteOut(BaseModel):
    method: str
    path: str
    summary: str
    scopes: list[str] = Field(description="Every one of them is required")
    guards: str = Field(description="public, or the stages: token, tenant, admission")
    roles: list[str] = Field(description="Tenant roles whose scopes cover the route")

    @classmethod
    def of(cls, row: RouteAccess) -> RouteOut:
        return cls(
            method=row.method,
            path=row.path,
            summary=row.summary,
            scopes=sorted(row.scopes),
            guards=guards(row),
            roles=row.roles,
        )


class RoleOut(BaseModel):
    role: str
    scopes: list[str]


class MemberAccessOut(BaseModel):
    user_id: str
    email: str
    role: str
    active: bool
    scopes: list[str] = Field(description="Effective scopes: the role's, none if deactivated")


class ClientAccessOut(BaseModel):
    client_id: str
    name: str
    scopes: list[str] = Field(description="The most a token of this client can hold")
    created_by: str
    created_at: datetime
    last_used_at: datetime | None


class SessionsOut(BaseModel):
    user_id: str
    client_id: str
    open_sessions: int = Field(description="Refresh-token families still usable")
    last_issued_at: datetime
    expires_at: datetime = Field(description="When the last of them expires, unless refreshed")


class AccessMatrixOut(BaseModel):
    tenant: str
    routes: list[RouteOut]
    roles: list[RoleOut]
    members: list[MemberAccessOut]
    clients: list[ClientAccessOut]
    sessions: list[SessionsOut]

    @classmethod
    def of(
        cls,
        tenant: str,
        routes: Iterable[RouteAccess],
        roles: dict[str, frozenset[str]],
        holders: TenantAccess,
    ) -> AccessMatrixOut:
        return cls(
            tenant=tenant,
            routes=[RouteOut.of(row) for row in routes],
            roles=[RoleOut(role=role, scopes=sorted(scopes)) for role, scopes in roles.items()],
            members=[
                MemberAccessOut(
                    user_id=m.user_id,
                    email=m.email,
                    role=m.role,
                    active=m.active,
                    scopes=sorted(m.scopes),
                )
                for m in holders.members
            ],
            clients=[
                ClientAccessOut(
                    client_id=c.client_id,
                    name=c.name,
                    scopes=sorted(c.scopes),
                    created_by=c.created_by,
                    created_at=c.created_at,
                    last_used_at=c.last_used_at,
                )
                for c in holders.clients
            ],
            sessions=[
                SessionsOut(
                    user_id=s.user_id,
                    client_id=s.client_id,
                    open_sessions=s.sessions,
                    last_issued_at=s.last_issued_at,
                    expires_at=s.expires_at,
                )
                for s in holders.sessions
            ],
        )
