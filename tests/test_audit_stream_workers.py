"""The audit stream on `tenantgate serve --workers 2` with a real Redis: events written by one
worker reach streams on the other; revocation and suspension close them wherever they are; a
client that never reads is dropped (1013) while one that reads keeps up.

(tests/test_audit_stream.py drops a non-reader in one process with small server socket
buffers. Here the server's send buffer on loopback grows to about 3 MB first, so the events
that fill it are large: 200 kB each.)"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from auth.clients import create_client
from auth.passwords import Passwords
from storage import accounts
from storage.audit import Actor, NewEvent, append
from storage.database import Database
from tests.support import make_settings
from tests.support_ops import ServerProcess, server_env
from tests.test_audit_stream import closed, events, offer, until_ready

PASSWORD = "Stream-Pa55word-qv"
ROOT_PASSWORD = "Root-Pa55word-qv"
STREAM = "/v1/tenants/acme/audit/stream"
# Events a stream may have waiting (TENANTGATE_AUDIT_STREAM_BUFFER), and the size of the events
# that flood it: small enough buffers for a test, large enough for the grants above.
STREAM_BUFFER = 64
PADDING = 200_000

# With the other tests that start several server processes: one at a time on this machine.
pytestmark = pytest.mark.xdist_group("worker-processes")


async def _seed(url: str) -> tuple[str, str]:
    """acme with an owner, a platform admin, and a client whose grants write events."""
    settings = make_settings(url)
    database, passwords = Database(settings), Passwords(settings)
    try:
        async with database.write() as connection:
            await accounts.create_tenant(connection, "acme", "Acme", "enterprise")
            owner = await accounts.create_user(
                connection, "owner@acme.test", await passwords.hash(PASSWORD)
            )
            await accounts.add_member(connection, "acme", owner, "owner")
            await accounts.create_user(
                connection,
                "root@platform.test",
                await passwords.hash(ROOT_PASSWORD),
                platform_admin=True,
            )
            record, secret = await create_client(
                connection,
                tenant="acme",
                name="events",
                description=None,
                scopes=frozenset({"items:read"}),
                created_by="test",
            )
        return record.client_id, secret
    finally:
        passwords.close()
        await database.dispose()


def _pids(directory: Path, kind: str, needle: str) -> set[str]:
    """Workers whose own metric files (`kind`: counter, gauge_livesum) hold `needle` > 0."""
    return {
        path.stem.rsplit("_", 1)[-1]
        for path in directory.glob(f"{kind}_*.db")
        for key, value, *_ in MmapedDict.read_all_values_from_file(str(path))  # type: ignore[no-untyped-call]
        if needle in key and value > 0
    }


async def _grant(http: httpx.AsyncClient, client_id: str, secret: str) -> None:
    response = await http.post(
        "/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )
    assert response.status_code == 200, response.text


async def _flood(database_url: str, count: int) -> None:
    """`count` large events in acme's trail, written beside the server (as the CLI would):
    the workers' polls find them."""
    database = Database(make_settings(database_url))
    try:
        async with database.write() as connection:
            for n in range(count):
                details = {"padding": "x" * PADDING, "n": n}
                flood = NewEvent(
                    action="test.flood",
                    tenant="acme",
                    actor=Actor("system", "test"),
                    details=details,
                )
                await append(connection, flood)
    finally:
        await database.dispose()


async def _a_consumer_that_never_reads_is_dropped(
    ws_url: str, token: str, database_url: str, metrics: Path
) -> None:
    reader = await connect(ws_url, subprotocols=offer(token), max_size=None)
    # The idle client's own buffers are small (4 kB socket buffer, one queued message, no
    # compression of the padding), so it holds back almost nothing of what the server sends.
    host, port = ws_url.removeprefix("ws://").split("/", 1)[0].rsplit(":", 1)
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect((host, int(port)))
    idle = await connect(
        ws_url,
        subprotocols=offer(token),
        sock=raw,
        max_queue=1,
        max_size=None,
        compression=None,
    )
    try:
        await until_ready(reader)
        await until_ready(idle)
        sent = 0
        while not _pids(metrics, "counter", '"slow"') and sent < 400:
            await _flood(database_url, 5)
            sent += 5
            flood = await events(reader, 5)  # the reader keeps up
            assert [e["action"] for e in flood] == ["test.flood"] * 5
        assert _pids(metrics, "counter", '"slow"'), "the idle consumer was never dropped"
        assert sent > 5  # it fell behind over time, not on the first burst
        # Reading at last, the idle client finds what was sent before the drop, then 1013.
        code, reason, _ = await closed(idle)
        assert (code, reason) == (1013, "too slow: the stream fell behind; reconnect with from_seq")
        # The reader is still open and still current.
        await _flood(database_url, 1)
        assert [e["action"] for e in await events(reader, 1)] == ["test.flood"]
    finally:
        await reader.close()
        with contextlib.suppress(ConnectionClosed):
            await idle.close()


async def test_two_workers(
    tmp_path: Path, production_database_url: str, redis_url: str, redis_prefix: str
) -> None:
    database_url = production_database_url
    client_id, secret = await _seed(database_url)
    metrics = tmp_path / "metrics"
    env = server_env(
        database_url,
        TENANTGATE_REDIS_URL=redis_url,
        TENANTGATE_REDIS_PREFIX=redis_prefix,
        TENANTGATE_REDIS_TIMEOUT="5",  # a starved test machine must not trip the breaker
        PROMETHEUS_MULTIPROC_DIR=str(metrics),
        # Up to 200 client grants from one address: the sign-in limiter is not under test here.
        TENANTGATE_LOGIN_RATE_LIMIT_IP="1000/minute",
        TENANTGATE_LOGIN_RATE_LIMIT_CLIENT="1000/minute",
        TENANTGATE_AUDIT_STREAM_BUFFER=str(STREAM_BUFFER),
    )
    server = ServerProcess(env, "--workers", "2", cwd=tmp_path)
    streams: list[ClientConnection] = []
    try:
        await asyncio.to_thread(server.wait_ready, 90)
        ws_url = server.url.replace("http://", "ws://") + STREAM
        fresh = httpx.Limits(max_keepalive_connections=0, max_connections=16)
        async with httpx.AsyncClient(base_url=server.url, limits=fresh, timeout=30) as http:

            async def sign_in(email: str, password: str) -> str:
                form = {"grant_type": "password", "username": email, "password": password}
                response = await http.post("/token", data=form)
                assert response.status_code == 200, response.text
                token: str = response.json()["access_token"]
                return token

            owner = await sign_in("owner@acme.test", PASSWORD)
            other = await sign_in("owner@acme.test", PASSWORD)  # revoked below

            # Streams on new connections until both workers hold some.
            for _ in range(30):
                ws = await connect(ws_url, subprotocols=offer(owner))
                await until_ready(ws)
                streams.append(ws)
                if len(streams) >= 2 and len(_pids(metrics, "gauge_livesum", "audit_streams")) == 2:
                    break
            assert len(_pids(metrics, "gauge_livesum", "audit_streams")) == 2
            lonely = await connect(ws_url, subprotocols=offer(other))
            await until_ready(lonely)

            # Events written by each worker (grants on new connections) reach every stream.
            written = 0
            while written < 200:
                await asyncio.gather(*(_grant(http, client_id, secret) for _ in range(4)))
                written += 4
                if len(_pids(metrics, "counter", '"/token"')) == 2 and written >= 8:
                    break
            assert len(_pids(metrics, "counter", '"/token"')) == 2
            first = None
            for ws in [*streams, lonely]:
                seqs = [e["seq"] for e in await events(ws, written)]
                first = first or seqs[0]
                assert seqs == list(range(first, first + written))
            scrape = (await http.get("/metrics")).text
            assert 'tenantgate_audit_stream_deliveries_total{origin="other_worker"}' in scrape

            # Revoking one token closes its stream (on whichever worker), within a second.
            revoked = await http.post("/revoke", data={"token": other})
            assert revoked.status_code == 200
            changed = time.monotonic()
            code, reason, at = await closed(lonely)
            assert (code, "revoked" in reason) == (1008, True)
            assert at - changed < 1.0

            # Suspending the tenant closes every stream on both workers.
            root = await sign_in("root@platform.test", ROOT_PASSWORD)
            suspended = await http.patch(
                "/v1/tenants/acme",
                json={"status": "suspended"},
                headers={"Authorization": f"Bearer {root}"},
            )
            assert suspended.status_code == 200, suspended.text
            changed = time.monotonic()
            for ws in streams:
                code, reason, at = await closed(ws)
                assert (code, reason) == (1008, "the tenant is suspended")
                assert at - changed < 1.0
            streams.clear()

            # Active again: a stream that never reads is dropped, one that reads keeps up.
            resumed = await http.patch(
                "/v1/tenants/acme",
                json={"status": "active"},
                headers={"Authorization": f"Bearer {root}"},
            )
            assert resumed.status_code == 200, resumed.text
            again = await sign_in("owner@acme.test", PASSWORD)
            await _a_consumer_that_never_reads_is_dropped(ws_url, again, database_url, metrics)
    finally:
        for ws in streams:
            await ws.close()
        server.stop()
    log = server.stderr()
    entries = [json.loads(line) for line in log.splitlines() if line.strip()]
    opened = [e for e in entries if e["logger"] == "tenantgate.access" and e["method"] == "WS"]
    assert {e["status"] for e in opened} == {101}
    assert owner not in log
