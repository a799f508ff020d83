"""`make bench`: the guard and the data path behind it, as ratios to /health measured in one run.

Every server runs in its own process (one uvicorn worker unless noted) and a separate process
(bench/load.py) drives it over 32 keep-alive connections. All servers are started first; the
rows then take turns, a quarter of their requests at a time, so load from elsewhere on this
shared machine hurts every row alike. Limits are out of reach (the limiter does all its work
and never refuses). Servers:

  bare            FastAPI with one route and no middleware (the framework's floor)
  embedded        `tenantgate serve` on the embedded defaults: SQLite, in-process guard store
                  and report cache
  sqlite+redis    SQLite with TENANTGATE_REDIS_URL (as in production, one worker); reports
                  computed by the database on every request (no report cache)
  postgres+redis  PostgreSQL and Redis, as in production (TENANTGATE_BENCH_POSTGRES_URL); reports
                  computed every time
  2 workers       sqlite+redis with `--workers 2`, reports cached in Redis
  no limiter      the embedded app with a guard store that admits without counting
  baseline        decode HS256, load the user with the ORM, then query (bench/baseline.py)

Redis rows need TENANTGATE_BENCH_REDIS_URL (or TENANTGATE_TEST_REDIS_URL), PostgreSQL rows
TENANTGATE_BENCH_POSTGRES_URL (a database is created and dropped). Options (environment):
BENCH_REQUESTS (default 10000 per row), BENCH_CONNECTIONS (32), BENCH_ROUNDS (8 slices per row).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import jwt

from bench.baseline import SECRET_ENV
from bench.layers import profile_item_read
from bench.seed import (
    BULK,
    BULK_EMAIL,
    EMAIL,
    PLAN_LIMITS,
    TENANT,
    create_postgres_database,
    drop_postgres_database,
    seed,
)
from bench.servers import ROOT, server, tenantgate_serve, uvicorn
from config.settings import Settings
from storage.migrate import upgrade

REQUESTS = int(os.environ.get("BENCH_REQUESTS", "10000"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
# Each row's requests are run in this many slices, the rows taking turns: on a shared machine a
# burst of load elsewhere then lands on every row alike (8: ratios within a few % run to run).
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "8"))
WARMUP = 200  # requests before each slice, not measured
NO_REPORT_CACHE = "TENANTGATE_REPORT_CACHE_TTL"  # set to 0: reports computed every time
CREATE_BODY = json.dumps(
    {"sku": "B-{n}", "name": "Bench item", "category": "bench", "price": "1.25", "quantity": 1}
)


@dataclass
class Target:
    """One row: what to load, and the latencies and time measured so far."""

    name: str
    port: int
    path: str
    token: str | None = None
    method: str = "GET"
    body: str | None = None
    expect: int = 200
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    def load(self, requests: int) -> None:
        command = [sys.executable, "-m", "bench.load", "--port", str(self.port)]
        command += ["--path", self.path, "--requests", str(requests), "--raw"]
        command += ["--connections", str(CONNECTIONS), "--warmup", str(WARMUP)]
        command += ["--method", self.method]
        if self.body is not None:
            command += ["--body", self.body]
        if self.token:
            command += ["--header", f"Authorization: Bearer {self.token}"]
        run = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
        result = json.loads(run.stdout)
        if set(result["statuses"]) != {str(self.expect)}:
            raise SystemExit(f"{self.name}: statuses {result['statuses']}")
        self.seconds += result["seconds"]
        self.latencies += result["latencies_ms"]

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@dataclass
class Backend:
    """One database the servers share: its settings, a token for each tenant, an item id."""

    settings: Settings
    env: dict[str, str]
    item_id: str = ""
    user_id: str = ""
    tokens: dict[str, str] = field(default_factory=dict)


def access_token(port: int, email: str, password: str, tenant: str) -> str:
    form = {"grant_type": "password", "username": email, "password": password, "tenant": tenant}
    response = httpx.post(f"http://127.0.0.1:{port}/token", data=form, timeout=60)
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


def prepare(url: str, base_env: dict[str, str], password: str) -> Backend:
    env = {**base_env, "TENANTGATE_DATABASE_URL": url}
    settings = Settings(_env_file=None, database_url=url, plan_limits=PLAN_LIMITS)
    upgrade(settings)
    seeded = asyncio.run(seed(settings, password))
    return Backend(settings, env, item_id=seeded.item_id, user_id=seeded.user_id)


def login(backend: Backend, port: int, password: str) -> None:
    backend.tokens[TENANT] = access_token(port, EMAIL, password, TENANT)
    backend.tokens[BULK] = access_token(port, BULK_EMAIL, password, BULK)


def report_row(label: str, port: int, backend: Backend) -> Target:
    path = f"/v1/tenants/{BULK}/reports/inventory"
    return Target(f"inventory report (10,000 items), {label}", port, path, backend.tokens[BULK])


def data_rows(label: str, port: int, backend: Backend, *, cached: bool) -> list[Target]:
    token = backend.tokens[TENANT]
    base = f"/v1/tenants/{TENANT}"
    return [
        Target(f"item read, {label}", port, f"{base}/items/{backend.item_id}", token),
        Target(f"list page of 50, {label}", port, f"{base}/items?limit=50", token),
        Target(
            f"create item, {label}",
            port,
            f"{base}/items",
            token,
            method="POST",
            body=CREATE_BODY,
            expect=201,
        ),
        report_row(f"{label}, {'cached' if cached else 'computed'}", port, backend),
    ]


@contextmanager
def postgres_database(admin_url: str | None) -> Iterator[str | None]:
    if admin_url is None:
        yield None
        return
    name = f"tenantgate_bench_{uuid.uuid4().hex[:8]}"
    url = create_postgres_database(admin_url, name)
    try:
        yield url
    finally:
        drop_postgres_database(admin_url, name)


def measure() -> tuple[list[Target], str]:
    redis_url = os.environ.get("TENANTGATE_BENCH_REDIS_URL") or os.environ.get(
        "TENANTGATE_TEST_REDIS_URL"
    )
    postgres_admin = os.environ.get("TENANTGATE_BENCH_POSTGRES_URL")
    with (
        tempfile.TemporaryDirectory(prefix="tenantgate-bench-") as directory,
        postgres_database(postgres_admin) as postgres_url,
        ExitStack() as servers,
    ):
        log = Path(directory) / "servers.log"
        base_env = {
            **os.environ,
            "TENANTGATE_PLAN_LIMITS": json.dumps(PLAN_LIMITS),
            "TENANTGATE_ENV": "development",
        }
        base_env.pop("TENANTGATE_REDIS_URL", None)
        password = secrets.token_urlsafe(18)
        sqlite = prepare(f"sqlite+aiosqlite:///{directory}/bench.db", base_env, password)
        secret = secrets.token_urlsafe(32)

        # Every server is up at once (an idle one costs nothing) and the rows take turns, a
        # slice at a time: a burst of load from elsewhere on the machine hits all rows alike.
        bare = servers.enter_context(server(uvicorn("bench.variants:bare"), sqlite.env, log))
        embedded = servers.enter_context(server(tenantgate_serve(), sqlite.env, log))
        login(sqlite, embedded, password)
        item = f"/v1/tenants/{TENANT}/items/{sqlite.item_id}"
        hs256 = jwt.encode({"sub": sqlite.user_id, "exp": int(time.time()) + 3600}, secret, "HS256")
        targets = [
            Target("bare FastAPI /health", bare, "/health"),
            Target("/health", embedded, "/health"),
            Target("/v1/me, embedded", embedded, "/v1/me", sqlite.tokens[TENANT]),
            *data_rows("embedded", embedded, sqlite, cached=True),
        ]
        unlimited = servers.enter_context(
            server(uvicorn("bench.variants:without_limiter"), sqlite.env, log)
        )
        targets.append(Target("item read, no limiter", unlimited, item, sqlite.tokens[TENANT]))
        if redis_url:
            prefix = f"tgbench-{uuid.uuid4().hex[:8]}"
            servers.callback(_forget_prefix, redis_url, prefix)
            redis_env = {"TENANTGATE_REDIS_URL": redis_url, "TENANTGATE_REDIS_PREFIX": prefix}
            sqlite_redis = {**sqlite.env, **redis_env}
            # The report rows of these servers measure the database's aggregate: no cache.
            uncached = {**sqlite_redis, NO_REPORT_CACHE: "0"}
            on_redis = servers.enter_context(server(tenantgate_serve(), uncached, log))
            token = sqlite.tokens[TENANT]
            targets.append(Target("/v1/me, Redis", on_redis, "/v1/me", token))
            targets += data_rows("SQLite + Redis", on_redis, sqlite, cached=False)
            two = servers.enter_context(server(tenantgate_serve(2), sqlite_redis, log))
            targets.append(Target("item read, SQLite + Redis, 2 workers", two, item, token))
            targets.append(report_row("SQLite + Redis, 2 workers, cached", two, sqlite))
            if postgres_url:
                postgres = prepare(postgres_url, base_env, password)
                pg_env = {
                    **postgres.env,
                    **redis_env,
                    "TENANTGATE_REDIS_PREFIX": prefix + "pg",
                    NO_REPORT_CACHE: "0",
                }
                servers.callback(_forget_prefix, redis_url, prefix + "pg")
                on_postgres = servers.enter_context(server(tenantgate_serve(), pg_env, log))
                login(postgres, on_postgres, password)
                targets += data_rows("PostgreSQL + Redis", on_postgres, postgres, cached=False)
        baseline_env = {**sqlite.env, SECRET_ENV: secret}
        baseline = servers.enter_context(
            server(uvicorn("bench.baseline:create"), baseline_env, log)
        )
        targets.append(Target("baseline: HS256 + ORM user + query", baseline, item, hs256))

        for _ in range(ROUNDS):
            for target in targets:
                target.load(REQUESTS // ROUNDS)
        layers = profile_item_read(sqlite.settings, item, sqlite.tokens[TENANT])
        return targets, layers


def _forget_prefix(redis_url: str, prefix: str) -> None:
    from redis import Redis

    client = Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


if __name__ == "__main__":
    from bench.report import report

    rows, layers = measure()
    print(report(rows, REQUESTS, CONNECTIONS))
    print()
    print(layers)
