"""One live audit stream over a WebSocket, after the guard stages let its handshake through.

Messages are JSON objects: the events committed before the stream caught up (from `from_seq`),
then `{"type": "ready", "next_seq": N}`, then each event as it commits, all as
`{"type": "event", "event": {...}}` in `seq` order without gaps or repeats. While open, the
token is checked again every RECHECK_SECONDS (and at once after a security event of the
tenant): expiry, revocation and cut-offs by the admission stage itself, the tenant's status by
the feed's poll (or, sooner, the tenant.suspended event itself); any of them closes the stream
with 1008. A stream whose inbox fills up (it does
not read fast enough) is closed with 1013 and forgotten.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from typing import cast

from fastapi import WebSocket
from starlette.websockets import WebSocketDisconnect

from api.metrics import Metrics
from auth.errors import InvalidToken
from auth.principal import Principal
from policies.admission import admit_principal
from storage.audit import Action, Event
from storage.audit_feed import POLL_BATCH, AuditFeed, Listener

log = logging.getLogger("tenantgate.audit.stream")

RECHECK_SECONDS = 0.5
# Events of the tenant's trail after which the stream's own token is checked at once.
SECURITY_ACTIONS = frozenset(
    {
        Action.TOKEN_REVOKED,
        Action.MEMBER_ROLE_CHANGED,
        Action.MEMBER_REMOVED,
        Action.CLIENT_REVOKED,
        Action.CLIENT_UPDATED,
        Action.CLIENT_SECRET_ROTATED,
        Action.TENANT_SUSPENDED,
    }
)
GONE = (WebSocketDisconnect, OSError)


@dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str  # at most 123 bytes (RFC 6455)
    label: str  # for the metrics


EXPIRED = Close(1008, "the access token expired", "expired")
REVOKED = Close(1008, "the access token was revoked, or its holder's access changed", "revoked")
SUSPENDED = Close(1008, "the tenant is suspended", "suspended")
SLOW = Close(1013, "too slow: the stream fell behind; reconnect with from_seq", "slow")
FAILED = Close(1011, "internal error; reconnect with from_seq", "error")


class Stream:
    def __init__(
        self, websocket: WebSocket, principal: Principal, tenant: str, feed: AuditFeed
    ) -> None:
        self.websocket = websocket
        self.principal = principal
        self.tenant = tenant
        self.feed = feed
        self.next_seq = 1
        self.live_from: int | None = None  # the first seq after `ready`
        self.recheck = asyncio.Event()
        self.suspended = False

    async def send(self, event: Event) -> None:
        message = {"type": "event", "event": event.fields()}
        await self.websocket.send_text(json.dumps(message, ensure_ascii=False))
        self.next_seq = event.seq + 1
        if self.live_from is None or event.seq < self.live_from:
            return  # history: what it says may have been undone since
        if event.action == Action.TENANT_SUSPENDED:
            self.suspended = True  # committed: the admission stage refuses the tenant now
        if event.action in SECURITY_ACTIONS:
            self.recheck.set()

    async def catch_up(self) -> None:
        """Send every committed event from next_seq on, from the database."""
        while True:
            missed = await self.feed.after(self.tenant, self.next_seq - 1)
            for event in missed:
                await self.send(event)
            if len(missed) < POLL_BATCH:
                return

    async def pump(self, listener: Listener) -> Close | None:
        while True:
            event = await listener.inbox.get()
            if event.seq < self.next_seq:
                continue  # sent already (read from the database, or delivered twice)
            if event.seq > self.next_seq:
                await self.catch_up()  # one is missing: the database has it, in order
                continue
            await self.send(event)

    async def watch(self, listener: Listener) -> Close:
        """Until the token or the tenant stops being good, or the stream falls behind."""
        while True:
            if listener.dropped.is_set():
                return SLOW
            if listener.suspended.is_set() or self.suspended:
                return SUSPENDED
            remaining = self.principal.claims.expires_at - time.time()
            if remaining <= 0:
                return EXPIRED
            try:
                # The admission stage itself: revocation by jti, cut-offs (removal, a role or
                # scopes lowered, a client deleted or renewed). Counts no rate limit.
                await admit_principal(self.websocket, self.principal)
            except InvalidToken:
                return REVOKED
            except Exception as error:  # noqa: BLE001 - checked again at the next round
                log.warning("audit stream: admission check failed (%s)", type(error).__name__)
            self.recheck.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    _first(self.recheck, listener.attention), min(RECHECK_SECONDS, remaining)
                )
            listener.attention.clear()

    async def until_client_leaves(self) -> Close | None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return None
            # Anything the client sends once the stream runs is ignored.


async def _first(*events: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def serve(
    websocket: WebSocket, principal: Principal, tenant: str, from_seq: int | None
) -> None:
    """Accept, replay from `from_seq` (or start at the next event), then follow live."""
    feed = cast(AuditFeed, websocket.app.state.audit_feed)
    metrics = getattr(websocket.app.state, "metrics", None)
    offered = websocket.scope.get("subprotocols") or []
    await websocket.accept(subprotocol="bearer" if "bearer" in offered else None)
    stream = Stream(websocket, principal, tenant, feed)
    if isinstance(metrics, Metrics):
        metrics.audit_streams.inc()
    outcome: Close | None = None
    try:
        outcome = await _run(stream, from_seq)
    except GONE:
        outcome = None
    except Exception as error:  # noqa: BLE001 - closed as an internal error, never a trace
        log.error("audit stream of %s failed (%s)", tenant, type(error).__name__)
        outcome = FAILED
    finally:
        if isinstance(metrics, Metrics):
            metrics.audit_streams.dec()
            metrics.audit_stream_closed(outcome.label if outcome else "client")
    if outcome is not None:
        with contextlib.suppress(*GONE):
            await websocket.close(outcome.code, outcome.reason)


async def _run(stream: Stream, from_seq: int | None) -> Close | None:
    feed = stream.feed
    stream.next_seq = from_seq if from_seq is not None else await feed.head(stream.tenant) + 1
    await stream.catch_up()
    async with feed.subscribe(stream.tenant) as listener:
        await stream.catch_up()  # what committed between the replay and the subscription
        ready = {"type": "ready", "tenant": stream.tenant, "next_seq": stream.next_seq}
        await stream.websocket.send_text(json.dumps(ready))
        stream.live_from = stream.next_seq
        tasks = [
            asyncio.ensure_future(stream.pump(listener)),
            asyncio.ensure_future(stream.watch(listener)),
            asyncio.ensure_future(stream.until_client_leaves()),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            feed.leave(listener)  # a dropped stream stops holding events at once
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return done.pop().result()
