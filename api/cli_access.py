"""`tenantgate access evaluate`: the answer of POST /v1/tenants/{tenant}/access/evaluate."""

from __future__ import annotations

from typing import Annotated

import typer

from api.cli_database import run_with_database
from api.schemas.access import METHODS, AccessEvaluationOut
from config.settings import get_settings
from policies.evaluation import evaluate
from storage.database import Database

access_app = typer.Typer(help="Why may, or may not, a principal call a route", no_args_is_help=True)


@access_app.command("evaluate")
def access_evaluate(
    tenant: str,
    principal: Annotated[str, typer.Argument(help="A user id, or client:<client_id>")],
    method: Annotated[str, typer.Argument(help="An HTTP method, or WS")],
    path: Annotated[str, typer.Argument(help="A request path or a route template")],
    as_json: Annotated[bool, typer.Option("--json", help="The API's JSON answer")] = False,
) -> None:
    """Evaluate PRINCIPAL of TENANT against METHOD PATH, as the guard would answer it (exit 1
    when denied)."""
    from api.app import create_app  # the app as configured, without starting it

    if method.upper() not in METHODS:
        typer.echo(f"error: METHOD must be one of {', '.join(sorted(METHODS))}", err=True)
        raise typer.Exit(2)
    routes = create_app(get_settings()).routes

    async def work(database: Database) -> AccessEvaluationOut:
        async with database.snapshot() as connection:
            answer = await evaluate(connection, routes, tenant, principal, method.upper(), path)
        return AccessEvaluationOut.of(answer)

    result = run_with_database(work)
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
    else:
        _print(principal, method, path, result)
    if not result.allowed:
        raise typer.Exit(1)


def _print(principal: str, method: str, path: str, result: AccessEvaluationOut) -> None:
    verdict = "allowed" if result.allowed else "denied"
    typer.echo(f"{verdict}: {principal} -> {result.route or f'{method.upper()} {path}'}")
    typer.echo(f"role: {result.role or '-'}")
    typer.echo(f"required scopes: {' '.join(result.required_scopes) or '-'}")
    typer.echo(f"granted scopes:  {' '.join(result.granted_scopes) or '-'}")
    typer.echo(f"missing scopes:  {' '.join(result.missing_scopes) or '-'}")
    for reason in result.reasons:
        typer.echo(f"- {reason.code} ({reason.stage}, {reason.status}): {reason.detail}")
