"""docs/examples/integrator.py, the script docs/integrators.md shows, against a live server.

The server is a real uvicorn process on a free port, set up with the same `tenantgate`
commands the walkthrough uses; the script runs as its own process, and its classes are
imported for the error paths (403, 401 renewal, 429).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import jwt
import pytest

from auth.clients import create_client
from config.settings import Settings
from storage import accounts
from storage.database import Database
from storage.migrate import upgrade
from storage.tables import clients
from tests.support import make_settings

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "docs" / "examples" / "integrator.py"
DOC = ROOT / "docs" / "integrators.md"
SEED = {
    "writer": ["items:read", "items:write"],
    "reader": ["items:read"],
    "limited": ["items:read"],
}

pytestmark = pytest.mark.xdist_group("integrator-doc")


@dataclass(frozen=True)
class Live:
    url: str
    clients: dict[str, dict[str, str]]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _seed(settings: Settings) -> dict[str, dict[str, str]]:
    """The tenant and the clients a tenant admin would create (see docs/integrators.md 1)."""
    database = Database(settings)
    made: dict[str, dict[str, str]] = {}
    try:
        async with database.write() as connection:
            # pro: 600/minute per principal, so the client limit of 2/second below lowers it.
            await accounts.create_tenant(connection, "acme", "Acme", "pro")
            for name, scopes in SEED.items():
                record, secret = await create_client(
                    connection,
                    tenant="acme",
                    name=name,
                    description=None,
                    scopes=frozenset(scopes),
                    created_by="test",
                )
                made[name] = {"client_id": record.client_id, "client_secret": secret}
            # A per-client limit (the clients.rate_limit column), small enough to hit in a test.
            await connection.execute(
                clients.update()
                .where(clients.c.client_id == made["limited"]["client_id"])
                .values(rate_limit="2/second")
            )
    finally:
        await database.dispose()
    return made


# Session scope: xdist may interleave this module with others on its worker, and a module
# fixture would then start the server again.
@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    home = tmp_path_factory.mktemp("integrator")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTGATE_")}
    env |= {
        "TENANTGATE_DATABASE_URL": f"sqlite+aiosqlite:///{home}/tenantgate.db",
        "TENANTGATE_ISSUER": url,
        "TENANTGATE_ARGON2_TIME_COST": "1",
        "TENANTGATE_ARGON2_MEMORY_COST": "1024",
    }
    settings = make_settings(env["TENANTGATE_DATABASE_URL"], issuer=url)
    upgrade(settings)
    made = asyncio.run(_seed(settings))
    log = home / "server.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.asgi:app", "--port", str(port)],
            env=env,
            cwd=home,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_up(url, server, log)
        yield Live(url, made)
    finally:
        server.terminate()
        server.wait(timeout=20)


def _wait_until_up(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"uvicorn exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail("uvicorn did not come up in 30 s")


@pytest.fixture(scope="session")
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("integrator", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _client(script: ModuleType, http: httpx.Client, live: Live, name: str, **kw: Any) -> Any:
    credentials = live.clients[name]
    return script.TenantgateClient(
        http, credentials["client_id"], credentials["client_secret"], **kw
    )


def test_the_script_runs_end_to_end(live: Live, script: ModuleType) -> None:
    with httpx.Client(base_url=live.url) as http:
        writer = _client(script, http, live, "writer")
        for sku in ("SKU-1", "SKU-2"):
            body = {"sku": sku, "name": sku, "category": "tools", "price": "9.5", "quantity": 3}
            response = writer.request("POST", "/v1/tenants/acme/items", json=body)
            assert response.status_code == 201, response.text
    # The client of section 1 ("Stock sync", items:read items:write) runs the script.
    stock_sync = live.clients["writer"]
    env = {
        **os.environ,
        "TENANTGATE_URL": live.url,
        "TENANTGATE_TENANT": "acme",
        "TENANTGATE_CLIENT_ID": stock_sync["client_id"],
        "TENANTGATE_CLIENT_SECRET": stock_sync["client_secret"],
    }
    result = subprocess.run(
        [sys.executable, str(SCRIPT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    # What section 4 of the guide shows the script printing, with the real client id.
    guide = (ROOT / "docs" / "integrators.md").read_text()
    shown = guide.split("python docs/examples/integrator.py\n# ", 1)[1].split("\n", 1)[0]
    assert summary == json.loads(shown.replace("cli_...", stock_sync["client_id"]))


def test_a_missing_scope_is_a_clear_forbidden(live: Live, script: ModuleType) -> None:
    with httpx.Client(base_url=live.url) as http:
        reader = _client(script, http, live, "reader")
        body = {"sku": "X", "name": "X", "category": "c", "price": "1", "quantity": 1}
        with pytest.raises(script.Forbidden) as raised:
            reader.request("POST", "/v1/tenants/acme/items", json=body)
        assert raised.value.required_scopes == ["items:write"]
        assert raised.value.type == "urn:tenantgate:problem:insufficient-scope"
        with pytest.raises(script.TenantgateError, match="invalid_scope"):
            _client(script, http, live, "reader", scope="items:write").token()


def test_a_revoked_token_is_renewed_once(live: Live, script: ModuleType) -> None:
    with httpx.Client(base_url=live.url) as http:
        reader = _client(script, http, live, "reader")
        first = reader.token()
        credentials = live.clients["reader"]
        revoked = http.post(
            "/revoke",
            data={"token": first},
            auth=(credentials["client_id"], credentials["client_secret"]),
        )
        assert revoked.status_code == 200
        response = reader.request("GET", "/v1/tenants/acme/items")
        assert response.status_code == 200
        assert reader.token() != first
        bad = script.TenantgateClient(http, credentials["client_id"], "tgcs_wrong")
        with pytest.raises(script.TenantgateError, match="invalid_client"):
            bad.request("GET", "/v1/tenants/acme/items")


def test_429_waits_for_retry_after_or_gives_up(live: Live, script: ModuleType) -> None:
    with httpx.Client(base_url=live.url) as http:
        impatient = _client(script, http, live, "limited", max_wait=0)
        for _ in range(2):
            impatient.request("GET", "/v1/tenants/acme/items")
        with pytest.raises(script.RateLimited) as raised:
            impatient.request("GET", "/v1/tenants/acme/items")
        assert raised.value.retry_after >= 1
        patient = _client(script, http, live, "limited", max_wait=2)
        started = time.monotonic()
        for _ in range(3):
            assert patient.request("GET", "/v1/tenants/acme/items").status_code == 200
        assert time.monotonic() - started < 5


def test_offline_verification_with_the_jwks(live: Live, script: ModuleType) -> None:
    with httpx.Client(base_url=live.url) as http:
        token = _client(script, http, live, "reader").token()
        verifier = script.OfflineVerifier(http, audience="tenantgate")
        assert verifier.issuer == live.url
        claims = verifier.verify(token)
        assert claims["client_id"] == live.clients["reader"]["client_id"]
        head, payload, signature = token.split(".")
        forged = f"{head}.{payload}.{signature[:-4]}AAAA"
        with pytest.raises(jwt.InvalidTokenError):
            verifier.verify(forged)
        with pytest.raises(jwt.InvalidTokenError):
            script.OfflineVerifier(http, audience="someone-else").verify(token)


def test_every_excerpt_in_the_walkthrough_is_verbatim_from_the_script() -> None:
    doc = DOC.read_text()
    source = SCRIPT.read_text()
    marker = "# docs/examples/integrator.py\n"
    excerpts = re.findall(r"```python\n(.*?)```", doc, flags=re.DOTALL)
    excerpts = [e.removeprefix(marker) for e in excerpts if e.startswith(marker)]
    assert len(excerpts) >= 4
    for excerpt in excerpts:
        assert excerpt in source, excerpt
    for shown in ("class TenantgateClient", "def request(", "def verify(", "def main()"):
        assert any(shown in excerpt for excerpt in excerpts), shown
