"""`make bench`: throughput and latency of the guard path, as ratios to /health, in one run.

Each server is one uvicorn worker on a fresh SQLite database in a temporary directory, on the
embedded defaults (no Redis) except one plan with limits nobody reaches, so the limiter does
all its work and never refuses. A separate process (bench/load.py) drives a bounded number of
requests over 32 keep-alive connections. Rows:

  bare FastAPI /health      FastAPI with one route and no middleware (the budget's reference)
  /health                   the app's /health: no I/O, every middleware
  /v1/me                    identity: RS256 token verified (cached) + admission
  item read                 identity + tenant + limiter + scopes + one database read
  item read, no limiter     the same app with a guard store that admits without counting
  item read, Redis limiter  as "item read" with TENANTGATE_REDIS_URL (if TENANTGATE_BENCH_REDIS_URL)
  baseline                  decode HS256, load the user with the ORM, then query (bench/baseline.py)

Every server is started first; the rows then take turns, a quarter of their requests at a
time, so load from elsewhere on the machine hurts all rows alike.
Options (environment): BENCH_REQUESTS (default 10000 per row), BENCH_CONNECTIONS (32).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
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

from auth.passwords import Passwords
from bench.baseline import SECRET_ENV
from config.settings import Settings
from storage import accounts
from storage.database import Database
from storage.items import NewItem, create_item
from storage.migrate import upgrade

ROOT = Path(__file__).resolve().parent.parent
TENANT = "bench"
EMAIL = "bench@bench.test"
UNREACHABLE = "1000000000/hour"
PLAN_LIMITS = {TENANT: {"principal": UNREACHABLE, "tenant": UNREACHABLE}}
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "10000"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
ROUNDS = 4  # each row's requests are run in this many slices, the rows taking turns
WARMUP = 200  # requests before each slice, not measured


@dataclass(frozen=True)
class Row:
    name: str
    result: dict[str, float]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def seed(settings: Settings, password: str) -> tuple[str, str]:
    """A tenant on the unreachable plan, a viewer in it and 100 items: (user id, an item id)."""
    database = Database(settings)
    passwords = Passwords(settings)
    try:
        password_hash = await passwords.hash(password)
        async with database.write() as connection:
            await accounts.create_tenant(connection, TENANT, "Bench", TENANT)
            user_id = await accounts.create_user(connection, EMAIL, password_hash)
            await accounts.add_member(connection, TENANT, user_id, "viewer")
        ids = []
        for index in range(100):
            new = NewItem(
                sku=f"SKU-{index:04d}",
                name=f"Item {index}",
                description="a thing that is counted",
                category=("tools", "parts", "books")[index % 3],
                price_units=125_000 + index,
                quantity=index,
                tags=["bench", f"t{index % 5}"],
            )
            ids.append((await create_item(database.driver, TENANT, new)).id)
        return user_id, ids[len(ids) // 2]
    finally:
        passwords.close()
        await database.dispose()


@contextmanager
def server(command: list[str], env: dict[str, str], log: Path) -> Iterator[int]:
    port = free_port()
    with log.open("ab") as output:
        process = subprocess.Popen(
            [*command, "--port", str(port)], cwd=ROOT, env=env, stdout=output, stderr=output
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise SystemExit(f"server exited; see {log}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code in {
                    200,
                    404,
                }:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"server did not start; see {log}")
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def uvicorn(app: str, *, factory: bool = False) -> list[str]:
    command = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--no-proxy-headers"]
    return [*command, "--no-server-header", *(["--factory"] if factory else [])]


def tenantgate_serve() -> list[str]:
    """The real entry point with its own defaults (`tenantgate serve`)."""
    return [sys.executable, "-c", "from api.cli import main; main()", "serve"]


@dataclass
class Target:
    """One row: what to load, and the latencies and time measured so far."""

    name: str
    port: int
    path: str
    token: str | None = None
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    def load(self, requests: int) -> None:
        command = [sys.executable, "-m", "bench.load", "--port", str(self.port)]
        command += ["--path", self.path, "--requests", str(requests), "--raw"]
        command += ["--connections", str(CONNECTIONS), "--warmup", str(WARMUP)]
        if self.token:
            command += ["--header", f"Authorization: Bearer {self.token}"]
        run = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
        result = json.loads(run.stdout)
        if set(result["statuses"]) != {"200"}:
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            url = f"http://127.0.0.1:{self.port}{self.path}"
            sample = httpx.get(url, headers=headers, timeout=10).text
            raise SystemExit(f"{self.name}: statuses {result['statuses']}: {sample[:500]}")
        self.seconds += result["seconds"]
        self.latencies += result["latencies_ms"]

    def result(self) -> dict[str, float]:
        ordered = sorted(self.latencies)
        return {
            "rps": len(ordered) / self.seconds,
            "p50_ms": ordered[int(0.50 * len(ordered))],
            "p99_ms": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        }


def access_token(port: int, password: str) -> str:
    form = {"grant_type": "password", "username": EMAIL, "password": password, "tenant": TENANT}
    response = httpx.post(f"http://127.0.0.1:{port}/token", data=form, timeout=30)
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


def measure() -> list[Row]:
    with (
        tempfile.TemporaryDirectory(prefix="tenantgate-bench-") as directory,
        ExitStack() as servers,
    ):
        workdir = Path(directory)
        log = workdir / "servers.log"
        env = {
            **os.environ,
            "TENANTGATE_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
            "TENANTGATE_PLAN_LIMITS": json.dumps(PLAN_LIMITS),
            "TENANTGATE_ENV": "development",
        }
        env.pop("TENANTGATE_REDIS_URL", None)
        settings = Settings(_env_file=None, database_url=env["TENANTGATE_DATABASE_URL"])
        upgrade(settings)
        password = secrets.token_urlsafe(18)
        user_id, item_id = asyncio.run(seed(settings, password))
        item = f"/v1/tenants/{TENANT}/items/{item_id}"
        secret = secrets.token_urlsafe(32)
        hs256 = jwt.encode({"sub": user_id, "exp": int(time.time()) + 3600}, secret, "HS256")

        # Every server is up at once (an idle one costs nothing) and the rows take turns, a
        # slice at a time: a burst of load from elsewhere on the machine hits all rows alike.
        bare = servers.enter_context(server(uvicorn("bench.variants:bare", factory=True), env, log))
        main = servers.enter_context(server(tenantgate_serve(), env, log))
        token = access_token(main, password)
        unlimited = servers.enter_context(
            server(uvicorn("bench.variants:without_limiter", factory=True), env, log)
        )
        baseline = servers.enter_context(
            server(uvicorn("bench.baseline:create", factory=True), {**env, SECRET_ENV: secret}, log)
        )
        targets = [
            Target("bare FastAPI /health", bare, "/health"),
            Target("/health", main, "/health"),
            Target("/v1/me", main, "/v1/me", token),
            Target("item read", main, item, token),
            Target("item read, no limiter", unlimited, item, token),
        ]
        redis_url = os.environ.get("TENANTGATE_BENCH_REDIS_URL")
        if redis_url:
            prefix = f"tgbench-{uuid.uuid4().hex[:8]}"
            servers.callback(_forget_prefix, redis_url, prefix)
            redis_env = {
                **env,
                "TENANTGATE_REDIS_URL": redis_url,
                "TENANTGATE_REDIS_PREFIX": prefix,
            }
            on_redis = servers.enter_context(server(tenantgate_serve(), redis_env, log))
            targets.append(Target("item read, Redis limiter", on_redis, item, token))
        targets.append(Target("baseline: HS256 + ORM user + query", baseline, item, hs256))

        for _ in range(ROUNDS):
            for target in targets:
                target.load(REQUESTS // ROUNDS)
        return [Row(target.name, target.result()) for target in targets]


def _forget_prefix(redis_url: str, prefix: str) -> None:
    from redis import Redis

    client = Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def table(rows: list[Row]) -> str:
    by_name = {row.name: row.result for row in rows}
    bare, health = by_name["bare FastAPI /health"]["rps"], by_name["/health"]["rps"]
    lines = [
        f"{'':38} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'x /health':>10} {'x bare':>8}",
        *(
            f"{row.name:38} {row.result['rps']:>9.0f} {row.result['p50_ms']:>8.2f} "
            f"{row.result['p99_ms']:>8.2f} {row.result['rps'] / health:>10.2f} "
            f"{row.result['rps'] / bare:>8.2f}"
            for row in rows
        ),
        "",
    ]
    guarded, baseline = by_name["item read"], by_name["baseline: HS256 + ORM user + query"]
    unlimited = by_name["item read, no limiter"]
    lines.append(f"item read / baseline:              {guarded['rps'] / baseline['rps']:.2f}x")
    lines.append(f"item read / item read, no limiter: {guarded['rps'] / unlimited['rps']:.2f}x")
    lines.append(
        f"{REQUESTS} requests per row, {CONNECTIONS} connections, 1 worker, {os.cpu_count()} CPUs"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(measure()))
