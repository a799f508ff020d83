"""The app as a person meets it: `tenantgate serve` on a fresh SQLite database, seeded directly."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

import httpx
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy.ext.asyncio import AsyncConnection

import storage.audit
from auth.clients import create_client
from storage import accounts
from storage.audit import Action, Actor, Context, EventOutcome, NewEvent, append
from storage.database import Database
from storage.migrate import upgrade
from tests.support import make_settings
from tests.support_ops import ServerProcess, server_env

T = TypeVar("T")
# Cheap hashes: the server verifies whatever parameters a hash carries.
HASHER = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024),))


@dataclass
class Tenant:
    slug: str
    passwords: dict[str, str] = field(default_factory=dict)  # email -> password
    user_ids: dict[str, str] = field(default_factory=dict)  # email -> user id

    def email(self, role: str) -> str:
        return f"{role}@{self.slug}.test"


@dataclass
class Site:
    url: str
    database_url: str

    def run(self, work: Callable[[Database], Awaitable[T]]) -> T:
        """Run `work` on the site's database from a synchronous test (own thread, own loop)."""

        async def main() -> T:
            database = Database(make_settings(self.database_url))
            try:
                return await work(database)
            finally:
                await database.dispose()

        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, main()).result(timeout=60)

    def write(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        async def transaction(database: Database) -> T:
            async with database.write() as connection:
                return await work(connection)

        return self.run(transaction)

    def tenant(self, slug: str, *roles: str, one_time: tuple[str, ...] = ()) -> Tenant:
        """A tenant with one member per role (`owner@slug.test`, ...); `one_time` roles get a
        one-time password (they must set their own first)."""
        tenant = Tenant(slug)
        for role in (*roles, *one_time):
            tenant.passwords[tenant.email(role)] = secrets.token_urlsafe(12)
        hashes = {email: HASHER.hash(password) for email, password in tenant.passwords.items()}

        async def seed(connection: AsyncConnection) -> None:
            await accounts.create_tenant(connection, slug, slug.title(), "enterprise")
            for role in (*roles, *one_time):
                email = tenant.email(role)
                user_id = await accounts.create_user(
                    connection, email, hashes[email], must_change_password=role in one_time
                )
                await accounts.add_member(connection, slug, user_id, role)
                tenant.user_ids[email] = user_id

        self.write(seed)
        return tenant

    def platform_token(self) -> str:
        """A token of a new platform administrator (`platform:admin`, bound to no tenant)."""
        email = f"root-{secrets.token_hex(4)}@platform.test"
        password = secrets.token_urlsafe(12)
        password_hash = HASHER.hash(password)

        async def create(connection: AsyncConnection) -> None:
            await accounts.create_user(connection, email, password_hash, platform_admin=True)

        self.write(create)
        response = self.password_grant(email, password)
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    def send(self, method: str, path: str, token: str, body: dict[str, Any]) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.request(method, f"{self.url}{path}", headers=headers, json=body, timeout=10)

    def client(self, tenant: Tenant, name: str, scopes: frozenset[str]) -> None:
        """An OAuth client of the tenant, created by its owner."""
        owner = tenant.user_ids[tenant.email("owner")]

        async def create(connection: AsyncConnection) -> None:
            await create_client(
                connection,
                tenant=tenant.slug,
                name=name,
                description=None,
                scopes=scopes,
                created_by=owner,
            )

        self.write(create)

    def events(self, tenant: Tenant, count: int, *, minutes_from: datetime | None = None) -> None:
        """`count` more events in the tenant's chain: actions, outcomes and actors in turn;
        with `minutes_from`, stamped one minute apart from then on (a chain's times only go
        forward, so before any other event of the tenant)."""
        kinds = [
            (Action.MEMBER_ADDED, EventOutcome.SUCCESS),
            (Action.ACCESS_DENIED, EventOutcome.DENIED),
            (Action.TOKEN_REFUSED, EventOutcome.FAILURE),
        ]

        async def seed(connection: AsyncConnection) -> None:
            for number in range(count):
                action, outcome = kinds[number % 3]
                await append(
                    connection,
                    NewEvent(
                        action=action,
                        tenant=tenant.slug,
                        actor=Actor("user", f"usr_seed{number % 2}"),
                        outcome=outcome,
                        target=f"user:usr_t{number}",
                        context=Context("192.0.2.7", "=cmd|' /C calc'!A0", None),
                        details={"n": number, "note": 'comma, "quote"'},
                    ),
                )

        if minutes_from is None:
            self.write(seed)
            return
        times = [minutes_from + timedelta(minutes=n) for n in range(count)]
        # The clock of this test process only; the server keeps its own.
        with mock.patch.object(storage.audit, "utcnow", side_effect=times):
            self.write(seed)

    def password_grant(self, email: str, password: str, scope: str | None = None) -> httpx.Response:
        form = {"grant_type": "password", "username": email, "password": password}
        if scope:
            form["scope"] = scope
        return httpx.post(f"{self.url}/token", data=form, timeout=10)

    def refresh_grant(self, refresh_token: str) -> httpx.Response:
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        return httpx.post(f"{self.url}/token", data=form, timeout=10)

    def token(self, tenant: Tenant, role: str, scope: str | None = None) -> str:
        """An access token got the way any API client gets one."""
        email = tenant.email(role)
        response = self.password_grant(email, tenant.passwords[email], scope)
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    def get(
        self,
        path: str,
        token: str,
        *,
        params: dict[str, str] | None = None,
        accept: str = "application/json",
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}", "Accept": accept}
        return httpx.get(f"{self.url}{path}", headers=headers, params=params, timeout=10)


@contextmanager
def serve(directory: Path) -> Iterator[Site]:
    """A migrated database and the server on a free port; login limits lifted (one test IP)."""
    database_url = f"sqlite+aiosqlite:///{directory}/site.db"
    env = server_env(
        database_url,
        TENANTGATE_LOGIN_RATE_LIMIT_IP="1000/minute",
        TENANTGATE_LOGIN_RATE_LIMIT_USERNAME="1000/minute",
    )
    with ThreadPoolExecutor(1) as pool:  # its own thread: Alembic runs an event loop
        pool.submit(upgrade, make_settings(database_url)).result(timeout=60)
    server = ServerProcess(env, cwd=directory)
    try:
        server.wait_ready()
        yield Site(server.url, database_url)
    finally:
        server.stop()
