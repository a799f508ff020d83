"""Where the CPU time of one item read goes, by layer: an in-process profile of the real app.

The app runs in this process on the run's SQLite database (embedded defaults, access log on)
and is called through ASGI directly, so nothing but the app is measured. cProfile's cumulative
times of a few known functions split each request into layers; the shares are scaled to the
request's CPU time measured without the profiler (the profiler itself inflates every call).
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import time
from collections.abc import Awaitable, Callable
from typing import Any

from asgi_lifespan import LifespanManager

from api.app import create_app
from config.settings import Settings

Call = Callable[[], Awaitable[None]]


def _markers() -> dict[str, list[Callable[..., Any]]]:
    """Layer -> the functions whose cumulative time it is (found by their code objects)."""
    from fastapi import FastAPI
    from fastapi.dependencies.utils import solve_dependencies
    from fastapi.routing import APIRoute, APIRouter

    from api.routers.items import get_item
    from policies.guard import tenant_guard
    from policies.tenancy import checked_tenant
    from storage.driver_postgres import PostgresDriver
    from storage.driver_sqlite import SqliteDriver

    return {
        "whole": [FastAPI.__call__],
        "router": [APIRouter.app],
        "route": [APIRoute.handle],
        "dependencies": [solve_dependencies],
        # tenant_guard runs identity, tenant, admission and scopes (policies/guard.py).
        "guard": [tenant_guard, checked_tenant],
        "handler": [get_item],
        "query": [SqliteDriver.one, PostgresDriver.one],
    }


def asgi_get(app: Any, path: str, token: str) -> Call:
    headers = [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {token}".encode())]

    async def call() -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        status = 0

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(scope, receive, send)
        if status != 200:
            raise SystemExit(f"profiled request answered {status}")

    return call


def _cumulative(stats: pstats.Stats, functions: list[Callable[..., Any]]) -> float:
    rows = stats.stats  # type: ignore[attr-defined]
    total = 0.0
    for function in functions:
        code = function.__code__
        row = rows.get((code.co_filename, code.co_firstlineno, code.co_name))
        if row is not None:
            total += row[3]
    return total


async def _measure(
    settings: Settings, path: str, token: str, requests: int
) -> list[tuple[str, float]]:
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        call = asgi_get(manager.app, path, token)
        for _ in range(200):
            await call()
        started = time.process_time()
        for _ in range(requests):
            await call()
        per_request = (time.process_time() - started) / requests * 1e6
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(requests):
            await call()
        profile.disable()
    stats = pstats.Stats(profile)
    t = {layer: _cumulative(stats, functions) for layer, functions in _markers().items()}
    parts = [
        ("middleware (request id, limits, logs, metrics)", t["whole"] - t["router"]),
        ("routing (matching the path)", t["router"] - t["route"]),
        ("dependency injection (FastAPI's own work)", t["dependencies"] - t["guard"]),
        ("guard: identity, tenant, admission, scopes", t["guard"]),
        ("query: driver call and row conversion", t["query"]),
        ("handler and response model", t["handler"] - t["query"]),
        ("serialization and sending (FastAPI)", t["route"] - t["dependencies"] - t["handler"]),
    ]
    scale = per_request / t["whole"]
    return [("whole request (CPU, without the profiler)", per_request)] + [
        (name, value * scale) for name, value in parts
    ]


def profile_item_read(settings: Settings, path: str, token: str, requests: int = 2000) -> str:
    rows = asyncio.run(_measure(settings, path, token, requests))
    whole = rows[0][1]
    lines = [f"{'one item read, CPU by layer':50} {'us':>7} {'share':>6}"]
    for name, micros in rows:
        lines.append(f"{name:50} {micros:>7.0f} {micros / whole:>6.0%}")
    return "\n".join(lines)
