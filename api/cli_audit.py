"""`tenantgate scopes ...` and `tenantgate audit ...`: matrix, docs table, exports, verification."""

from __future__ import annotations

import csv
import json
import sys
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncConnection

from api.cli_database import run_with_database
from api.schemas.audit import AccessMatrixOut, RouteOut, csv_lines, ndjson_line
from config.settings import Settings, get_settings
from policies.access_matrix import (
    TenantAccess,
    markdown,
    role_matrix,
    route_matrix,
    tenant_access,
)
from policies.roles import role_scopes
from storage.audit import PLATFORM_CHAIN, Action, Actor, NewEvent, append
from storage.audit_queries import EventFilter, all_events, verify
from storage.database import Database

scopes_app = typer.Typer(help="Who can do what: routes, scopes, roles", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit trail", no_args_is_help=True)

CLI_ACTOR = Actor("system", "cli")

TenantArgument = Annotated[str, typer.Argument(help=f"Tenant slug, or {PLATFORM_CHAIN}")]


class MatrixFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"


def _routes() -> list[RouteOut]:
    from api.app import create_app  # the app as configured, without starting it

    return [RouteOut.of(row) for row in route_matrix(create_app(get_settings()).routes)]


def _tenant_of(argument: str) -> str | None:
    return None if argument == PLATFORM_CHAIN else argument


def _rows(routes: list[RouteOut], matrix: AccessMatrixOut | None) -> list[list[str]]:
    """One flat table for table and CSV output: section, name, scopes, detail."""
    rows = [["route", f"{r.method} {r.path}", " ".join(r.scopes), r.guards] for r in routes]
    rows += [["role", role, " ".join(sorted(s)), ""] for role, s in role_matrix().items()]
    if matrix is not None:
        rows += [
            ["member", m.email, " ".join(m.scopes), f"{m.role}{'' if m.active else ' (inactive)'}"]
            for m in matrix.members
        ]
        rows += [
            ["client", c.client_id, " ".join(c.scopes), f"last used {c.last_used_at or 'never'}"]
            for c in matrix.clients
        ]
        rows += [
            [
                "sessions",
                s.user_id,
                "",
                f"{s.open_sessions} open via {s.client_id}, until {s.expires_at.isoformat()}",
            ]
            for s in matrix.sessions
        ]
    return rows


@scopes_app.command("matrix")
def scopes_matrix(
    tenant: Annotated[
        str | None, typer.Option(help="Add the tenant's members, clients and sessions")
    ] = None,
    output: Annotated[MatrixFormat, typer.Option("--format")] = MatrixFormat.TABLE,
) -> None:
    """Every route with its required scopes, every role; with --tenant, who holds them."""
    routes = _routes()
    matrix: AccessMatrixOut | None = None
    if tenant is not None:
        slug = tenant

        async def work(database: Database) -> TenantAccess:
            async with database.read() as connection:
                return await tenant_access(connection, slug)

        holders = run_with_database(work)
        matrix = AccessMatrixOut.of(slug, [], role_matrix(), holders)
        matrix.routes = routes
    if output is MatrixFormat.JSON:
        if matrix is not None:
            typer.echo(matrix.model_dump_json(indent=2))
        else:
            roles = {role: sorted(scopes) for role, scopes in role_matrix().items()}
            document = {"routes": [r.model_dump() for r in routes], "roles": roles}
            typer.echo(json.dumps(document, indent=2))
        return
    rows = _rows(routes, matrix)
    header = ["section", "name", "scopes", "detail"]
    if output is MatrixFormat.CSV:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerows([header, *rows])
        return
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    for row in [header, *rows]:
        padded = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)]
        typer.echo("  ".join([*padded, row[3]]).rstrip())


def scopes_markdown() -> str:
    """docs/scopes.md for the code as it is: the app built on default settings (the environment
    cannot change the document), never started."""
    from api.app import create_app

    return markdown(route_matrix(create_app(Settings.model_construct()).routes))


@scopes_app.command("doc")
def scopes_doc() -> None:
    """Print docs/scopes.md, the route x scope table (`tenantgate scopes doc > docs/scopes.md`)."""
    typer.echo(scopes_markdown(), nl=False)


@audit_app.command("export")
def audit_export(
    tenant: TenantArgument,
    output: Annotated[ExportFormat, typer.Option("--format")] = ExportFormat.JSONL,
    since: Annotated[
        datetime | None, typer.Option(help="ISO time, UTC unless it says otherwise")
    ] = None,
) -> None:
    """Write the tenant's events to stdout, oldest first (JSON lines or CSV)."""
    filters = EventFilter(since=_utc(since) if since else None)

    async def work(database: Database) -> None:
        header = True
        async for event in all_events(database, _tenant_of(tenant), filters):
            if output is ExportFormat.JSONL:
                sys.stdout.write(ndjson_line(event))
            else:
                sys.stdout.writelines(csv_lines([event], header=header))
            header = False
        if header and output is ExportFormat.CSV:
            sys.stdout.writelines(csv_lines([]))

    run_with_database(work)
    sys.stdout.flush()


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@audit_app.command("verify")
def audit_verify(tenant: TenantArgument) -> None:
    """Check the tenant's hash chain; exit 1 naming the first broken link."""
    result = run_with_database(lambda database: verify(database, _tenant_of(tenant)))
    if result.broken is None:
        typer.echo(
            f"audit chain {result.chain}: ok, {result.checked} events verified, "
            f"last hash {result.last_hash}"
        )
        return
    broken = result.broken
    where = f"event {broken.seq}" + (f" ({broken.event_id})" if broken.event_id else "")
    typer.echo(
        f"audit chain {result.chain}: BROKEN at {where}: {broken.reason}; "
        f"{result.checked} events before it verified",
        err=True,
    )
    raise typer.Exit(1)


async def record_cli(
    connection: AsyncConnection, action: str, tenant: str | None, target: str, **details: str
) -> None:
    """Audit a change made from this command line (actor `system`/`cli`; no request context).
    A role in `details` also records the scopes it grants."""
    role = details.get("role")
    await append(
        connection,
        NewEvent(
            action=Action(action),
            tenant=tenant,
            actor=CLI_ACTOR,
            target=target,
            scopes=role_scopes(role) if role else (),
            details=details,
        ),
    )
