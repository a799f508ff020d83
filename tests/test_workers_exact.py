"""Worker processes sharing the database and Redis: a burst lets exactly L through, also with
busy CPUs; with Redis down each worker admits its share of L."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.support import TEST_ISSUER, World, bearer, make_settings
from tests.support_ops import ServerProcess, server_env
from tests.support_redis import free_port

# With the other tests that start several server processes: one at a time on this machine
# (they are CPU-heavy; some add CPU load on purpose).
pytestmark = pytest.mark.xdist_group("server-processes")

ROOT = Path(__file__).resolve().parent.parent
PLANS = {"free": {"principal": "5/minute", "tenant": "7/minute"}}
BURST_PER_USER = 20


@contextmanager
def uvicorn_workers(count: int, env: dict[str, str]) -> Iterator[list[str]]:
    """`count` separate uvicorn processes serving api.asgi:app, configured by environment only."""
    ports = [free_port() for _ in range(count)]
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "api.asgi:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-proxy-headers",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for port in ports
    ]
    try:
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        for url, process in zip(urls, processes, strict=True):
            _wait_until_serving(url, process)
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=20)


def _wait_until_serving(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90  # a saturated test machine starts processes slowly
    while time.monotonic() < deadline:
        if process.poll() is not None:
            assert process.stderr is not None
            raise AssertionError(f"worker exited: {process.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"worker at {url} did not start")


async def test_burst_across_two_workers_is_exact(
    database_url: str, redis_url: str, redis_prefix: str
) -> None:
    settings = make_settings(
        database_url, redis_url=redis_url, redis_prefix=redis_prefix, plan_limits=PLANS
    )
    async with World.start(settings) as world:
        await world.tenant("acme")
        tokens = {}
        for name in ("ann", "bob"):
            await world.member("acme", f"{name}@acme.test", "viewer")
            tokens[name] = await world.login(f"{name}@acme.test", tenant="acme")

    # Settings come from the environment only; nothing inherited may change them.
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("TENANTGATE_", "PROMETHEUS_"))
    }
    env = {
        **inherited,
        "TENANTGATE_DATABASE_URL": database_url,
        "TENANTGATE_REDIS_URL": redis_url,
        "TENANTGATE_REDIS_PREFIX": redis_prefix,
        "TENANTGATE_ISSUER": TEST_ISSUER,
        "TENANTGATE_AUDIENCE": settings.audience,
        "TENANTGATE_PLAN_LIMITS": json.dumps(PLANS),
        "TENANTGATE_WORKERS": "2",
        "TENANTGATE_DATABASE_POOL_SIZE": "8",  # a shared PostgreSQL: see tests/support_ops.py
        "TENANTGATE_DATABASE_CONNECT_TIMEOUT": "20",
        "TENANTGATE_DATABASE_TIMEOUT": "20",
        # Exactness of Redis itself: no call may fall back to a worker's own share here.
        "TENANTGATE_REDIS_TIMEOUT": "5",
    }
    with uvicorn_workers(2, env) as urls:
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:

            async def one(index: int, name: str) -> tuple[str, int]:
                url = f"{urls[index % 2]}/v1/tenants/acme/items"
                response = await client.get(url, headers=bearer(tokens[name]))
                return name, response.status_code

            results = await asyncio.gather(
                *(one(i, name) for i in range(BURST_PER_USER) for name in ("ann", "bob"))
            )
    statuses = Counter(status for _, status in results)
    assert set(statuses) <= {200, 429}, statuses
    # Each worker alone would admit up to 7 (its own tenant counter): 14 in all.
    assert statuses[200] == 7, statuses
    assert statuses[429] == 2 * BURST_PER_USER - 7
    per_user = Counter(name for name, status in results if status == 200)
    assert max(per_user.values()) <= 5, per_user


LOAD_PLANS = {"free": {"principal": "60/minute", "tenant": "600/minute"}}


@contextmanager
def cpu_load(processes: int = 2) -> Iterator[None]:
    """Busy loops on every core, as a loaded machine has (killed by pid afterwards)."""
    burners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)
    ]
    try:
        time.sleep(0.2)
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait(timeout=10)


async def _seeded_token(database_url: str) -> str:
    async with World.start(make_settings(database_url, plan_limits=LOAD_PLANS)) as world:
        await world.tenant("acme")
        await world.member("acme", "ann@acme.test", "viewer")
        return await world.login("ann@acme.test", tenant="acme")


async def _burst(url: str, token: str, count: int) -> list[httpx.Response]:
    """`count` requests at once, each on a connection of its own."""
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        return await asyncio.gather(
            *(client.get("/v1/tenants/acme/items", headers=bearer(token)) for _ in range(count))
        )


def _admitted_by_limit(responses: list[httpx.Response]) -> Counter[str]:
    """Admitted requests by the limit that admitted them: 60 is Redis's count, 30 a worker's
    own share while Redis failed."""
    assert {r.status_code for r in responses} <= {200, 429}, [r.text for r in responses]
    return Counter(r.headers["x-ratelimit-limit"] for r in responses if r.status_code == 200)


async def test_a_burst_under_cpu_load_stays_within_redis_and_the_shares(
    database_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    """80 concurrent requests against 60/minute, two `serve` workers, busy CPUs, the default
    Redis timeout. Calls Redis answers in time are exact (all of them on a machine that is not
    overloaded: 60 pass); a call that times out is decided by its worker alone, within its
    share (30). Whatever the load, the fallback never hands out a full budget per worker."""
    token = await _seeded_token(database_url)
    env = server_env(
        database_url,
        TENANTGATE_REDIS_URL=redis_url,
        TENANTGATE_REDIS_PREFIX=redis_prefix,
        TENANTGATE_PLAN_LIMITS=json.dumps(LOAD_PLANS),
    )
    server = ServerProcess(env, "--workers", "2", cwd=tmp_path)
    try:
        await asyncio.to_thread(server.wait_ready)
        server.worker_pids(2)
        with cpu_load():
            responses = await _burst(server.url, token, 80)
    finally:
        server.stop()
    admitted = _admitted_by_limit(responses)
    assert set(admitted) <= {"60", "30"}, admitted
    assert admitted["60"] <= 60, admitted  # decided by Redis: exact
    assert admitted["30"] <= 2 * 30, admitted  # decided by a worker alone: its share


async def test_with_redis_down_each_worker_admits_its_share_under_cpu_load(
    database_url: str, tmp_path: Path
) -> None:
    """Redis refuses: each of two workers counts alone at 60 / 2, so the tenant's budget is not
    doubled; each worker in turn takes a burst of 40 (the other one stopped)."""
    token = await _seeded_token(database_url)
    env = server_env(
        database_url,
        TENANTGATE_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",  # nothing listens
        TENANTGATE_PLAN_LIMITS=json.dumps(LOAD_PLANS),
    )
    server = ServerProcess(env, "--workers", "2", cwd=tmp_path)
    responses: list[httpx.Response] = []
    try:
        await asyncio.to_thread(server.wait_ready)
        pids = server.worker_pids(2)
        with cpu_load():
            for pid in pids:
                with server.only(pid, pids):
                    responses += await _burst(server.url, token, 40)
    finally:
        server.stop()
    assert _admitted_by_limit(responses) == {"30": 60}
    assert [r.status_code for r in responses].count(429) == 20
