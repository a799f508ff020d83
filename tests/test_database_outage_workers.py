"""The setup the issue measured: `tenantgate serve --workers 2` with Redis, its PostgreSQL stopped
under it. Each worker process answers data requests with a clean 503 in time and logs one ERROR
line with the request id, keeps the identity path up, and works again once PostgreSQL is back.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from storage.migrate import upgrade
from tests.support import World, bearer, make_settings
from tests.support_items import item_body, items_url
from tests.support_ops import ServerProcess, server_env
from tests.support_outage import assert_unavailable, timed
from tests.support_postgres import own_postgres

# With the other tests that start server processes: one at a time on this machine.
pytestmark = pytest.mark.xdist_group("server-processes")

EMAIL = "owner@acme.test"


async def test_each_worker_answers_503_while_postgres_is_stopped_and_recovers(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    with own_postgres() as postgres:
        await asyncio.to_thread(upgrade, make_settings(postgres.url))
        async with World.start(make_settings(postgres.url)) as world:
            await world.tenant("acme", plan="enterprise")
            await world.member("acme", EMAIL, "owner")
            password = world.passwords[EMAIL]
        env = server_env(
            postgres.url,
            TENANTGATE_REDIS_URL=redis_url,
            TENANTGATE_REDIS_PREFIX=redis_prefix,
            TENANTGATE_REDIS_TIMEOUT="5",  # a busy machine must not open the breaker here
            # The production defaults (the suite's server_env allows a saturated machine more).
            TENANTGATE_DATABASE_CONNECT_TIMEOUT="2",
            TENANTGATE_DATABASE_TIMEOUT="2",
        )
        server = ServerProcess(env, "--workers", "2", cwd=tmp_path)
        refused: list[httpx.Response] = []
        # No keep-alive: each request is a new connection, taken by the worker that runs.
        limits = httpx.Limits(max_keepalive_connections=0)
        try:
            await asyncio.to_thread(server.wait_ready)
            pids = server.worker_pids(2)
            async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=30) as http:
                form = {"grant_type": "password", "username": EMAIL, "password": password}
                signed_in = await http.post("/token", data=form)
                assert signed_in.status_code == 200, signed_in.text
                auth = bearer(signed_in.json()["access_token"])
                created = await http.post(items_url("acme"), json=item_body("BEFORE"), headers=auth)
                assert created.status_code == 201, created.text
                item = items_url("acme", created.json()["id"])

                # Every worker up before the database goes: one still starting would fail its
                # start-up (it reads the keys and tenants), which is not what is tested here.
                for pid in pids:
                    with server.only(pid, pids):
                        pass
                await asyncio.to_thread(postgres.stop)
                for pid in pids:
                    with server.only(pid, pids, probe="/health"):
                        assert (await http.get("/v1/me", headers=auth)).status_code == 200
                        read, elapsed = await timed(http.get(item, headers=auth))
                        assert_unavailable(read, elapsed)
                        write, elapsed = await timed(
                            http.post(items_url("acme"), json=item_body(f"W{pid}"), headers=auth)
                        )
                        assert_unavailable(write, elapsed)
                        refused += [read, write]
                        assert (await http.get("/ready")).status_code == 503

                await asyncio.to_thread(postgres.start)
                for pid in pids:
                    with server.only(pid, pids):
                        # The first request after the database's return already works.
                        again = await http.get(item, headers=auth)
                        assert again.status_code == 200, again.text
                        after = await http.post(
                            items_url("acme"), json=item_body(f"A{pid}"), headers=auth
                        )
                        assert after.status_code == 201, after.text
                listing = await http.get(items_url("acme"), headers=auth)
                skus = sorted(i["sku"] for i in listing.json()["items"])
                assert skus == sorted(["BEFORE", *(f"A{pid}" for pid in pids)])
        finally:
            server.stop()
    # One ERROR line per 503, in the worker that answered it, with that request's id.
    entries = [json.loads(line) for line in server.stderr().splitlines() if line.strip()]
    errors = [entry for entry in entries if entry["level"] in {"ERROR", "CRITICAL"}]
    assert sorted(e.get("request_id", "") for e in errors) == sorted(
        response.headers["x-request-id"] for response in refused
    ), errors
    assert all(e["logger"] == "tenantgate.errors" and "frames" not in e for e in errors), errors
