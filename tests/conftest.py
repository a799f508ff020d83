"""Fixtures: a fresh database per test (SQLite, and PostgreSQL when configured), real Redis."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from config.settings import Settings
from storage.migrate import upgrade
from storage.tables import metadata
from tests.support import TEST_ISSUER, World, make_settings

POSTGRES_URL = os.environ.get("TENANTGATE_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("TENANTGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "database_url" in metafunc.fixturenames:
        backends = ["sqlite", "postgres"] if POSTGRES_URL else ["sqlite"]
        metafunc.parametrize("database_url", backends, indirect=True)


@pytest.fixture(scope="session")
def worker_id_slug(worker_id: str) -> str:
    return f"{worker_id}_{os.getpid()}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for every test (migrating each time would be slow)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(make_settings(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def postgres_database(worker_id_slug: str) -> Iterator[str]:
    """One PostgreSQL database per test worker, created and dropped by the suite."""
    assert POSTGRES_URL is not None
    name = f"tenantgate_test_{worker_id_slug}".lower()
    drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    _postgres(POSTGRES_URL, drop, f'CREATE DATABASE "{name}"')
    url = sa.make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    upgrade(make_settings(url))
    yield url
    _postgres(POSTGRES_URL, drop)


def _postgres(url: str, *statements: str) -> None:
    """Run statements outside a transaction (CREATE/DROP DATABASE), from synchronous fixtures."""

    async def run() -> None:
        engine = create_async_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        async with engine.connect() as connection:
            for statement in statements:
                await connection.execute(sa.text(statement))
        await engine.dispose()

    asyncio.run(run())


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "tenantgate.db"
        shutil.copy(template, path)
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("postgres_database")
    _truncate_postgres(url)
    return url


@pytest.fixture
def production_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One database for the tests that start server processes (slow to run twice): PostgreSQL,
    the production store, when the suite has it, else SQLite."""
    if POSTGRES_URL is None:
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "tenantgate.db"
        shutil.copy(template, path)
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("postgres_database")
    _truncate_postgres(url)
    return url


def _truncate_postgres(url: str) -> None:
    names = ", ".join(f'"{table.name}"' for table in metadata.sorted_tables)
    _postgres(url, f"TRUNCATE {names} RESTART IDENTITY CASCADE")


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture
async def world(settings: Settings) -> AsyncIterator[World]:
    """The app on a fresh database, an HTTP client to it, and helpers to create data."""
    async with World.start(settings) as started:
        yield started


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A real Redis server; every key the test writes is under its own prefix, deleted after."""
    client = Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except RedisError as error:
        pytest.fail(
            f"these tests need a Redis server at {REDIS_URL} (set TENANTGATE_TEST_REDIS_URL): "
            f"{error}"
        )
    yield REDIS_URL
    client.close()


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    prefix = f"tgtest-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


__all__ = ["TEST_ISSUER"]
