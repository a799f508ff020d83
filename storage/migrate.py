"""Apply Alembic migrations programmatically (no alembic.ini needed)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from config.settings import Settings
from storage.postgres_timeouts import without_named_statements

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = settings.database_url
    # Behind a pooler in transaction mode the migrations must not keep named statements either.
    config.attributes["connect_args"] = (
        {}
        if settings.is_sqlite or settings.database_prepared_statements
        else without_named_statements()
    )
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Bring the database to `revision`; runs its own event loop, so call it outside one."""
    if settings.is_sqlite:
        from storage.database import Database

        Database(settings)  # creates the directory of the SQLite file
    command.upgrade(alembic_config(settings), revision)
