"""Several tenantgate processes sharing one database and one Redis (or Redis Cluster): what each
of them must see of the others' work, checked over HTTP through each process in turn.

A "door" reaches exactly one process: a replica's own URL, or one worker of `serve --workers 2`
with the other one stopped (ServerProcess.only). Every check makes a change through one door
and looks through every door, on the very next request.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from storage import accounts
from tests.support import World, bearer, jwt_part
from tests.support_ops import TENANTGATE, ServerProcess, server_env
from tests.test_audit_stream import events, offer, until_ready
from tests.test_report_cache import REPORT, lookups

PASSWORD = "Replica-Pa55word-qv"
LIMIT = 20  # requests per minute per principal (the owner makes about 15 in all)
LOGIN_LIMIT = 5  # password attempts per minute per username
PLANS = {"free": {"principal": f"{LIMIT}/minute", "tenant": "1000/minute"}}

Door = Callable[[], AbstractContextManager[str]]


def replica_env(database_url: str, redis_url: str, prefix: str, *, cluster: bool) -> dict[str, str]:
    return server_env(
        database_url,
        TENANTGATE_REDIS_URL=redis_url,
        TENANTGATE_REDIS_PREFIX=prefix,
        TENANTGATE_REDIS_CLUSTER=str(cluster).lower(),
        TENANTGATE_REDIS_TIMEOUT="5",  # a starved test machine must not trip the breaker
        TENANTGATE_REDIS_FALLBACK_PROCESSES="2",
        TENANTGATE_PLAN_LIMITS=json.dumps(PLANS),
        TENANTGATE_LOGIN_RATE_LIMIT_USERNAME=f"{LOGIN_LIMIT}/minute",
        TENANTGATE_LOGIN_RATE_LIMIT_IP="1000/minute",
        TENANTGATE_LOGIN_RATE_LIMIT_CLIENT="1000/minute",
        # Rotations must reach the replicas by announcement, not by this re-read.
        TENANTGATE_KEY_REFRESH_INTERVAL="3600",
    )


@dataclass
class Cast:
    """Tenant `home` (limited, changed) and `away` (suspended); who signs in, and their ids."""

    home: str
    away: str
    ids: dict[str, str] = field(default_factory=dict)

    def email(self, who: str) -> str:
        tenant = self.away if who == "boss" else "platform" if who == "root" else self.home
        return f"{who}@{tenant}.test"


# who -> role in `home` (boss is the owner of `away`, root the platform admin)
ROLES = {"owner": "owner", "ann": "viewer", "rev": "viewer", "low": "admin"}


async def seed(world: World, cast: Cast) -> None:
    for tenant in (cast.home, cast.away):
        await world.tenant(tenant)
    for who in [*ROLES, "boss", "root"]:
        cast.ids[who] = await world.user(cast.email(who), PASSWORD, platform_admin=who == "root")
    async with world.database.write() as connection:
        for who, role in ROLES.items():
            await accounts.add_member(connection, cast.home, cast.ids[who], role)
        await accounts.add_member(connection, cast.away, cast.ids["boss"], "owner")


def process_doors(servers: list[ServerProcess]) -> list[Door]:
    @contextmanager
    def direct(url: str) -> Iterator[str]:
        yield url

    return [partial(direct, server.url) for server in servers]


def worker_doors(server: ServerProcess, pids: list[int]) -> list[Door]:
    @contextmanager
    def only(pid: int) -> Iterator[str]:
        with server.only(pid, pids):
            yield server.url

    return [partial(only, pid) for pid in pids]


def fresh_connections() -> httpx.AsyncClient:
    """No keep-alive: each request is a new connection (so a worker door holds)."""
    return httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=0), timeout=30)


async def sign_in(http: httpx.AsyncClient, url: str, email: str, password: str) -> httpx.Response:
    form = {"grant_type": "password", "username": email, "password": password}
    return await http.post(f"{url}/token", data=form)


async def tokens(http: httpx.AsyncClient, door: Door, cast: Cast) -> dict[str, str]:
    found = {}
    with door() as url:
        for who in [*ROLES, "boss", "root"]:
            response = await sign_in(http, url, cast.email(who), PASSWORD)
            assert response.status_code == 200, response.text
            found[who] = response.json()["access_token"]
    return found


async def limits_are_exact(http: httpx.AsyncClient, urls: list[str], token: str, path: str) -> None:
    """LIMIT + 15 requests at once, spread over `urls`: exactly LIMIT pass, each counted by
    Redis (the limit header is the full limit, not a process's share)."""
    responses = await asyncio.gather(
        *(http.get(urls[i % len(urls)] + path, headers=bearer(token)) for i in range(LIMIT + 15))
    )
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: LIMIT, 429: 15}, statuses
    assert {r.headers["x-ratelimit-limit"] for r in responses if r.status_code == 200} == {
        str(LIMIT)
    }


async def sign_in_limit_is_exact(http: httpx.AsyncClient, doors: list[Door], email: str) -> None:
    """Wrong passwords for one username, through each door in turn: LOGIN_LIMIT are checked,
    then every process refuses (one process alone would check LOGIN_LIMIT more)."""
    answers = []
    for attempt in range(2 * LOGIN_LIMIT):
        with doors[attempt % len(doors)]() as url:
            answers.append((await sign_in(http, url, email, "wrong-Pa55word-x")).status_code)
    assert answers == [400] * LOGIN_LIMIT + [429] * LOGIN_LIMIT, answers


async def security_changes_hold_everywhere(
    http: httpx.AsyncClient, doors: list[Door], cast: Cast, token: dict[str, str]
) -> None:
    """Revocation, a role change and a suspension made through the first door are in force on
    the next request through every door, although every process verified (and cached) the
    tokens before."""
    members = f"/v1/tenants/{cast.home}/members"
    checks = {
        "rev": f"/v1/tenants/{cast.home}/items",
        "low": members,
        "boss": f"/v1/tenants/{cast.away}/items",
    }
    for door in doors:
        with door() as url:
            for who, path in checks.items():
                assert (await http.get(url + path, headers=bearer(token[who]))).status_code == 200
    with doors[0]() as url:
        revoked = await http.post(f"{url}/revoke", data={"token": token["rev"]})
        assert revoked.status_code == 200
        lowered = await http.patch(
            f"{url}{members}/{cast.ids['low']}",
            json={"role": "viewer"},
            headers=bearer(token["owner"]),
        )
        assert lowered.status_code == 200, lowered.text
        suspended = await http.patch(
            f"{url}/v1/tenants/{cast.away}",
            json={"status": "suspended"},
            headers=bearer(token["root"]),
        )
        assert suspended.status_code == 200, suspended.text
    for door in doors:
        with door() as url:
            for who, status in (("rev", 401), ("low", 401), ("boss", 403)):
                answer = await http.get(url + checks[who], headers=bearer(token[who]))
                assert answer.status_code == status, (who, answer.text)
            assert (
                await http.get(url + members, headers=bearer(token["owner"]))
            ).status_code == 200


def rotate_keys(env: dict[str, str], cwd: Path) -> dict[str, Any]:
    result = subprocess.run(
        [TENANTGATE, "keys", "rotate", "--force", "--json"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    outcome: dict[str, Any] = json.loads(result.stdout)
    return outcome


async def a_rotation_reaches_every_replica_at_once(
    http: httpx.AsyncClient, urls: list[str], cast: Cast, env: dict[str, str], cwd: Path
) -> float:
    """`tenantgate keys rotate` while the replicas re-read keys only every hour: within a second
    each serves the new key in its JWKS and signs with it. Returns the seconds it took."""
    rotated = rotate_keys(env, cwd)
    assert rotated["announced"] is True
    started = time.monotonic()
    waiting = set(urls)
    while waiting and time.monotonic() - started < 5:
        for url in sorted(waiting):
            kids = {
                key["kid"]
                for key in (await http.get(f"{url}/.well-known/jwks.json")).json()["keys"]
            }
            if rotated["kid"] in kids:
                waiting.discard(url)
        await asyncio.sleep(0.02)
    took = time.monotonic() - started
    assert not waiting, f"not rotated after {took:.1f} s: {waiting}"
    assert took < 1.0, took
    for url in urls:
        response = await sign_in(http, url, cast.email("owner"), PASSWORD)
        assert jwt_part(response.json()["access_token"], 0)["kid"] == rotated["kid"]
    return took


async def live_events_reach_every_replica(
    http: httpx.AsyncClient, urls: list[str], cast: Cast, owner: str
) -> None:
    """A stream on the second replica gets the events of changes made on the first, through the
    fan-out (its 0.5 s database poll may deliver one first, not all three)."""
    ws_url = urls[1].replace("http://", "ws://") + f"/v1/tenants/{cast.home}/audit/stream"
    async with connect(ws_url, subprotocols=offer(owner)) as ws:
        await until_ready(ws)
        for index in range(3):
            created = await http.post(
                f"{urls[0]}/v1/tenants/{cast.home}/members",
                json={"email": f"late{index}@{cast.home}.test", "role": "viewer"},
                headers=bearer(owner),
            )
            assert created.status_code == 201, created.text
        received = await events(ws, 3)
        assert [event["action"] for event in received] == ["member.added"] * 3, received
    scrape = (await http.get(f"{urls[1]}/metrics")).text
    assert sample(scrape, "tenantgate_audit_stream_deliveries_total", origin="other_worker") >= 1


def sample(text: str, name: str, **labels: str) -> float:
    """One sample of a Prometheus scrape (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return float(found.value)
    return 0.0


async def reports_are_shared_and_never_stale(
    http: httpx.AsyncClient, urls: list[str], cast: Cast, owner: str
) -> None:
    """The second replica serves the first one's cached report, and never after a write made
    on the first."""
    path = REPORT.format(cast.home)
    before = [lookups((await http.get(f"{url}/metrics")).text).get("hit", 0) for url in urls]
    first = await http.get(urls[0] + path, headers=bearer(owner))
    assert first.status_code == 200, first.text
    shared = await http.get(urls[1] + path, headers=bearer(owner))
    assert shared.json() == first.json()
    body = {"sku": "R-1", "name": "x", "category": "c", "price": "1", "quantity": 7}
    created = await http.post(
        f"{urls[0]}/v1/tenants/{cast.home}/items", json=body, headers=bearer(owner)
    )
    assert created.status_code == 201, created.text
    after = await http.get(urls[1] + path, headers=bearer(owner))
    assert after.json()["totals"]["total_quantity"] == first.json()["totals"]["total_quantity"] + 7
    hits = [lookups((await http.get(f"{url}/metrics")).text).get("hit", 0) for url in urls]
    assert hits[1] - before[1] == 1, (before, hits)  # the shared read, and only that one
