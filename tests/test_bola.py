"""BOLA matrix: every tenant route and method, enumerated from the live app, against two tenants.

New routes under /v1/tenants/{tenant}/ are covered without editing this file, as long as their
path parameters can be filled from what the collection's POST returns and their bodies are in
BODIES (a test fails and says so when either is missing).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts

from api.app import create_app
from policies.authorize import require_scopes
from policies.guard import stages_of
from policies.scopes import SCOPES, TENANT_SCOPES
from storage.tables import metadata
from tests.support import World, bearer, jwt_part, make_settings
from tests.support_items import assert_problem, item_body, tenant_with_owner
from tests.support_ws import handshake

TENANT_PREFIX = "/v1/tenants/{tenant}"
# Same length, so a foreign and a missing tenant can be compared byte for byte.
A, B, GHOST = "tenant-a", "tenant-b", "tenant-x"
PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")
# Headers that differ between any two responses, whatever they answer (rate-limit counters).
VOLATILE_HEADERS = {
    "date",
    "x-request-id",
    "request-id",
    "server-timing",
    "ratelimit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
}

# A body that passes validation for each route that takes one; "{m}" keeps values unique.
BODIES: dict[tuple[str, str], Callable[[str], dict[str, Any]]] = {
    ("POST", "/items"): lambda m: item_body(
        sku=f"{m}-sku", name=f"{m} widget", category=f"{m}-cat", tags=[m]
    ),
    ("PATCH", "/items/{item_id}"): lambda m: {"name": f"{m} renamed", "quantity": 0},
    ("POST", "/members"): lambda m: {"email": f"{m}-invitee@example.com", "role": "viewer"},
    ("PATCH", "/members/{user_id}"): lambda m: {"role": "member"},
    ("POST", "/clients"): lambda m: {"name": f"{m} client", "scopes": ["items:read"]},
    ("PATCH", "/clients/{client_id}"): lambda m: {"name": f"{m} renamed client"},
    ("POST", "/access/evaluate"): lambda m: {
        "principal": "client:cli_000000",
        "method": "GET",
        "path": f"/v1/tenants/{m}/items",
    },
}
# POSTs that ask a question and create nothing: not used to seed objects.
QUESTIONS = {("POST", "/access/evaluate")}


def walk(dependant: Dependant) -> Iterator[Dependant]:
    for dependency in dependant.dependencies:
        yield dependency
        yield from walk(dependency)


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    scopes: frozenset[str]
    takes_body: bool
    query: tuple[str, ...]

    @property
    def relative(self) -> str:
        return self.path.removeprefix(TENANT_PREFIX)

    @property
    def params(self) -> list[str]:
        return [name for name in PARAM.findall(self.path) if name != "tenant"]

    @property
    def resource(self) -> str:
        return self.relative.split("/")[1]

    def url(self, tenant: str, ids: dict[str, str]) -> str:
        return PARAM.sub(lambda match: tenant if match[1] == "tenant" else ids[match[1]], self.path)

    def body(self, marker: str) -> dict[str, Any] | None:
        if not self.takes_body:
            return None
        make = BODIES.get((self.method, self.relative))
        return make(marker) if make else {}

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def operations(app: FastAPI) -> list[Operation]:
    found = []
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute):
            continue
        path = str(route.path)
        if not path.startswith(TENANT_PREFIX + "/"):
            continue
        dependant: Dependant = route.dependant
        scopes = frozenset(
            scope
            for dependency in walk(dependant)
            if require_scopes in stages_of(dependency.call)
            for scope in dependency.own_oauth_scopes or ()
        )
        query = tuple(str(field.alias) for field in dependant.query_params)
        for method in sorted(route.methods or ()):
            found.append(Operation(method, path, scopes, bool(dependant.body_params), query))
    assert len(found) >= 6, "the tenant routes were not found"
    return found


async def send(
    world: World, op: Operation, tenant: str, ids: dict[str, str], token: str, marker: str
) -> httpx.Response:
    body = op.body(marker)
    return await world.client.request(
        op.method, op.url(tenant, ids), headers=bearer(token), json=body
    )


def fingerprint(response: httpx.Response, *replace: str) -> tuple[Any, ...]:
    """Status, stable headers and body, with the given path values blanked out of `instance`."""
    headers = sorted(
        (name, value) for name, value in response.headers.items() if name not in VOLATILE_HEADERS
    )
    body = response.json()
    body.pop("request_id", None)
    for value in replace:
        body["instance"] = body.get("instance", "").replace(value, "*")
    return response.status_code, headers, body


@dataclass
class Tenants:
    world: World
    ops: list[Operation]
    owner_a: str
    owner_b: str
    ids_a: dict[str, str]
    ids_b: dict[str, str]
    # Values no response to tenant A may ever contain.
    b_markers: set[str]


async def seed(world: World, ops: list[Operation], tenant: str, token: str) -> dict[str, str]:
    """Create one object through each collection's POST; returns the ids routes take."""
    marker = f"{tenant}-marker"
    ids: dict[str, str] = {}
    for op in ops:
        if op.method != "POST" or op.params or (op.method, op.relative) not in BODIES:
            continue
        if (op.method, op.relative) in QUESTIONS:
            continue
        response = await send(world, op, tenant, ids, token, marker)
        assert response.status_code == 201, f"{op}: {response.text}"
        created = response.json()
        for other in ops:
            for name in other.params:
                if other.relative.startswith(f"{op.relative}/{{{name}}}"):
                    ids[name] = created.get(name, created.get("id"))
    missing = {name for op in ops for name in op.params} - set(ids)
    assert not missing, (
        f"no way to get a real id for {sorted(missing)}: add a body for the collection's POST "
        "to BODIES in tests/test_bola.py"
    )
    return ids


@pytest.fixture
async def tenants(world: World) -> Tenants:
    ops = operations(world.app)
    owner_a = await tenant_with_owner(world, A)
    owner_b = await tenant_with_owner(world, B)
    ids_a = await seed(world, ops, A, owner_a)
    ids_b = await seed(world, ops, B, owner_b)
    markers = {B, f"{B}-marker", jwt_part(owner_b, 1)["sub"], *ids_b.values()}
    return Tenants(world, ops, owner_a, owner_b, ids_a, ids_b, markers)


async def tenant_rows(world: World, tenant: str) -> dict[str, list[str]]:
    """Every row of every table holding tenant data (the audit trail records attempts: left out)."""
    rows: dict[str, list[str]] = {}
    async with world.database.read() as connection:
        for table in metadata.sorted_tables:
            if "tenant" in table.c and not table.name.startswith("audit"):
                result = await connection.execute(sa.select(table).where(table.c.tenant == tenant))
                rows[table.name] = sorted(repr(tuple(row)) for row in result)
    return rows


def ghost_ids(ids: dict[str, str]) -> dict[str, str]:
    """Ids of the same shape that name nothing."""
    return {name: value[:-6] + "000000" for name, value in ids.items()}


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app(make_settings("sqlite+aiosqlite:///:memory:"))


def test_every_body_route_has_a_valid_example(app: FastAPI) -> None:
    without = [
        str(op)
        for op in operations(app)
        if op.takes_body and (op.method, op.relative) not in BODIES
    ]
    assert without == [], "add a valid body for these routes to BODIES"


def test_every_route_declares_scopes_of_its_own_resource(app: FastAPI) -> None:
    ops = operations(app)
    for op in ops:
        assert op.scopes, f"{op} declares no scope"
        assert op.scopes <= set(SCOPES), f"{op}: unknown scopes {op.scopes - set(SCOPES)}"
        families = {scope.split(":")[0] for scope in op.scopes}
        if op.resource in {scope.split(":")[0] for scope in SCOPES}:
            assert families == {op.resource}, f"{op} guarded by another resource's scopes"
        if op.method in {"POST", "PATCH", "PUT", "DELETE"}:
            assert any(scope.endswith(":write") for scope in op.scopes) or not any(
                scope == f"{op.resource}:write" for scope in SCOPES
            ), f"{op} changes data with a read scope"
    assert {scope for op in ops for scope in op.scopes} == TENANT_SCOPES


async def test_a_foreign_tenant_answers_exactly_like_a_missing_one(tenants: Tenants) -> None:
    world = tenants.world
    await world.user("root@platform.test", platform_admin=True)
    platform = await world.login("root@platform.test")
    before = await tenant_rows(world, B)
    for op in tenants.ops:
        foreign = await send(world, op, B, tenants.ids_b, tenants.owner_a, "attack")
        assert_problem(foreign, 404, "tenant-not-found")
        expected = fingerprint(foreign, B)
        for tenant, token in ((GHOST, tenants.owner_a), (B, platform), (GHOST, platform)):
            response = await send(world, op, tenant, tenants.ids_b, token, "attack")
            assert fingerprint(response, tenant) == expected, f"{op} as {tenant}"
    assert await tenant_rows(world, B) == before
    # B's owner reads the same objects: the ids were real.
    for op in tenants.ops:
        if op.method == "GET" and op.params:
            response = await send(world, op, B, tenants.ids_b, tenants.owner_b, "own")
            assert response.status_code == 200, f"{op}: {response.text}"


async def test_another_tenants_objects_are_not_found_in_yours(tenants: Tenants) -> None:
    world = tenants.world
    before = await tenant_rows(world, B)
    ghosts = ghost_ids(tenants.ids_b)
    for op in (op for op in tenants.ops if op.params):
        foreign = await send(world, op, A, tenants.ids_b, tenants.owner_a, "attack")
        assert foreign.status_code == 404, f"{op}: {foreign.text}"
        kind = foreign.json()["type"]
        assert kind.endswith("-not-found"), f"{op}: {kind}"
        assert kind != "urn:tenantgate:problem:tenant-not-found", op
        missing = await send(world, op, A, ghosts, tenants.owner_a, "attack")
        values = [*tenants.ids_b.values(), *ghosts.values()]
        assert fingerprint(missing, *values) == fingerprint(foreign, *values), str(op)
    assert await tenant_rows(world, B) == before


def b_filters(tenants: Tenants) -> dict[str, str]:
    """For each list filter, a valid value that selects tenant B's own rows."""
    marker = f"{B}-marker"
    return {
        "category": f"{marker}-cat",
        "name_prefix": marker,
        "action": "member.added",
        "outcome": "success",
        "actor": jwt_part(tenants.owner_b, 1)["sub"],
        "since": "2000-01-01T00:00:00Z",
        "until": "2999-01-01T00:00:00Z",
    }


async def test_lists_never_contain_another_tenants_rows(tenants: Tenants) -> None:
    world = tenants.world
    # Reads of a whole collection (the chain check answers a verdict, not rows).
    lists = [
        op
        for op in tenants.ops
        if op.method == "GET" and not op.params and not op.relative.endswith("/audit/verify")
    ]
    values = b_filters(tenants)
    for op in lists:
        queries: list[dict[str, str]] = [{}]
        # Filters set to B's values must not find B's rows either.
        for name in op.query:
            if name in {"cursor", "limit"}:
                continue
            assert name in values, f"{op}: add a value of B's for `{name}` to b_filters"
            queries.append({name: values[name]})
        for params in queries:
            # Not vacuous: in B, the filter is valid and finds B's rows.
            own = await world.client.get(
                op.url(B, {}), params=params, headers=bearer(tenants.owner_b)
            )
            assert own.status_code == 200, f"{op} {params}: {own.text}"
            assert any(marker in own.text for marker in tenants.b_markers), f"{op} {params}"
            response = await world.client.get(
                op.url(A, {}), params=params, headers=bearer(tenants.owner_a)
            )
            assert response.status_code == 200, f"{op} {params}: {response.text}"
            leaked = [marker for marker in tenants.b_markers if marker in response.text]
            assert leaked == [], f"{op} {params} shows tenant B's {leaked}"
    # Not vacuous: each collection lists the object A created in it.
    for name, value in tenants.ids_a.items():
        for collection in lists:
            if any(
                op.relative.startswith(f"{collection.relative}/{{{name}}}") for op in tenants.ops
            ):
                response = await world.client.get(
                    collection.url(A, {}), headers=bearer(tenants.owner_a)
                )
                assert value in response.text, f"{collection} does not list A's own {name}"


async def test_each_scope_removed_denies_exactly_the_routes_that_need_it(
    tenants: Tenants,
) -> None:
    """Ids that name nothing and empty bodies: a route past its scope check changes nothing."""
    world = tenants.world
    ghosts = ghost_ids(tenants.ids_a)
    email = f"owner@{A}.test"
    for removed in [None, *sorted(TENANT_SCOPES)]:
        scope = " ".join(sorted(TENANT_SCOPES - {removed}))
        token = await world.login(email, scope=scope, tenant=A)
        for op in tenants.ops:
            response = await world.client.request(
                op.method,
                op.url(A, ghosts),
                headers=bearer(token),
                json={} if op.takes_body else None,
            )
            denied = (
                response.status_code == 403
                and response.json()["type"] == "urn:tenantgate:problem:insufficient-scope"
            )
            if removed in op.scopes:
                assert denied, f"{op} without {removed}: {response.status_code} {response.text}"
                assert removed in response.json()["required_scopes"]
                challenge = response.headers["www-authenticate"]
                assert 'error="insufficient_scope"' in challenge, str(op)
            else:
                assert not denied, f"{op} without {removed}: {response.text}"
                assert response.status_code < 500, f"{op}: {response.text}"


def websocket_routes(app: FastAPI) -> list[tuple[str, frozenset[str]]]:
    """Every WebSocket route under the tenant prefix, with the scopes it declares."""
    found = []
    for route in iter_route_contexts(app.routes):
        path = str(route.path)
        if isinstance(route.original_route, APIWebSocketRoute) and path.startswith(TENANT_PREFIX):
            scopes = frozenset(
                scope
                for dependency in walk(route.dependant)
                if require_scopes in stages_of(dependency.call)
                for scope in dependency.own_oauth_scopes or ()
            )
            found.append((path, scopes))
    assert found, "the WebSocket routes were not found"
    return found


async def test_websocket_routes_follow_the_same_rules(world: World) -> None:
    """A foreign tenant's stream refuses like a missing one; each declared scope is needed."""
    owner_a = await tenant_with_owner(world, A)
    await tenant_with_owner(world, B)
    for path, scopes in websocket_routes(world.app):
        assert scopes, path
        assert scopes <= TENANT_SCOPES, path
        own = await handshake(world.app, path.replace("{tenant}", A), owner_a)
        assert own[0] == 101, own
        refusals = []
        for tenant in (B, GHOST):
            status, body = await handshake(world.app, path.replace("{tenant}", tenant), owner_a)
            problem = json.loads(body)
            problem.pop("request_id")
            problem["instance"] = problem["instance"].replace(tenant, "*")
            refusals.append((status, problem))
        assert refusals[0] == refusals[1]
        assert refusals[0][0] == 404
        assert refusals[0][1]["type"] == "urn:tenantgate:problem:tenant-not-found"
        for removed in sorted(scopes):
            rest = " ".join(sorted(TENANT_SCOPES - {removed}))
            token = await world.login(f"owner@{A}.test", scope=rest, tenant=A)
            status, body = await handshake(world.app, path.replace("{tenant}", A), token)
            assert status == 403, (path, removed)
            assert removed in json.loads(body)["required_scopes"]
