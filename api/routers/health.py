"""Liveness and readiness probes.

/health does no I/O: a process that answers is alive. /ready checks what a request needs: the
database (a real query), Redis when configured, and an active signing key. Redis down is
`degraded`, not down: the guard then admits from each worker's own store (fail open).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Literal, cast

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.errors import RETRY_LATER, problem
from api.schemas.common import Problem
from auth.keys import KeyRing, NoSigningKey
from config.settings import Settings
from storage.database import Database
from storage.guard_failover import FailoverGuardStore

router = APIRouter(tags=["operations"])
log = logging.getLogger("tenantgate.ready")

Status = Literal["ok", "degraded", "down"]


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ok", "degraded"]
    components: dict[str, Status]


@router.get("/health", summary="Liveness: the process answers (no I/O)")
async def health() -> Health:
    return Health(status="ok")


@router.get(
    "/ready",
    summary="Readiness: database, Redis and signing keys",
    response_model=Readiness,
    responses={503: {"model": Problem, "description": "A component is down; see `components`"}},
)
async def ready(request: Request) -> JSONResponse:
    settings = cast(Settings, request.app.state.settings)
    seconds = settings.ready_timeout
    components: dict[str, Status] = {
        "database": await _database(cast(Database, request.app.state.database), seconds)
    }
    guard = request.app.state.guard
    if isinstance(guard, FailoverGuardStore):
        components["redis"] = await _redis(guard, seconds)
    components["signing_keys"] = await _signing_keys(
        cast(KeyRing, request.app.state.keyring), seconds
    )
    failing = sorted(name for name, status in components.items() if status == "down")
    if failing:
        return problem(
            request,
            503,
            "not-ready",
            "Not ready",
            f"failing: {', '.join(failing)}",
            headers=RETRY_LATER,
            components=components,
        )
    overall = "degraded" if "degraded" in components.values() else "ok"
    return JSONResponse({"status": overall, "components": components})


async def _database(database: Database, seconds: float) -> Status:
    try:
        async with asyncio.timeout(seconds), database.read() as connection:
            # A table, not `SELECT 1`: SQLite answers that without reading the file at all.
            await connection.execute(sa.text("SELECT version_num FROM alembic_version"))
    except Exception as error:  # noqa: BLE001 - any failure means "not ready"
        log.warning("readiness: database check failed: %s", type(error).__name__)
        return "down"
    return "ok"


async def _redis(guard: FailoverGuardStore, seconds: float) -> Status:
    try:
        async with asyncio.timeout(seconds):
            await guard.ping()
    except Exception as error:  # noqa: BLE001 - the guard fails open: degraded, still serving
        log.warning("readiness: redis check failed: %s", type(error).__name__)
        return "degraded"
    return "degraded" if guard.degraded else "ok"


async def _signing_keys(keyring: KeyRing, seconds: float) -> Status:
    if keyring.stale():
        try:
            async with asyncio.timeout(seconds):
                await keyring.load()
        except Exception as error:  # noqa: BLE001 - keep the keys this process has
            log.warning("readiness: key table not readable: %s", type(error).__name__)
    try:
        keyring.signing_key  # noqa: B018 - raises when no key is active
    except NoSigningKey:
        return "down"
    return "ok"
