"""The live service schemathesis tests: `tenantgate serve` on a free port, a fresh SQLite file,
limits out of reach, and one tenant seeded through the public API with an owner, an auditor and
an OAuth client, the way a new user would set it up."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support_ops import TENANTGATE, ServerProcess, server_env

OUT_OF_REACH = "1000000/minute"
PLANS = {plan: {"principal": OUT_OF_REACH, "tenant": OUT_OF_REACH} for plan in ("free", "pro")}
PASSPHRASE = "a long contract passphrase"


@dataclass(frozen=True)
class Tokens:
    owner: str
    auditor: str
    client: str


@dataclass(frozen=True)
class LiveService:
    url: str
    tokens: Tokens
    server: ServerProcess


def environment(directory: Path) -> dict[str, str]:
    return server_env(
        f"sqlite+aiosqlite:///{directory}/contract.db",
        TENANTGATE_ISSUER="http://127.0.0.1",
        TENANTGATE_PLAN_LIMITS=json.dumps(PLANS),
        TENANTGATE_LOGIN_RATE_LIMIT_IP=OUT_OF_REACH,
        TENANTGATE_LOGIN_RATE_LIMIT_USERNAME=OUT_OF_REACH,
        TENANTGATE_LOGIN_RATE_LIMIT_CLIENT=OUT_OF_REACH,
        TENANTGATE_PASSWORD_CHANGE_RATE_LIMIT=OUT_OF_REACH,
        TENANTGATE_ACCESS_LOG="false",
    )


def start(directory: Path) -> LiveService:
    env = environment(directory)
    subprocess.run([TENANTGATE, "db", "upgrade"], env=env, check=True, capture_output=True)
    bootstrap = subprocess.run(
        [TENANTGATE, "bootstrap", "--json"], env=env, check=True, capture_output=True, text=True
    )
    admin = json.loads(bootstrap.stdout)
    server = ServerProcess(env, cwd=directory)
    try:
        server.wait_ready()
        with httpx.Client(base_url=server.url, timeout=30) as http:
            tokens = _seed(http, admin["email"], admin["password"])
    except BaseException:
        server.stop()
        raise
    return LiveService(server.url, tokens, server)


def _token(http: httpx.Client, email: str, password: str) -> str:
    form = {"grant_type": "password", "username": email, "password": password}
    response = http.post("/token", data=form)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def _own_password(http: httpx.Client, email: str, one_time: str) -> str:
    """Replace a one-time password, as an invited user does first; a token of the new one."""
    body = {"current_password": one_time, "new_password": PASSPHRASE}
    headers = {"Authorization": f"Bearer {_token(http, email, one_time)}"}
    response = http.post("/v1/me/password", json=body, headers=headers)
    assert response.status_code == 204, response.text
    return _token(http, email, PASSPHRASE)


def _seed(http: httpx.Client, admin_email: str, admin_password: str) -> Tokens:
    platform = {"Authorization": f"Bearer {_own_password(http, admin_email, admin_password)}"}
    created = http.post(
        "/v1/tenants",
        json={"slug": "acme", "name": "Acme", "plan": "pro", "owner_email": "owner@acme.test"},
        headers=platform,
    )
    assert created.status_code == 201, created.text
    owner = _own_password(http, "owner@acme.test", created.json()["owner"]["initial_password"])
    as_owner = {"Authorization": f"Bearer {owner}"}
    auditor = http.post(
        "/v1/tenants/acme/members",
        json={"email": "auditor@acme.test", "role": "auditor"},
        headers=as_owner,
    )
    assert auditor.status_code == 201, auditor.text
    auditor_token = _own_password(http, "auditor@acme.test", auditor.json()["initial_password"])
    client = http.post(
        "/v1/tenants/acme/clients",
        json={"name": "contract", "scopes": ["items:read", "items:write", "reports:read"]},
        headers=as_owner,
    )
    assert client.status_code == 201, client.text
    grant = http.post(
        "/token",
        data={"grant_type": "client_credentials"},
        auth=(client.json()["client_id"], client.json()["client_secret"]),
    )
    assert grant.status_code == 200, grant.text
    item = http.post(
        "/v1/tenants/acme/items",
        json={"sku": "SEED-1", "name": "Seed", "category": "tools", "price": "1.00", "quantity": 1},
        headers=as_owner,
    )
    assert item.status_code == 201, item.text
    return Tokens(owner, auditor_token, grant.json()["access_token"])
