"""Liveness and readiness probes."""

from __future__ import annotations

from typing import cast

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.errors import problem
from auth.keys import KeyRing
from storage.database import Database
from storage.guard_failover import FailoverGuardStore

router = APIRouter(tags=["operations"])


@router.get("/health", summary="Liveness: the process answers (no I/O)")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", summary="Readiness: database, Redis and signing keys")
async def ready(request: Request) -> JSONResponse:
    components: dict[str, str] = {}
    database = cast(Database, request.app.state.database)
    try:
        async with database.read() as connection:
            await connection.execute(sa.text("SELECT 1"))
        components["database"] = "ok"
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        components["database"] = "down"
    guard = request.app.state.guard
    if isinstance(guard, FailoverGuardStore):
        try:
            await guard.ping()
            components["redis"] = "degraded" if guard.degraded else "ok"
        except Exception:  # noqa: BLE001
            components["redis"] = "degraded"
    keyring = cast(KeyRing, request.app.state.keyring)
    components["signing_keys"] = "ok" if keyring.jwks["keys"] else "down"
    failing = sorted(name for name, status in components.items() if status == "down")
    if failing:
        return problem(
            request,
            503,
            "not-ready",
            "Not ready",
            f"failing: {', '.join(failing)}",
            components=components,
        )
    overall = "degraded" if "degraded" in components.values() else "ok"
    return JSONResponse({"status": overall, "components": components})
