"""Access evaluation answers what the guard answers: every route x principal, live against
evaluated, plus a suspended tenant, a removed member, a deleted client, another tenant's path."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from api.schemas.access import AccessEvaluationOut
from policies.access_matrix import WEBSOCKET, RouteAccess, route_matrix
from policies.evaluation import evaluate
from policies.roles import ROLES
from tests.support import World, bearer
from tests.support_clients import client_token, create_client
from tests.support_items import assert_problem, tenant_with_owner
from tests.test_clients import TENANTGATE

PARAM = re.compile(r"\{(\w+)\}")
# What a guard stage answers when it refuses; anything else got past the guards.
GUARD_REFUSALS = {
    "unauthenticated",
    "invalid-token",
    "tenant-not-found",
    "tenant-suspended",
    "insufficient-scope",
}


@dataclass
class Principal:
    name: str
    subject: str
    token: str


def url_of(row: RouteAccess, tenant: str) -> str:
    """The route's path with the tenant filled in and ids that name nothing."""
    return PARAM.sub(lambda m: tenant if m[1] == "tenant" else f"{m[1]}_000000", row.path)


def refusal(response: httpx.Response) -> tuple[int, str] | None:
    """(status, problem kind) when a guard stage refused the request, else None."""
    if not response.headers.get("content-type", "").startswith("application/problem+json"):
        return None
    kind = response.json()["type"].removeprefix("urn:tenantgate:problem:")
    return (response.status_code, kind) if kind in GUARD_REFUSALS else None


async def live(world: World, row: RouteAccess, url: str, token: str) -> tuple[int, str] | None:
    if row.method == WEBSOCKET:
        from tests.support_ws import handshake

        status, denial = await handshake(world.app, url, token)
        if status == 101:
            return None
        kind = json.loads(denial)["type"].removeprefix("urn:tenantgate:problem:")
        return (status, kind) if kind in GUARD_REFUSALS else None
    body: dict[str, Any] | None = {} if row.method in {"POST", "PUT", "PATCH"} else None
    response = await world.client.request(row.method, url, headers=bearer(token), json=body)
    assert response.status_code < 500, f"{row.method} {url}: {response.text}"
    return refusal(response)


async def evaluated(
    world: World, asker: str, subject: str, method: str, path: str
) -> dict[str, Any]:
    response = await world.client.post(
        "/v1/tenants/acme/access/evaluate",
        json={"principal": subject, "method": method, "path": path},
        headers=bearer(asker),
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


# The problem a live request gets for each refusal reason evaluate gives first (the reasons
# themselves come from policies/evaluation.py; this is the test's expectation of the guard).
PROBLEM_OF_REASON = {
    "tenant_mismatch": "tenant-not-found",
    "membership_removed": "invalid-token",
    "client_revoked": "invalid-token",
    "tenant_suspended": "tenant-suspended",
    "one_time_password": "insufficient-scope",
    "missing_scope": "insufficient-scope",
}


def agrees(answer: dict[str, Any], seen: tuple[int, str] | None, where: str) -> None:
    """Evaluate's verdict is the live one: allowed, or refused with the same status and the
    same problem (a 403 for a suspended tenant is not a 403 for a missing scope)."""
    if seen is None:
        assert answer["allowed"], f"{where}: live passes, evaluate says {answer['reasons']}"
        assert answer["reasons"] == []
    else:
        assert not answer["allowed"], f"{where}: live refuses {seen}, evaluate allows"
        first = answer["reasons"][0]
        assert (first["status"], PROBLEM_OF_REASON[first["code"]]) == seen, f"{where}: {answer}"


async def walk_routes(
    world: World,
    principal: Principal,
    ask: Callable[[str, str], Awaitable[dict[str, Any]]],
) -> list[tuple[int, str] | None]:
    """Every route (in acme, and in globex for tenant routes): the live request with the
    principal's token, against `ask(method, path)`; returns what the live requests got."""
    seen_all = []
    for row in route_matrix(world.app.routes):
        for tenant in ("acme", "globex") if row.tenant_bound else ("acme",):
            url = url_of(row, tenant)
            seen = await live(world, row, url, principal.token)
            answer = await ask(row.method, url)
            where = f"{principal.name} {row.method} {url}"
            agrees(answer, seen, where)
            assert answer["route"] == f"{row.method} {row.path}", where
            assert answer["required_scopes"] == sorted(row.scopes), where
            if tenant == "globex":
                assert answer["reasons"][0]["code"] == "tenant_mismatch", where
            seen_all.append(seen)
    return seen_all


async def principals(world: World) -> list[Principal]:
    found = []
    for role in ROLES:
        email = f"{role}-walk@acme.test"
        user_id = await world.member("acme", email, role)
        found.append(Principal(role, user_id, await world.login(email, tenant="acme")))
    owner = found[list(ROLES).index("owner")].token
    client = await create_client(world, owner, "acme", ["items:read", "audit:read"])
    token = await client_token(world.client, client)
    found.append(Principal("client", f"client:{client.client_id}", token))
    invited = await world.client.post(
        "/v1/tenants/acme/members",
        json={"email": "new@acme.test", "role": "member"},
        headers=bearer(owner),
    )
    one_time = invited.json()
    world.passwords["new@acme.test"] = one_time["initial_password"]
    otp_token = await world.login("new@acme.test")
    found.append(Principal("one-time password", one_time["user_id"], otp_token))
    return found


async def test_every_route_and_principal_evaluates_as_the_live_request_answers(
    world: World,
) -> None:
    owner_token = await tenant_with_owner(world, "acme")
    await tenant_with_owner(world, "globex")
    everyone = await principals(world)
    assert len(route_matrix(world.app.routes)) >= 35
    checked = 0
    for principal in everyone:

        async def ask(method: str, path: str, subject: str = principal.subject) -> dict[str, Any]:
            return await evaluated(world, owner_token, subject, method, path)

        checked += len(await walk_routes(world, principal, ask))
    assert checked > 300
    # Not vacuous: the walk met both answers, and each principal's own denial reasons.
    viewer = next(p for p in everyone if p.name == "viewer")
    answer = await evaluated(world, owner_token, viewer.subject, "POST", "/v1/tenants/acme/items")
    assert answer["missing_scopes"] == ["items:write"]
    assert answer["granted_scopes"] == ["items:read", "reports:read"]
    assert answer["role"] == "viewer"
    assert [r["code"] for r in answer["reasons"]] == ["missing_scope"]
    newcomer = next(p for p in everyone if p.name == "one-time password")
    answer = await evaluated(world, owner_token, newcomer.subject, "GET", "/v1/tenants/acme/items")
    assert [r["code"] for r in answer["reasons"]] == ["one_time_password", "missing_scope"]
    template = await evaluated(
        world, owner_token, viewer.subject, "GET", "/v1/tenants/{tenant}/items/{item_id}"
    )
    assert template["allowed"]
    assert template["route"] == "GET /v1/tenants/{tenant}/items/{item_id}"


async def test_suspension_removal_and_deletion_evaluate_as_the_guard_refuses(
    world: World,
) -> None:
    """Every route again, for a removed member, a deleted client and a suspended tenant."""
    owner_token = await tenant_with_owner(world, "acme")
    await tenant_with_owner(world, "globex")
    viewer_id = await world.member("acme", "viewer@acme.test", "viewer")
    viewer = Principal("removed viewer", viewer_id, await world.login("viewer@acme.test"))
    client = await create_client(world, owner_token, "acme", ["items:read"])
    subject = f"client:{client.client_id}"
    deleted = Principal("deleted client", subject, await client_token(world.client, client))

    removal = await world.client.delete(
        f"/v1/tenants/acme/members/{viewer_id}", headers=bearer(owner_token)
    )
    assert removal.status_code == 204
    deletion = await world.client.delete(
        f"/v1/tenants/acme/clients/{client.client_id}", headers=bearer(owner_token)
    )
    assert deletion.status_code == 204
    for gone, code in ((viewer, "membership_removed"), (deleted, "client_revoked")):

        async def ask(method: str, path: str, who: str = gone.subject) -> dict[str, Any]:
            return await evaluated(world, owner_token, who, method, path)

        seen = await walk_routes(world, gone, ask)
        assert (401, "invalid-token") in seen  # not vacuous: the cut-off was met
        answer = await ask("GET", "/v1/tenants/acme/items")
        assert answer["reasons"][0] == {
            "code": code,
            "stage": "admission",
            "status": 401,
            "detail": answer["reasons"][0]["detail"],
        }
        assert answer["granted_scopes"] == []

    # Unknown, and another tenant's principals, are one and the same 404.
    stranger = await world.member("globex", "g@globex.test", "owner")
    other = await create_client(world, await world.login("g@globex.test"), "globex", ["items:read"])
    bodies = []
    for who in (stranger, "usr_000000", f"client:{other.client_id}", "client:cli_000000"):
        response = await world.client.post(
            "/v1/tenants/acme/access/evaluate",
            json={"principal": who, "method": "GET", "path": "/v1/tenants/acme/items"},
            headers=bearer(owner_token),
        )
        body = assert_problem(response, 404, "principal-not-found")
        body.pop("request_id")
        bodies.append(body)
    assert all(body == bodies[0] for body in bodies)

    # A suspended tenant: tenant routes refuse, /v1/me does not (it is bound to no tenant).
    # The evaluate route is a tenant route too, so the suspended tenant's answers come from
    # the function behind it, on the same app's routes and database.
    member_id = await world.member("acme", "m@acme.test", "member")
    member = Principal("member of a suspended tenant", member_id, await world.login("m@acme.test"))
    await world.user("root@platform.test", platform_admin=True)
    root = await world.login("root@platform.test")
    suspended = await world.client.patch(
        "/v1/tenants/acme", json={"status": "suspended"}, headers=bearer(root)
    )
    assert suspended.status_code == 200

    async def ask_directly(method: str, path: str) -> dict[str, Any]:
        async with world.database.snapshot() as connection:
            answer = await evaluate(connection, world.app.routes, "acme", member_id, method, path)
        return AccessEvaluationOut.of(answer).model_dump(mode="json")

    seen = await walk_routes(world, member, ask_directly)
    assert (403, "tenant-suspended") in seen
    assert None in seen  # /v1/me and the public routes still answer
    items = await ask_directly("GET", "/v1/tenants/acme/items")
    assert [(r["code"], r["status"]) for r in items["reasons"]] == [("tenant_suspended", 403)]
    assert (await ask_directly("GET", "/v1/me"))["allowed"]


async def test_the_command_line_prints_the_same_answer(world: World, tmp_path: Path) -> None:
    owner_token = await tenant_with_owner(world, "acme")
    viewer_id = await world.member("acme", "viewer@acme.test", "viewer")
    question = {"principal": viewer_id, "method": "DELETE", "path": "/v1/tenants/acme/items/x"}
    api = await world.client.post(
        "/v1/tenants/acme/access/evaluate", json=question, headers=bearer(owner_token)
    )
    env = {**os.environ, "TENANTGATE_DATABASE_URL": world.settings.database_url}
    command = [TENANTGATE, "access", "evaluate", "acme", viewer_id, "DELETE", question["path"]]

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *extra],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    as_json, as_text = await asyncio.gather(
        asyncio.to_thread(run, "--json"), asyncio.to_thread(run)
    )
    assert as_json.returncode == 1, as_json.stderr  # denied
    assert json.loads(as_json.stdout) == api.json()
    assert as_text.stdout.startswith(
        f"denied: {viewer_id} -> DELETE /v1/tenants/{{tenant}}/items/{{item_id}}"
    )
    assert "- missing_scope (scope, 403)" in as_text.stdout


async def test_bad_questions_are_422_and_unknown_routes_say_so(world: World) -> None:
    owner_token = await tenant_with_owner(world, "acme")
    me = (await world.client.get("/v1/me", headers=bearer(owner_token))).json()["subject"]
    for body in (
        {"principal": me, "method": "FETCH", "path": "/v1/me"},
        {"principal": me, "method": "GET", "path": "v1/me"},
        {"principal": me, "method": "GET", "path": "/v1/me", "tenant": "acme"},
        {"principal": "", "method": "GET", "path": "/v1/me"},
    ):
        response = await world.client.post(
            "/v1/tenants/acme/access/evaluate", json=body, headers=bearer(owner_token)
        )
        assert_problem(response, 422, "validation-error")
    for method, path, code, status in (
        ("GET", "/v1/nowhere", "no_route", 404),
        ("PUT", "/v1/tenants/acme/items", "method_not_allowed", 405),
    ):
        answer = await evaluated(world, owner_token, me, method, path)
        assert answer["route"] is None
        assert [(r["code"], r["status"]) for r in answer["reasons"]] == [(code, status)]
        live_response = await world.client.request(method, path, headers=bearer(owner_token))
        assert live_response.status_code == status
