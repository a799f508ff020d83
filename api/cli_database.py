"""Run one CLI command's database work: own engine, clean exits, no tracebacks or secrets."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer
from sqlalchemy.exc import SQLAlchemyError

from config.settings import get_settings
from policies.plans import configure_plans
from storage.database import Database
from storage.errors import Conflict, DatabaseUnavailable, NotFound

T = TypeVar("T")


def run_with_database(work: Callable[[Database], Awaitable[T]]) -> T:
    """Exit 1 on a conflict or a missing row, 2 when the database cannot be used."""

    async def run() -> T:
        settings = get_settings()
        configure_plans(settings.plan_limits)  # the plan table the server would use
        database = Database(settings)
        try:
            return await work(database)
        finally:
            await database.dispose()

    try:
        return asyncio.run(run())
    except (Conflict, NotFound) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    except DatabaseUnavailable as error:
        typer.echo(f"error: the database is unavailable ({error})", err=True)
        raise typer.Exit(2) from None
    except SQLAlchemyError as error:
        # The type only: the message may carry the database URL, password included.
        typer.echo(
            f"error: the database cannot be read ({type(error).__name__}); is it reachable, "
            "and migrated (`tenantgate db upgrade`)?",
            err=True,
        )
        raise typer.Exit(2) from None
