"""No route can forget its guards: walk every route of the live app and its OpenAPI document."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import APIRouter, Depends, FastAPI, Security, WebSocket
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, APIWebSocketRoute, RouteContext, iter_route_contexts
from starlette.routing import Mount, Route

from api.app import create_app
from auth.principal import get_principal
from config.settings import Settings
from policies.admission import admit_principal, admit_tenant_request
from policies.authorize import require_scopes
from policies.guard import stages_of
from policies.scopes import PLATFORM_ADMIN, SCOPES
from policies.tenancy import get_tenant
from tests.support import World, bearer

PUBLIC_PATHS = {
    "/token",
    "/revoke",
    "/introspect",
    "/health",
    "/ready",
    "/metrics",
    "/docs",
    "/console",
    "/openapi.json",
}
# Static files of the API docs and the console (api/web/): no data, no token.
PUBLIC_PREFIXES = ("/.well-known/", "/docs/assets/", "/console/assets/")
# Authenticated routes about the caller themself: identity and admission, but no scope.
IDENTITY_ONLY_PATHS = {"/v1/me", "/v1/me/password"}
TENANT_PREFIX = "/v1/tenants/{tenant}/"
DOCUMENTED_ERRORS = {"401", "403", "404", "422"}
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# POSTs that only read: the question travels in a body (a path is too long for a query).
READ_ONLY_POSTS = {"/v1/tenants/{tenant}/access/evaluate"}


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def walk(dependant: Dependant) -> Iterator[Dependant]:
    for dependency in dependant.dependencies:
        yield dependency
        yield from walk(dependency)


def stages(dependency: Dependant) -> tuple[Any, ...]:
    """What a dependency runs: a composite guard (policies/guard.py) runs its stages."""
    return stages_of(dependency.call)


def declared_scopes(route: RouteContext) -> set[str]:
    scopes: set[str] = set()
    for dependency in walk(route.dependant):
        if require_scopes in stages(dependency):
            scopes.update(dependency.own_oauth_scopes or [])
    return scopes


def guard_problems(route: RouteContext) -> list[str]:
    """What is missing from a route's guards; empty when it is properly guarded."""
    calls = {call for dependency in walk(route.dependant) for call in stages(dependency)}
    problems: list[str] = []
    if get_principal not in calls:
        problems.append("no identity (get_principal)")
    if admit_principal not in calls and admit_tenant_request not in calls:
        problems.append("no admission (revocation/tenant status/rate limit)")
    path = str(route.path)
    if path.startswith(TENANT_PREFIX) and not {get_tenant, admit_tenant_request} <= calls:
        problems.append("tenant route without the tenant stage")
    if path not in IDENTITY_ONLY_PATHS:
        scopes = declared_scopes(route)
        if not scopes:
            problems.append("no scope requirement")
        if not scopes <= set(SCOPES):
            problems.append(f"undeclared scopes {sorted(scopes - set(SCOPES))}")
        writes = set(route.methods or ()) & UNSAFE_METHODS
        if path in READ_ONLY_POSTS:
            writes -= {"POST"}
        if writes and not any(s.endswith(":write") or s == PLATFORM_ADMIN for s in scopes):
            problems.append("a write method without a write scope")
    return problems


def guarded_routes(app: FastAPI) -> list[RouteContext]:
    """Every API route as served (prefixes and router dependencies applied), less public ones;
    WebSocket routes included (they have no methods, and OpenAPI does not list them)."""
    return [
        route
        for route in iter_route_contexts(app.routes)
        if isinstance(route.original_route, APIRoute | APIWebSocketRoute)
        and not is_public(str(route.path))
    ]


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app(Settings(_env_file=None, database_url="sqlite+aiosqlite:///:memory:"))


def test_every_route_is_public_by_name_or_fully_guarded(app: FastAPI) -> None:
    failures = {
        f"{sorted(route.methods or ())} {route.path}": guard_problems(route)
        for route in guarded_routes(app)
    }
    assert {route: problems for route, problems in failures.items() if problems} == {}
    assert any(r.path == "/v1/me" for r in guarded_routes(app))
    assert any(isinstance(r.original_route, APIWebSocketRoute) for r in guarded_routes(app))


def test_every_page_and_static_mount_is_public_by_name(app: FastAPI) -> None:
    """Plain HTTP routes and mounts (pages, static files) get no guard: each must be listed."""
    others = {
        str(route.path) + ("/" if isinstance(route.original_route, Mount) else "")
        for route in iter_route_contexts(app.routes)
        if isinstance(route.original_route, Route | Mount)
        and not isinstance(route.original_route, APIRoute)
    }
    assert {"/docs", "/console", "/console/assets/", "/docs/assets/"} <= others
    assert sorted(path for path in others if not is_public(path)) == []


def test_the_walk_catches_a_route_that_forgot_its_scopes() -> None:
    forgetful = APIRouter(
        prefix="/v1/tenants/{tenant}", dependencies=[Depends(admit_tenant_request)]
    )

    @forgetful.get("/leaky")
    async def leaky() -> dict[str, str]:
        return {}

    @forgetful.get("/guarded", dependencies=[Security(require_scopes, scopes=["items:read"])])
    async def guarded() -> dict[str, str]:
        return {}

    @forgetful.delete("/guarded", dependencies=[Security(require_scopes, scopes=["items:read"])])
    async def read_scope_delete() -> None:
        return None

    @forgetful.websocket("/leaky-stream")
    async def leaky_stream(websocket: WebSocket) -> None:
        await websocket.close()

    unguarded = APIRouter()

    @unguarded.get("/v1/naked")
    async def naked() -> dict[str, str]:
        return {}

    app = FastAPI()
    app.include_router(forgetful)
    app.include_router(unguarded)
    problems = {
        (route.path, *sorted(route.methods or ())): guard_problems(route)
        for route in guarded_routes(app)
    }
    assert problems[("/v1/tenants/{tenant}/leaky", "GET")] == ["no scope requirement"]
    assert problems[("/v1/tenants/{tenant}/leaky-stream",)] == ["no scope requirement"]
    assert problems[("/v1/tenants/{tenant}/guarded", "GET")] == []
    assert problems[("/v1/tenants/{tenant}/guarded", "DELETE")] == [
        "a write method without a write scope"
    ]
    assert "no identity (get_principal)" in problems[("/v1/naked", "GET")]


def test_openapi_lists_scopes_and_error_responses(app: FastAPI) -> None:
    document = app.openapi()
    routes = {(r.path, m.lower()): r for r in guarded_routes(app) for m in r.methods or ()}
    for (path, method), route in routes.items():
        operation: dict[str, Any] = document["paths"][path][method]
        security = operation.get("security")
        assert security, f"{method} {path} has no security in OpenAPI"
        listed = {
            scope for requirement in security for scopes in requirement.values() for scope in scopes
        }
        assert declared_scopes(route) <= listed, f"{method} {path}"
        missing = DOCUMENTED_ERRORS - set(operation["responses"])
        assert not missing, f"{method} {path} does not document {missing}"


def test_openapi_password_flow_describes_every_scope(app: FastAPI) -> None:
    schemes = app.openapi()["components"]["securitySchemes"]
    flow = schemes["OAuth2PasswordBearer"]["flows"]["password"]
    assert flow["tokenUrl"] == "/token"
    assert flow["scopes"] == SCOPES


async def test_the_token_is_decoded_once_however_many_scope_checks_run(world: World) -> None:
    """POST /items runs two scope checks (router items:read, route items:write): one decode."""
    route = next(
        r
        for r in guarded_routes(world.app)
        if r.path == "/v1/tenants/{tenant}/items" and "POST" in (r.methods or ())
    )
    assert sum(1 for d in walk(route.dependant) if require_scopes in stages(d)) == 2
    await world.tenant("acme")
    await world.member("acme", "owner@acme.test", "owner")
    token = await world.login("owner@acme.test")
    verifier = world.app.state.verifier
    calls = 0
    original = verifier.verify

    async def counting(raw: str) -> Any:
        nonlocal calls
        calls += 1
        return await original(raw)

    verifier.verify = counting
    body = {"sku": "A-1", "name": "Anvil", "category": "tools", "price": "10", "quantity": 1}
    response = await world.client.post("/v1/tenants/acme/items", json=body, headers=bearer(token))
    assert response.status_code == 201, response.text
    assert calls == 1


def is_async(call: Any) -> bool:
    # A security scheme is an instance whose class defines `async def __call__`.
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(type(call).__call__)


def threaded_calls(app: FastAPI) -> set[str]:
    """Dependencies and endpoints FastAPI would run in a worker thread (plain `def`)."""
    return {
        f"{route.path}: {getattr(d.call, '__qualname__', d.call)}"
        for route in iter_route_contexts(app.routes)
        if isinstance(route.original_route, APIRoute | APIWebSocketRoute)
        for d in [route.dependant, *walk(route.dependant)]
        if d.call is not None and not is_async(d.call)
    }


def test_no_dependency_or_handler_runs_in_a_worker_thread(app: FastAPI) -> None:
    """A plain `def` dependency costs a thread hop per request (~0.2 ms on this machine)."""
    assert threaded_calls(app) == set()

    def slow_dependency() -> None:
        return None

    probe = FastAPI()

    @probe.get("/probe", dependencies=[Depends(slow_dependency)])
    async def endpoint() -> None:
        return None

    assert threaded_calls(probe) == {
        "/probe: test_no_dependency_or_handler_runs_in_a_worker_thread.<locals>.slow_dependency"
    }
