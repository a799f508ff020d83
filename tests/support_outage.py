"""Assertions shared by the database fault tests: what a 503 for an unreachable database is."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from tests.support_items import assert_problem
from tests.support_ops import LogCapture

# The bound: a data request is answered within 3 s of the database going away.
ANSWER_WITHIN = 3.0


async def timed(call: Awaitable[httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await call
    return response, time.monotonic() - started


def assert_unavailable(response: httpx.Response, elapsed: float, *kinds: str) -> dict[str, Any]:
    """A clean 503 problem (of one of `kinds`, default database-unavailable) with Retry-After,
    in time, with no trace of the failure inside."""
    body: dict[str, Any] = response.json()
    kind = body.get("type", "").rsplit(":", 1)[-1]
    assert kind in (kinds or ("database-unavailable",)), body
    assert_problem(response, 503, kind)
    assert int(response.headers["retry-after"]) > 0
    assert elapsed < ANSWER_WITHIN, f"answered after {elapsed:.2f} s"
    text = response.text
    for leak in ("Traceback", "sqlalchemy", "asyncpg", "sqlite3", "SELECT", "INSERT"):
        assert leak not in text
    return body


def assert_one_error_line(logs: LogCapture, responses: list[httpx.Response]) -> None:
    """One ERROR line per 503, carrying that request's id; no other ERROR line at all."""
    errors = [entry for entry in logs.entries() if entry["level"] in {"ERROR", "CRITICAL"}]
    ids = sorted(response.headers["x-request-id"] for response in responses)
    assert sorted(entry.get("request_id", "") for entry in errors) == ids, errors
    assert all(entry["logger"] == "tenantgate.errors" for entry in errors), errors
    assert all("frames" not in entry for entry in errors), errors


async def eventually(
    call: Callable[[], Awaitable[httpx.Response]],
    status: int,
    within: float = 10.0,
    *,
    until: Callable[[httpx.Response], bool] = lambda response: True,
) -> tuple[httpx.Response, float]:
    """Repeat `call` until it answers `status` (and `until` holds for that answer); the last
    response and how long that took."""
    started = time.monotonic()
    while True:
        response = await call()
        elapsed = time.monotonic() - started
        done = response.status_code == status and until(response)
        if done or elapsed > within:
            return response, elapsed
        await asyncio.sleep(0.02)
