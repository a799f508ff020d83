"""Helpers for tests: settings with cheap hashing, and a World holding an app, a client and data."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from api.app import create_app
from auth.passwords import Passwords
from config.settings import Settings
from storage import accounts
from storage.database import Database

TEST_ISSUER = "https://tenantgate.test"


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "issuer": TEST_ISSUER,
        "audience": "tenantgate-test",
        "argon2_time_cost": 1,
        "argon2_memory_cost": 1024,
        "redis_url": None,
        **overrides,
    }
    return Settings(_env_file=None, **values)


@contextmanager
def statements_run(database: Database) -> Iterator[list[str]]:
    """The SQL of every statement the data path's driver runs inside the block."""
    statements: list[str] = []
    database.driver.hook = statements.append
    try:
        yield statements
    finally:
        database.driver.hook = None


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def jwt_part(token: str, index: int) -> dict[str, Any]:
    """Decode the header (0) or payload (1) of a JWT without verifying it."""
    part = token.split(".")[index]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def _state_per_request(app: ASGIApp) -> ASGIApp:
    """Give each request its own copy of the lifespan state, as uvicorn does.

    LifespanManager hands every request the same state dict, so `request.state` set by one
    request would leak into the next and hide bugs (or invent them).
    """

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if "state" in scope:
            scope = {**scope, "state": dict(scope["state"])}
        await app(scope, receive, send)

    return wrapped


@dataclass
class World:
    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings
    passwords: dict[str, str] = field(default_factory=dict)

    @classmethod
    @asynccontextmanager
    async def start(cls, settings: Settings) -> AsyncIterator[World]:
        app = create_app(settings)
        async with (
            LifespanManager(app) as manager,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=_state_per_request(manager.app)),
                base_url="http://tenantgate.test",
            ) as client,
        ):
            yield cls(app, client, settings)

    @property
    def database(self) -> Database:
        database: Database = self.app.state.database
        return database

    async def tenant(self, slug: str, plan: str = "free") -> str:
        async with self.database.write() as connection:
            await accounts.create_tenant(connection, slug, slug.title(), plan)
        return slug

    async def user(
        self, email: str, password: str | None = None, *, platform_admin: bool = False
    ) -> str:
        password = password or secrets.token_urlsafe(12)
        hasher: Passwords = self.app.state.passwords
        password_hash = await hasher.hash(password)
        async with self.database.write() as connection:
            user_id = await accounts.create_user(
                connection, email, password_hash, platform_admin=platform_admin
            )
        self.passwords[accounts.normalise_email(email)] = password
        return user_id

    async def member(self, tenant: str, email: str, role: str) -> str:
        """A new user who is a member of `tenant` with `role`."""
        user_id = await self.user(email)
        async with self.database.write() as connection:
            await accounts.add_member(connection, tenant, user_id, role)
        return user_id

    async def token_response(
        self, email: str, *, scope: str | None = None, tenant: str | None = None
    ) -> httpx.Response:
        form = {
            "grant_type": "password",
            "username": email,
            "password": self.passwords[accounts.normalise_email(email)],
        }
        if scope is not None:
            form["scope"] = scope
        if tenant is not None:
            form["tenant"] = tenant
        return await self.client.post("/token", data=form)

    async def login(
        self, email: str, *, scope: str | None = None, tenant: str | None = None
    ) -> str:
        response = await self.token_response(email, scope=scope, tenant=tenant)
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token
