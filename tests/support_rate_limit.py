"""Helpers for the rate-limit tests: probe routes behind admission, clients with chosen IPs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import APIRouter, Depends, FastAPI, Security

from api.app import create_app
from policies.admission import admit_tenant_request
from policies.authorize import require_scopes
from storage.errors import NotFound
from tests.support import World, bearer

PROBE = "/v1/tenants/{tenant}/_probe"
# Small limits, so a test exhausts them in a few requests.
SMALL_PLANS = {"free": {"principal": "5/minute", "tenant": "8/minute"}}
LIMIT_HEADERS = (
    "ratelimit-policy",
    "ratelimit",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
)


def probe_router() -> APIRouter:
    """Routes behind the same admission dependency as every tenant route, and nothing else."""
    router = APIRouter(prefix=PROBE, dependencies=[Depends(admit_tenant_request)])

    @router.get("")
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    @router.get("/missing")
    async def missing() -> dict[str, bool]:
        raise NotFound("thing")

    @router.get("/scoped", dependencies=[Security(require_scopes, scopes=["audit:read"])])
    async def scoped() -> dict[str, bool]:
        return {"ok": True}

    return router


def with_probe(app: FastAPI) -> FastAPI:
    app.include_router(probe_router())
    return app


def probe_app() -> FastAPI:
    """uvicorn factory for worker processes: settings from TENANTGATE_* like api.asgi."""
    return with_probe(create_app())


def probe(tenant: str, suffix: str = "") -> str:
    return PROBE.format(tenant=tenant) + suffix


def limit_headers(response: httpx.Response) -> dict[str, str]:
    return {name: response.headers[name] for name in LIMIT_HEADERS if name in response.headers}


@asynccontextmanager
async def client_from(world: World, ip: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose requests come from `ip` (the socket peer the app sees)."""
    transport = httpx.ASGITransport(app=world.app, client=(ip, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://tenantgate.test") as client:
        yield client


async def member_token(world: World, tenant: str, email: str, role: str = "viewer") -> str:
    await world.member(tenant, email, role)
    return await world.login(email, tenant=tenant)


async def get(world: World, token: str, tenant: str, suffix: str = "") -> httpx.Response:
    return await world.client.get(probe(tenant, suffix), headers=bearer(token))


def problem(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    return body
