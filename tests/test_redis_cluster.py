"""tenantgate on a real Redis Cluster of the test's own (tests/support_cluster.py).

- Admissions arriving together cost one round trip per node, and count exactly.
- `serve --workers 2` and two separate `serve` processes: limits, the sign-in limiter,
  revocation, role change and suspension hold across processes; on the replicas also key
  rotation, live audit events and cached reports (tests/support_replicas.py).
- A master killed under traffic (three masters with a replica each): every request is still
  answered, and once the replica is promoted the guard is back on the cluster, exact, without a
  restart; the time that takes is printed (docs/operations.md quotes it).
- A URL whose server's cluster mode contradicts TENANTGATE_REDIS_CLUSTER stops start-up with one
  line naming the setting.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from api.runtime import StartupRefused
from storage import accounts
from storage.guard_failover import FailoverGuardStore
from storage.guard_redis import RedisGuardStore
from storage.guard_state import Admission, Outcome, TenantState, Window
from storage.redis_client import create_redis
from tests.support import World, bearer, make_settings
from tests.support_cluster import ClusterProcesses, own_cluster
from tests.support_ops import TENANTGATE, ServerProcess, server_env
from tests.support_replicas import (
    PASSWORD,
    PLANS,
    Cast,
    a_rotation_reaches_every_replica_at_once,
    fresh_connections,
    limits_are_exact,
    live_events_reach_every_replica,
    process_doors,
    replica_env,
    reports_are_shared_and_never_stale,
    security_changes_hold_everywhere,
    seed,
    sign_in,
    sign_in_limit_is_exact,
    tokens,
    worker_doors,
)
from tests.test_replicas import start_replicas

# With the other tests that start server processes: one at a time on this machine.
pytestmark = pytest.mark.xdist_group("worker-processes")

LOGIN_TAG = "_login"  # the sign-in limiter's hash tag (policies/rate_limit.py)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcesses]:
    """Three masters, no replica: shared by the tests that kill nothing."""
    with own_cluster(tmp_path_factory.mktemp("cluster")) as started:
        yield started


@pytest.fixture
def prefix() -> str:
    return f"tgtest-{uuid.uuid4().hex[:12]}"


def slugs_by_master(cluster: ClusterProcesses, count: int = 40) -> dict[int, list[str]]:
    """Tenant slugs grouped by the port of the master that serves their hash tag."""
    found: dict[int, list[str]] = {}
    for index in range(count):
        slug = f"tenant-{index}"
        found.setdefault(cluster.master_of(f"x:{{{slug}}}:tenant").port, []).append(slug)
    return found


def spread_cast(cluster: ClusterProcesses) -> Cast:
    """Two tenants and the sign-in limiter, each on a different master: every check crosses
    nodes."""
    login = cluster.master_of(f"x:{{{LOGIN_TAG}}}:rl").port
    home, away = [slugs[0] for port, slugs in slugs_by_master(cluster).items() if port != login]
    return Cast(home, away)


async def test_admissions_of_one_turn_cost_one_round_trip_per_node(
    cluster: ClusterProcesses, prefix: str
) -> None:
    settings = make_settings(
        "sqlite+aiosqlite:///:memory:", redis_url=cluster.url, redis_cluster=True
    )
    tenants = [slugs[0] for slugs in slugs_by_master(cluster).values()]
    assert len(tenants) == 3
    store = RedisGuardStore(create_redis(settings), prefix)
    masters = [Redis(host="127.0.0.1", port=node.port) for node in cluster.nodes]
    try:
        for tenant in tenants:
            await store.put_tenant(tenant, TenantState(True, Window(3, 60), Window(1000, 60)))
            await store.admit(Admission(tenant, "warm", "warm", 1, True))  # scripts loaded
        before = [await _reads(master) for master in masters]
        admissions = [Admission(t, f"j{i}", "ann", 1, True) for t in tenants for i in range(5)]
        verdicts = await asyncio.gather(*(store.admit(a) for a in admissions))
        reads = [await _reads(master) - old for master, old in zip(masters, before, strict=True)]
    finally:
        await store.close()
        for master in masters:
            await master.aclose()
    outcomes = Counter((a.tag, v.outcome) for a, v in zip(admissions, verdicts, strict=True))
    for tenant in tenants:  # the principal's limit (3), exactly, on every node
        assert outcomes[(tenant, Outcome.OK)] == 3, outcomes
        assert outcomes[(tenant, Outcome.LIMITED)] == 2, outcomes
    # Per node: one pipelined read for its 5 admissions (+1 for the INFO call itself); one by
    # one they would be 5.
    assert all(read <= 3 for read in reads), reads


async def _reads(redis: Redis) -> int:
    return int((await redis.info("stats"))["total_reads_processed"])


def test_serve_refuses_a_redis_whose_cluster_mode_contradicts_the_setting(
    cluster: ClusterProcesses, redis_url: str, tmp_path: Path
) -> None:
    for url, flag in ((cluster.url, "false"), (redis_url, "true")):
        env = server_env(
            f"sqlite+aiosqlite:///{tmp_path}/refused.db",
            TENANTGATE_REDIS_URL=url,
            TENANTGATE_REDIS_CLUSTER=flag,
        )
        result = subprocess.run(
            [TENANTGATE, "serve", "--port", "1"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 1, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith("refused: ")
        assert f"set TENANTGATE_REDIS_CLUSTER={'true' if flag == 'false' else 'false'}" in lines[0]


async def test_the_app_refuses_to_start_on_a_contradicting_cluster_mode(
    cluster: ClusterProcesses, tmp_path: Path
) -> None:
    """Other ways of running the app (`uvicorn api.asgi:app`) refuse in the lifespan."""
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path}/x.db", redis_url=cluster.url)
    with pytest.raises(StartupRefused, match="set TENANTGATE_REDIS_CLUSTER=true"):
        async with World.start(settings):
            pass


async def _seeded(database_url: str, cluster: ClusterProcesses, prefix: str) -> Cast:
    cast = spread_cast(cluster)
    settings = make_settings(
        database_url,
        redis_url=cluster.url,
        redis_cluster=True,
        redis_prefix=prefix,
        plan_limits=PLANS,
    )
    async with World.start(settings) as world:
        await seed(world, cast)
    return cast


async def test_two_workers_on_a_cluster(
    cluster: ClusterProcesses, production_database_url: str, prefix: str, tmp_path: Path
) -> None:
    cast = await _seeded(production_database_url, cluster, prefix)
    env = replica_env(production_database_url, cluster.url, prefix, cluster=True)
    server = ServerProcess(env, "--workers", "2", cwd=tmp_path)
    try:
        await asyncio.to_thread(server.wait_ready)
        doors = worker_doors(server, server.worker_pids(2))
        async with fresh_connections() as http:
            token = await tokens(http, doors[0], cast)
            await limits_are_exact(
                http, [server.url], token["ann"], f"/v1/tenants/{cast.home}/items"
            )
            await sign_in_limit_is_exact(http, doors, cast.email("nobody"))
            await security_changes_hold_everywhere(http, doors, cast, token)
    finally:
        server.stop()


async def test_two_replicas_on_a_cluster(
    cluster: ClusterProcesses, production_database_url: str, prefix: str, tmp_path: Path
) -> None:
    cast = await _seeded(production_database_url, cluster, prefix)
    env = replica_env(production_database_url, cluster.url, prefix, cluster=True)
    served = await start_replicas(env, tmp_path)
    try:
        doors = process_doors(served.servers)
        async with fresh_connections() as http:
            token = await tokens(http, doors[0], cast)
            await limits_are_exact(
                http, served.urls, token["ann"], f"/v1/tenants/{cast.home}/items"
            )
            await sign_in_limit_is_exact(http, doors, cast.email("nobody"))
            await security_changes_hold_everywhere(http, doors, cast, token)
            took = await a_rotation_reaches_every_replica_at_once(
                http, served.urls, cast, env, tmp_path
            )
            print(f"key rotation reached both replicas in {took * 1000:.0f} ms")
            await live_events_reach_every_replica(http, served.urls, cast, token["owner"])
            await reports_are_shared_and_never_stale(http, served.urls, cast, token["owner"])
    finally:
        for server in served.servers:
            server.stop()


# The failover test: a busy tenant on the master that is killed, and a quiet one with a small
# limit on the same master (its slot moves to the promoted replica too).
FAILOVER_PLANS = {
    "pro": {"principal": "100000/minute", "tenant": "100000/minute"},
    "free": {"principal": "10/minute", "tenant": "1000/minute"},
}


@dataclass
class Traffic:
    """Requests through every replica until stopped: (when, replica, status, limit header)."""

    seen: list[tuple[float, int, int, str | None]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    running: bool = True

    async def drive(self, http: httpx.AsyncClient, urls: list[str], path: str, token: str) -> None:
        while self.running:
            for index, url in enumerate(urls):
                try:
                    response = await http.get(url + path, headers=bearer(token))
                except httpx.HTTPError as error:
                    self.failures.append(f"{index}: {type(error).__name__}")
                    continue
                limit = response.headers.get("x-ratelimit-limit")
                self.seen.append((time.monotonic(), index, response.status_code, limit))
            await asyncio.sleep(0.01)

    def back_on_redis(self, since: float, replicas: int, full: str) -> float | None:
        """When every replica has answered with Redis's count again (after `since`)."""
        first: dict[int, float] = {}
        for at, index, status, limit in self.seen:
            if at > since and status == 200 and limit == full and index not in first:
                first[index] = at
        return max(first.values()) if len(first) == replicas else None


async def test_a_master_killed_under_traffic(production_database_url: str, tmp_path: Path) -> None:
    prefix = f"tgtest-{uuid.uuid4().hex[:12]}"
    with own_cluster(tmp_path / "cluster", replicas=1) as cluster:
        by_master = slugs_by_master(cluster)
        busy, quiet = next(slugs for slugs in by_master.values() if len(slugs) >= 2)[:2]
        victim = cluster.master_of(f"x:{{{busy}}}:tenant")
        settings = make_settings(
            production_database_url,
            redis_url=cluster.url,
            redis_cluster=True,
            redis_prefix=prefix,
            plan_limits=FAILOVER_PLANS,
        )
        async with World.start(settings) as world:
            await world.tenant(busy, plan="pro")
            await world.tenant(quiet, plan="free")
            for name, tenant in (("ann", busy), ("bob", quiet)):
                user = await world.user(f"{name}@{tenant}.test", PASSWORD)
                async with world.database.write() as connection:
                    await accounts.add_member(connection, tenant, user, "viewer")
        env = replica_env(production_database_url, cluster.url, prefix, cluster=True)
        env["TENANTGATE_PLAN_LIMITS"] = json.dumps(FAILOVER_PLANS)
        (tmp_path / "servers").mkdir()
        served = await start_replicas(env, tmp_path / "servers")
        traffic = Traffic()
        try:
            async with fresh_connections() as http:
                ann = (await sign_in(http, served.urls[0], f"ann@{busy}.test", PASSWORD)).json()
                bob = (await sign_in(http, served.urls[0], f"bob@{quiet}.test", PASSWORD)).json()
                driver = asyncio.create_task(
                    traffic.drive(
                        http, served.urls, f"/v1/tenants/{busy}/items", ann["access_token"]
                    )
                )
                await asyncio.sleep(1.0)
                killed = time.monotonic()
                cluster.kill(victim)
                await asyncio.to_thread(cluster.wait_promoted, f"x:{{{busy}}}:tenant", victim)
                promoted = time.monotonic()
                recovered = None
                while recovered is None and time.monotonic() - killed < 60:
                    await asyncio.sleep(0.2)
                    recovered = traffic.back_on_redis(promoted, len(served.urls), "100000")
                traffic.running = False
                await driver
                assert recovered is not None, "no way back to the cluster:\n" + "\n".join(
                    _events(server) for server in served.servers
                )
                print(
                    f"replica promoted {promoted - killed:.1f} s after the kill; guard exact "
                    f"again on every replica {recovered - killed:.1f} s after it"
                )
                # Exact again: 10 of 25 for a principal whose slot moved to the promoted replica.
                await limits_are_exact_for(http, served.urls, bob["access_token"], quiet)
        finally:
            traffic.running = False
            for server in served.servers:
                server.stop()
    assert not traffic.failures, traffic.failures[:5]
    statuses = Counter(status for _, _, status, _ in traffic.seen)
    assert set(statuses) == {200}, statuses  # answered all along (fail-open), never a 5xx
    during = [s for s in traffic.seen if killed < s[0] < recovered]
    assert during, "no request was made during the outage"


def _events(server: ServerProcess) -> str:
    """The server's log without its access lines."""
    lines = server.stderr().splitlines()
    return "\n".join(line for line in lines if '"tenantgate.access"' not in line)


async def limits_are_exact_for(
    http: httpx.AsyncClient, urls: list[str], token: str, tenant: str
) -> None:
    responses = await asyncio.gather(
        *(
            http.get(f"{urls[i % 2]}/v1/tenants/{tenant}/items", headers=bearer(token))
            for i in range(25)
        )
    )
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 10, 429: 15}, statuses
    assert {r.headers["x-ratelimit-limit"] for r in responses if r.status_code == 200} == {"10"}


async def test_a_master_lost_while_the_others_answer(tmp_path: Path) -> None:
    """One master of three dies and the breaker stays closed (most calls succeed): tenants on
    the other masters stay exact on Redis throughout, the dead master's tenants fall back, and
    come back to Redis once its replica is promoted; the failover re-seeds Redis from the
    database (writes the dead master had not passed on are lost)."""
    with own_cluster(tmp_path, replicas=1) as cluster:
        by_master = list(slugs_by_master(cluster).values())
        doomed, alive = by_master[0][0], by_master[1][0]
        victim = cluster.master_of(f"x:{{{doomed}}}:tenant")
        settings = make_settings(
            "sqlite+aiosqlite:///:memory:", redis_url=cluster.url, redis_cluster=True
        )
        state = TenantState(True, Window(100_000, 60), Window(100_000, 60))
        store = FailoverGuardStore(
            RedisGuardStore(create_redis(settings), "failover"), failures=100_000, share=2
        )
        seeded = asyncio.Event()

        async def reseed() -> None:
            for tenant in (doomed, alive):
                await store.put_tenant(tenant, state)
            seeded.set()

        store.on_recovery = reseed
        try:
            await reseed()
            seeded.clear()

            async def admit(tenant: str) -> bool:
                """True when Redis counted it (the full limit), False for the fallback."""
                verdict = await store.admit(Admission(tenant, "j", "ann", 1, True))
                if verdict.outcome is Outcome.UNKNOWN_TENANT:  # as policies/admission.py does
                    await store.seeding_target().put_tenant(tenant, state)
                    return False
                assert verdict.outcome is Outcome.OK
                assert verdict.principal is not None
                return verdict.principal.limit == 100_000

            assert await admit(doomed)
            cluster.kill(victim)
            killed = time.monotonic()
            outcomes: dict[str, list[bool]] = {doomed: [], alive: []}
            while not seeded.is_set() and time.monotonic() - killed < 30:
                for tenant, counted in zip(
                    (doomed, alive), await asyncio.gather(admit(doomed), admit(alive)), strict=True
                ):
                    outcomes[tenant].append(counted)
                await asyncio.sleep(0.02)
            assert seeded.is_set(), "no re-seed after the failover"
            assert all(outcomes[alive]), "a tenant on a live master fell back"
            assert not all(outcomes[doomed]), "the dead master's tenant never fell back"
            assert not store.degraded  # the breaker stayed closed all along
            for _ in range(50):  # back on the promoted replica, without a restart
                if await admit(doomed):
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the dead master's tenant did not come back to Redis")
        finally:
            await store.close()
