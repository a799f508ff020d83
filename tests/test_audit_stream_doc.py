"""docs/examples/audit_stream.py, the script docs/audit.md shows, against a live server."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.support import World
from tests.support_items import tenant_with_owner
from tests.support_ws import served

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "docs" / "examples" / "audit_stream.py"
DOC = ROOT / "docs" / "audit.md"


async def line(stream: asyncio.StreamReader) -> str:
    return (await asyncio.wait_for(stream.readline(), 10)).decode().strip()


async def test_the_example_follows_resumes_and_stops_when_revoked(world: World) -> None:
    assert "examples/audit_stream.py" in DOC.read_text()
    assert len(SCRIPT.read_text().splitlines()) <= 36
    owner = await tenant_with_owner(world, "acme")  # acme's trail: 1 token.issued
    async with served(world.app) as base:
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "TENANTGATE_WS": base,
            "TENANTGATE_TENANT": "acme",
            "TENANTGATE_TOKEN": owner,
        }
        script = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SCRIPT),
            "1",  # from the first event on
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert script.stdout is not None
            first = await line(script.stdout)
            assert first.split()[0::2] == ["1", "token.issued"]
            await world.login("owner@acme.test")
            second = await line(script.stdout)
            assert second.split()[0::2] == ["2", "token.issued"]
            revoked = await world.client.post("/revoke", data={"token": owner})
            assert revoked.status_code == 200
            # The revocation itself is an event of the trail; then the stream closes.
            third = await line(script.stdout)
            assert third.split()[0::2] == ["3", "token.revoked"]
            assert await asyncio.wait_for(script.wait(), 10) == 1
            assert script.stderr is not None
            message = (await script.stderr.read()).decode()
            assert "closed: the access token was revoked" in message
            assert "resume at 4" in message
        finally:
            if script.returncode is None:
                script.kill()
                await script.wait()
