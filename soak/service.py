"""The service under soak: its own PostgreSQL database and Redis prefix, `tenantgate serve` with
two workers, and a platform admin; removed again afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import sqlalchemy as sa
from redis import Redis
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

TENANTGATE = str(Path(sys.executable).with_name("tenantgate"))
POSTGRES_URL = os.environ.get(
    "TENANTGATE_SOAK_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("TENANTGATE_SOAK_REDIS_URL", "redis://127.0.0.1:6379/0")
OUT_OF_REACH = "100000000/hour"
PLANS = {p: {"principal": OUT_OF_REACH, "tenant": OUT_OF_REACH} for p in ("free", "pro")}
WORKERS = 2
# Short-lived tokens and keys re-read often, so refreshes and a rotation happen within the run.
TOKEN_TTL = 60
KEY_REFRESH = 5


@dataclass(frozen=True)
class Service:
    url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path
    admin_email: str
    admin_password: str

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [TENANTGATE, *args], env=self.env, capture_output=True, text=True, check=False
        )

    def worker_pids(self) -> list[int]:
        """The worker processes (uvicorn's supervisor spawns them; not its resource tracker)."""
        children = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        pids = []
        for pid in map(int, children):
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"spawn_main" in command and b"resource_tracker" not in command:
                pids.append(pid)
        return sorted(pids)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _admin_sql(*statements: str) -> None:
    engine = create_async_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    async with engine.connect() as connection:
        for statement in statements:
            await connection.execute(sa.text(statement))
    await engine.dispose()


@contextmanager
def running(directory: Path) -> Iterator[Service]:
    name = f"tenantgate_soak_{os.getpid()}"
    prefix = f"soak-{secrets.token_hex(4)}"
    drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    asyncio.run(_admin_sql(drop, f'CREATE DATABASE "{name}"'))
    database_url = sa.make_url(POSTGRES_URL).set(database=name).render_as_string(False)
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TENANTGATE_")},
        "TENANTGATE_DATABASE_URL": database_url,
        "TENANTGATE_REDIS_URL": REDIS_URL,
        "TENANTGATE_REDIS_PREFIX": prefix,
        "TENANTGATE_ISSUER": f"http://127.0.0.1:{port}",
        "TENANTGATE_PLAN_LIMITS": json.dumps(PLANS),
        "TENANTGATE_LOGIN_RATE_LIMIT_IP": OUT_OF_REACH,
        "TENANTGATE_LOGIN_RATE_LIMIT_USERNAME": OUT_OF_REACH,
        "TENANTGATE_LOGIN_RATE_LIMIT_CLIENT": OUT_OF_REACH,
        "TENANTGATE_PASSWORD_CHANGE_RATE_LIMIT": OUT_OF_REACH,
        "TENANTGATE_ACCESS_TOKEN_TTL": str(TOKEN_TTL),
        "TENANTGATE_KEY_REFRESH_INTERVAL": str(KEY_REFRESH),
        "TENANTGATE_SYSTEM_SECRET": secrets.token_hex(32),
        "TENANTGATE_ARGON2_TIME_COST": "1",
        "TENANTGATE_ARGON2_MEMORY_COST": "8192",
        "TENANTGATE_ACCESS_LOG": "false",
        "TENANTGATE_DATABASE_POOL_SIZE": "8",
    }
    log = directory / "server.log"
    try:
        for command in (["db", "upgrade"], ["keys", "rotate", "--if-missing"]):
            subprocess.run([TENANTGATE, *command], env=env, check=True, capture_output=True)
        admin = json.loads(
            subprocess.run(
                [TENANTGATE, "bootstrap", "--json"], env=env, check=True, capture_output=True
            ).stdout
        )
        with log.open("wb") as stderr:
            # A session of its own, so that its workers can be ended with it whatever happens.
            process = subprocess.Popen(
                [TENANTGATE, "serve", "--port", str(port), "--workers", str(WORKERS)],
                env=env,
                cwd=directory,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
        service = Service(
            f"http://127.0.0.1:{port}", env, process, log, admin["email"], admin["password"]
        )
        try:
            _wait_ready(service)
            yield service
        finally:
            _stop(process)
    finally:
        asyncio.run(_admin_sql(drop))
        redis = Redis.from_url(REDIS_URL)
        keys = list(redis.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            redis.delete(*keys)
        redis.close()


def _stop(process: subprocess.Popen[bytes]) -> None:
    """A graceful stop; then, whatever is left of the server's session, killed."""
    process.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


def _wait_ready(service: Service) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise RuntimeError(f"the server exited:\n{service.log.read_text()[-3000:]}")
        try:
            if httpx.get(service.url + "/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server did not become ready:\n{service.log.read_text()[-3000:]}")
