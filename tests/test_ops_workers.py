"""`tenantgate serve --workers 2`: metrics add up across workers, JSON logs, graceful shutdown."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import httpx
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from auth.passwords import Passwords
from storage import accounts
from storage.database import Database
from storage.migrate import upgrade
from tests.support import make_settings
from tests.support_ops import ServerProcess, server_env, status_of

PASSWORD = "Workers-Pa55word-qv"


async def _seed(url: str) -> None:
    settings = make_settings(url)
    database, passwords = Database(settings), Passwords(settings)
    try:
        async with database.write() as connection:
            await accounts.create_tenant(connection, "acme", "Acme", "enterprise")
            user_id = await accounts.create_user(
                connection, "wes@acme.test", await passwords.hash(PASSWORD)
            )
            await accounts.add_member(connection, "acme", user_id, "viewer")
    finally:
        passwords.close()
        await database.dispose()


def _series(text: str, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {
        frozenset(sample.labels.items()): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


async def _burst(url: str, token: str, rounds: int) -> None:
    """Requests on fresh connections, many at once."""
    limits = httpx.Limits(max_keepalive_connections=0, max_connections=16)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=10) as client:
        calls = []
        for _ in range(rounds):
            calls.append(client.get("/v1/me", headers={"Authorization": f"Bearer {token}"}))
            calls.append(client.get("/v1/me"))
            calls.append(client.get("/health"))
        responses = await asyncio.gather(*calls)
    assert sorted(r.status_code for r in responses) == [200] * (2 * rounds) + [401] * rounds


def _served_by(directory: Path) -> dict[str, float]:
    """Per worker pid, the `GET /v1/me` 200s its own metrics file counts."""
    served: dict[str, float] = {}
    for path in directory.glob("counter_*.db"):
        for key, value, *_ in MmapedDict.read_all_values_from_file(str(path)):  # type: ignore[no-untyped-call]
            _, sample, labels = json.loads(key)[:3]
            if sample == "tenantgate_http_requests_total" and labels == {
                "method": "GET",
                "route": "/v1/me",
                "status": "200",
            }:
                pid = path.stem.rsplit("_", 1)[-1]
                served[pid] = served.get(pid, 0) + value
    return served


async def test_two_workers_share_metrics_log_json_and_stop_gracefully(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/tenantgate.db"
    await asyncio.to_thread(upgrade, make_settings(url))
    await _seed(url)
    metrics_dir = tmp_path / "metrics"
    env = server_env(url, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    server = ServerProcess(env, "--workers", "2", cwd=tmp_path)
    try:
        await asyncio.to_thread(server.wait_ready)
        async with httpx.AsyncClient(base_url=server.url) as client:
            login = await client.post(
                "/token",
                data={"grant_type": "password", "username": "wes@acme.test", "password": PASSWORD},
            )
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]

        # Each worker in turn takes every connection (the other one stopped): both serve a
        # known share, so the sums below are exact and the split cannot be left to chance.
        pids = server.worker_pids(2)
        rounds = 10
        for pid in pids:
            with server.only(pid, pids):
                await _burst(server.url, token, rounds)
        assert _served_by(metrics_dir) == {str(pid): rounds for pid in pids}
        rounds *= len(pids)

        scrapes = []
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=server.url, limits=limits) as client:
            for _ in range(6):
                scrapes.append((await client.get("/metrics")).text)
        for text in scrapes:
            requests = _series(text, "tenantgate_http_requests_total")
            me = {("method", "GET"), ("route", "/v1/me")}
            assert requests[frozenset({*me, ("status", "200")})] == rounds
            assert requests[frozenset({*me, ("status", "401")})] == rounds
            health = {("method", "GET"), ("route", "/health"), ("status", "200")}
            assert requests[frozenset(health)] == rounds
            failures = _series(text, "tenantgate_auth_failures_total")
            assert failures[frozenset({("kind", "bearer"), ("reason", "missing")})] == rounds
            issued = _series(text, "tenantgate_tokens_issued_total")
            assert issued[frozenset({("grant_type", "password")})] == 1
            decisions = _series(text, "tenantgate_rate_limit_decisions_total")
            assert decisions[frozenset({("decision", "allowed")})] == rounds

        # Graceful shutdown: a request whose body is still arriving when SIGTERM comes finishes.
        body = f"grant_type=password&username=wes%40acme.test&password={PASSWORD}x".encode()
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(
                b"POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body[:10]
            )
            await asyncio.sleep(0.3)
            server.terminate()
            await asyncio.sleep(0.5)
            sock.sendall(body[10:])
            response = await asyncio.to_thread(_read_response, sock)
        assert status_of(response) == 400
        assert b'"error":"invalid_grant"' in response
        assert await asyncio.to_thread(server.wait, 30) == 0
    finally:
        server.stop()

    log = server.stderr()
    lines = [line for line in log.splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    access = [e for e in entries if e["logger"] == "tenantgate.access"]
    assert len(access) >= 3 * rounds
    assert {e["route"] for e in access} >= {"/v1/me", "/health", "/token", "/metrics"}
    assert all(e["request_id"].startswith("req_") for e in access)
    assert not [e for e in entries if e["logger"] == "uvicorn.access"]
    assert PASSWORD not in log
    assert token not in log


def _read_response(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        lengths = [
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ]
        if lengths and len(rest) >= lengths[0]:
            break
    return data
