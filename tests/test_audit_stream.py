"""WS /v1/tenants/{tenant}/audit/stream: the four stages on the handshake, live events in order,
resuming with from_seq, the first-message token, closing when access ends, slow consumers."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from api.middleware import websocket_auth
from auth.tokens import issue
from storage import accounts
from storage.audit import Actor, NewEvent, append
from storage.database import Database
from tests.support import World, bearer, make_settings
from tests.support_clients import client_token, create_client
from tests.support_items import tenant_with_owner
from tests.support_ws import handshake, served

STREAM = "/v1/tenants/{}/audit/stream"
WAIT = 5.0  # seconds any expected message may take on a busy machine


async def next_message(ws: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
    return message


async def until_ready(ws: ClientConnection) -> tuple[list[int], int]:
    """The seqs replayed before `ready`, and the next seq it announces."""
    replayed = []
    while (message := await next_message(ws))["type"] == "event":
        replayed.append(message["event"]["seq"])
    assert message["type"] == "ready", message
    return replayed, message["next_seq"]


async def events(ws: ClientConnection, count: int) -> list[dict[str, Any]]:
    found = []
    for _ in range(count):
        message = await next_message(ws)
        assert message["type"] == "event", message
        found.append(message["event"])
    return found


async def drain(ws: ClientConnection) -> None:
    while True:
        await asyncio.wait_for(ws.recv(), WAIT)


async def closed(ws: ClientConnection) -> tuple[int, str, float]:
    """Read until the server closes: (code, reason, when)."""
    with pytest.raises(ConnectionClosed) as raised:
        await drain(ws)
    assert raised.value.rcvd is not None, "closed without a close frame"
    return raised.value.rcvd.code, raised.value.rcvd.reason, time.monotonic()


def offer(token: str) -> list[Subprotocol]:
    """Sec-WebSocket-Protocol: bearer, <token>."""
    return [Subprotocol("bearer"), Subprotocol(token)]


def stream(base: str, tenant: str = "acme", query: str = "") -> str:
    return base + STREAM.format(tenant) + query


async def sign_in(world: World) -> None:
    """Something that writes an event into acme's trail (token.issued)."""
    await world.login("owner@acme.test")


@pytest.fixture
async def base(world: World) -> AsyncIterator[str]:
    async with served(world.app) as url:
        yield url


async def test_the_handshake_passes_the_same_four_stages(world: World) -> None:
    owner = await tenant_with_owner(world, "acme")
    await tenant_with_owner(world, "globex")
    await world.member("acme", "viewer@acme.test", "viewer")
    viewer = await world.login("viewer@acme.test")
    path = STREAM.format("acme")

    def problem(answer: tuple[int, bytes]) -> tuple[int, str]:
        body = json.loads(answer[1])
        return answer[0], body["type"].removeprefix("urn:tenantgate:problem:")

    assert problem(await handshake(world.app, path, "not-a-token")) == (401, "invalid-token")
    assert problem(await handshake(world.app, path, viewer)) == (403, "insufficient-scope")
    foreign = await handshake(world.app, STREAM.format("globex"), owner)
    unknown = await handshake(world.app, STREAM.format("nobody"), owner)
    assert problem(foreign) == problem(unknown) == (404, "tenant-not-found")
    assert json.loads(foreign[1])["instance"] == STREAM.format("globex")
    assert (await handshake(world.app, path, owner))[0] == 101
    # A handshake without a token waits for its first message on a stream route only; any
    # other path is refused at once (a close before accept: a server's 403).
    assert (await handshake(world.app, path, None))[0] == 101
    assert (await handshake(world.app, "/v1/nowhere", None))[0] == 403
    by_header = await handshake(
        world.app, path, None, headers=[(b"authorization", b"Bearer " + owner.encode())]
    )
    assert by_header[0] == 101
    invalid = await handshake(world.app, path, owner, query="from_seq=0")
    assert problem(invalid) == (422, "validation-error")
    # The refused scope is audited like any other.
    trail = await world.client.get(
        "/v1/tenants/acme/audit/events", params={"action": "access.denied"}, headers=bearer(owner)
    )
    (denied,) = trail.json()["events"]
    assert denied["target"] == "WS /v1/tenants/{tenant}/audit/stream"


async def test_a_handshake_counts_against_the_rate_limit(database_url: str) -> None:
    plans = {"free": {"principal": "3/minute", "tenant": "100/minute"}}
    async with World.start(make_settings(database_url, plan_limits=plans)) as world:
        await world.tenant("acme")
        await world.member("acme", "owner@acme.test", "owner")
        owner = await world.login("owner@acme.test")
        path = STREAM.format("acme")
        assert (
            await world.client.get("/v1/tenants/acme/audit/events", headers=bearer(owner))
        ).status_code == 200
        statuses = [(await handshake(world.app, path, owner))[0] for _ in range(3)]
        assert statuses == [101, 101, 429]


async def test_live_events_in_order_and_a_resume_without_gaps(world: World, base: str) -> None:
    await tenant_with_owner(world, "acme")
    owner = await world.login("owner@acme.test")
    async with connect(stream(base), subprotocols=offer(owner)) as ws:
        assert ws.subprotocol == "bearer"  # the token is never echoed
        replayed, next_seq = await until_ready(ws)
        assert replayed == []
        for _ in range(3):
            await sign_in(world)
        live = await events(ws, 3)
        assert [e["seq"] for e in live] == [next_seq, next_seq + 1, next_seq + 2]
        assert {e["action"] for e in live} == {"token.issued"}
        assert all(e["tenant"] == "acme" for e in live)
        last = live[-1]["seq"]

    for _ in range(2):  # while away
        await sign_in(world)
    async with connect(
        stream(base, query=f"?from_seq={last + 1}"), subprotocols=offer(owner)
    ) as ws:
        replayed, next_seq = await until_ready(ws)
        assert replayed == [last + 1, last + 2]
        assert next_seq == last + 3
        # An event another process writes (the CLI, say) arrives too: the feed polls the chain.
        other = Database(world.settings)
        try:
            async with other.write() as connection:
                note = NewEvent(action="cli.note", tenant="acme", actor=Actor("system", "cli"))
                await append(connection, note)
        finally:
            await other.dispose()
        await sign_in(world)
        polled, signed_in = await events(ws, 2)
        assert (polled["seq"], polled["action"]) == (last + 3, "cli.note")
        assert (signed_in["seq"], signed_in["action"]) == (last + 4, "token.issued")
        # What the stream sends is the stored event, hash chain included.
        page = await world.client.get("/v1/tenants/acme/audit/events", headers=bearer(owner))
        stored = {e["seq"]: e for e in page.json()["events"]}
        assert signed_in == stored[signed_in["seq"]]
        assert polled == stored[polled["seq"]]


async def test_a_token_in_the_first_message(
    world: World, base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await tenant_with_owner(world, "acme")
    await tenant_with_owner(world, "globex")
    await world.member("acme", "viewer@acme.test", "viewer")
    viewer = await world.login("viewer@acme.test")

    async with connect(stream(base)) as ws:
        await ws.send(json.dumps({"type": "authorization", "token": owner}))
        await until_ready(ws)
        await sign_in(world)
        assert (await events(ws, 1))[0]["action"] == "token.issued"

    for token, tenant, reason in (
        ("not-a-token", "acme", "401 invalid-token"),
        (viewer, "acme", "403 insufficient-scope"),
        (owner, "globex", "404 tenant-not-found"),
    ):
        async with connect(stream(base, tenant)) as ws:
            await ws.send(json.dumps({"type": "authorization", "token": token}))
            code, text, _ = await closed(ws)
            assert code == 1008
            assert text.startswith(reason), text
    async with connect(stream(base)) as ws:
        await ws.send("Bearer " + owner)
        code, text, _ = await closed(ws)
        assert (code, text) == (
            1008,
            'the first message must be {"type": "authorization", "token": ...}',
        )
    monkeypatch.setattr(websocket_auth, "FIRST_MESSAGE_SECONDS", 0.3)
    # No token in the handshake (a token in the query string is not even looked at: it would
    # land in access logs) and none in time: closed.
    async with connect(stream(base, query=f"?access_token={owner}")) as ws:
        code, text, _ = await closed(ws)
        assert (code, text) == (1008, "no authorization message within 0.3 s")


async def test_the_stream_closes_within_a_second_when_access_ends(world: World, base: str) -> None:
    owner = await tenant_with_owner(world, "acme")

    # Revoked (RFC 7009, the user's own token).
    async with connect(stream(base), subprotocols=offer(owner)) as ws:
        await until_ready(ws)
        revoked = await world.client.post("/revoke", data={"token": owner})
        assert revoked.status_code == 200
        changed = time.monotonic()
        code, reason, at = await closed(ws)
        assert code == 1008
        assert "revoked" in reason
        assert at - changed < 1.0

    # The member loses audit:read (owner -> admin cuts off the older tokens).
    await world.member("acme", "second@acme.test", "owner")
    second = await world.login("second@acme.test")
    me = (await world.client.get("/v1/me", headers=bearer(second))).json()["subject"]
    boss = await world.login("owner@acme.test")
    async with connect(stream(base), subprotocols=offer(second)) as ws:
        await until_ready(ws)
        downgraded = await world.client.patch(
            f"/v1/tenants/acme/members/{me}", json={"role": "admin"}, headers=bearer(boss)
        )
        assert downgraded.status_code == 200, downgraded.text
        changed = time.monotonic()
        code, _, at = await closed(ws)
        assert code == 1008
        assert at - changed < 1.0

    # The token expires.
    keyring = world.app.state.keyring
    user_id = (await world.client.get("/v1/me", headers=bearer(boss))).json()["subject"]
    short, _ = issue(
        keyring,
        issuer=world.settings.issuer,
        audience=world.settings.audience,
        ttl=2,
        subject=user_id,
        client_id="tenantgate",
        scopes=frozenset({"audit:read"}),
        tenant="acme",
        revision=accounts.now_ms(),
    )
    async with connect(stream(base), subprotocols=offer(short)) as ws:
        await until_ready(ws)
        expires = time.time() + 2
        code, reason, _ = await closed(ws)
        assert (code, reason) == (1008, "the access token expired")
        assert time.time() - expires < 1.0

    # The tenant is suspended.
    await world.user("root@platform.test", platform_admin=True)
    root = await world.login("root@platform.test")
    async with connect(stream(base), subprotocols=offer(boss)) as ws:
        await until_ready(ws)
        suspended = await world.client.patch(
            "/v1/tenants/acme", json={"status": "suspended"}, headers=bearer(root)
        )
        assert suspended.status_code == 200
        changed = time.monotonic()
        code, reason, at = await closed(ws)
        assert (code, reason) == (1008, "the tenant is suspended")
        assert at - changed < 1.0


async def test_a_consumer_that_never_reads_is_dropped(database_url: str) -> None:
    settings = make_settings(database_url, audit_stream_buffer=32)
    async with World.start(settings) as world:
        owner = await tenant_with_owner(world, "acme")
        # Small socket buffers on both sides, so a client that stops reading is felt at once.
        listening = socket.socket()
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        listening.bind(("127.0.0.1", 0))
        async with served(world.app, listening) as base:
            reader = await connect(stream(base), subprotocols=offer(owner))
            await until_ready(reader)
            raw = socket.socket()
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            raw.connect(listening.getsockname())
            idle = await connect(
                stream(base),
                subprotocols=offer(owner),
                sock=raw,
                max_queue=1,
                compression=None,  # the padding below would compress to nothing
            )
            await until_ready(idle)
            feed = world.app.state.audit_feed
            assert feed.listeners() == 2
            received = 0
            for batch in range(100):  # noqa: B007 - checked after the loop
                async with world.database.write() as connection:
                    for n in range(10):
                        details = {"padding": "x" * 400, "n": n}
                        event = NewEvent(
                            action="test.flood",
                            tenant="acme",
                            actor=Actor("system", "test"),
                            details=details,
                        )
                        await append(connection, event)
                received += len(await events(reader, 10))  # the reader keeps up
                if feed.listeners() == 1:
                    break
            assert feed.listeners() == 1, "the idle consumer was never dropped"
            assert batch > 0  # it fell behind over time, not on the first burst
            assert received == 10 * (batch + 1)
            # The reader got everything, and is still open.
            await sign_in(world)
            assert (await events(reader, 1))[0]["action"] == "token.issued"
            await reader.close()
            # The idle one, reading at last, finds the events it had, then 1013.
            code, reason, _ = await closed(idle)
            assert (code, reason) == (
                1013,
                "too slow: the stream fell behind; reconnect with from_seq",
            )
            metrics = (await world.client.get("/metrics")).text
            assert 'tenantgate_audit_stream_closes_total{reason="slow"} 1.0' in metrics


async def test_a_clients_stream_closes_when_the_client_is_narrowed_or_deleted(
    world: World, base: str
) -> None:
    owner = await tenant_with_owner(world, "acme")
    client = await create_client(world, owner, "acme", ["audit:read", "items:read"])
    path = f"/v1/tenants/acme/clients/{client.client_id}"
    for change in ("narrowed", "deleted"):
        token = await client_token(world.client, client)
        async with connect(stream(base), subprotocols=offer(token)) as ws:
            await until_ready(ws)
            if change == "narrowed":
                answer = await world.client.patch(
                    path, json={"scopes": ["items:read"]}, headers=bearer(owner)
                )
                assert answer.status_code == 200, answer.text
            else:
                answer = await world.client.delete(path, headers=bearer(owner))
                assert answer.status_code == 204, answer.text
            changed = time.monotonic()
            code, reason, at = await closed(ws)
            assert (code, "revoked" in reason) == (1008, True), change
            assert at - changed < 1.0, change
        if change == "narrowed":  # audit:read back, for the deletion's turn
            widened = await world.client.patch(
                path, json={"scopes": ["audit:read", "items:read"]}, headers=bearer(owner)
            )
            assert widened.status_code == 200, widened.text
