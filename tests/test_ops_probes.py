"""Liveness and readiness: /health does no I/O, /ready checks database, Redis and signing keys."""

from __future__ import annotations

import asyncio
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from config.settings import Settings
from storage.tables import signing_keys
from tests.support import World, make_settings
from tests.support_ops import TcpProxy, free_port

PROBLEM = "application/problem+json"


async def test_health_is_ok_without_touching_anything(world: World) -> None:
    await world.database.dispose()  # no I/O: still answers
    response = await world.client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_reports_each_component(world: World) -> None:
    response = await world.client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "components": {"database": "ok", "signing_keys": "ok"},
    }


async def test_ready_with_redis_up(database_url: str, redis_url: str, redis_prefix: str) -> None:
    # A generous timeout: on a loaded test machine a 250 ms ping can miss and read as degraded.
    settings = make_settings(
        database_url, redis_url=redis_url, redis_prefix=redis_prefix, redis_timeout=5.0
    )
    async with World.start(settings) as world:
        response = await world.client.get("/ready")
    assert response.status_code == 200
    assert response.json()["components"] == {
        "database": "ok",
        "redis": "ok",
        "signing_keys": "ok",
    }


async def test_redis_down_is_degraded_not_down(database_url: str) -> None:
    # Nothing listens on this port: Redis is unreachable from the start.
    settings = make_settings(database_url, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    async with World.start(settings) as world:
        response = await world.client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {
        "status": "degraded",
        "components": {"database": "ok", "redis": "degraded", "signing_keys": "ok"},
    }


async def test_database_unreachable_is_503_naming_it(settings: Settings) -> None:
    if settings.is_sqlite:
        async with World.start(settings) as world:
            await _make_sqlite_unreadable(world)
            response = await world.client.get("/ready")
            health = await world.client.get("/health")
    else:
        url = make_url(settings.database_url)
        proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
        await proxy.start()
        proxied = url.set(host="127.0.0.1", port=proxy.port)
        through_proxy = settings.model_copy(
            update={"database_url": proxied.render_as_string(hide_password=False)}
        )
        async with World.start(through_proxy) as world:
            await proxy.cut()
            response = await world.client.get("/ready")
            health = await world.client.get("/health")
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["retry-after"] == "5"
    body = response.json()
    assert body["type"] == "urn:tenantgate:problem:not-ready"
    assert body["detail"] == "failing: database"
    assert body["components"]["database"] == "down"
    assert body["components"]["signing_keys"] == "ok"
    assert body["request_id"] == response.headers["x-request-id"]
    assert health.status_code == 200  # liveness does not depend on the database


async def _make_sqlite_unreadable(world: World) -> None:
    """Close every connection, then put a directory where the database file was."""
    url = make_url(world.settings.database_url)
    assert url.database
    await world.database.dispose()
    await asyncio.to_thread(_replace_with_directory, Path(url.database))


def _replace_with_directory(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.mkdir()


async def test_no_active_signing_key_is_503(database_url: str) -> None:
    settings = make_settings(database_url, key_refresh_interval=0.01)
    async with World.start(settings) as world:
        async with world.database.write() as connection:
            await connection.execute(sa.delete(signing_keys))
        # The ring trusts a copy younger than the refresh interval: let this one age past it.
        await asyncio.sleep(0.05)
        response = await world.client.get("/ready")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    body = response.json()
    assert body["detail"] == "failing: signing_keys"
    assert body["components"] == {"database": "ok", "signing_keys": "down"}
