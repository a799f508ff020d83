"""A WebSocket handshake against the ASGI app in process (no server), for guard checks.

The server side offers the `websocket.http.response` extension, as uvicorn does, so a refusal
before accept arrives as the app's own HTTP response (status and problem body).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Message

HANDSHAKE_TIMEOUT = 10.0


async def handshake(
    app: ASGIApp,
    path: str,
    token: str | None,
    *,
    query: str = "",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> tuple[int, bytes]:
    """(101, b"") when the app accepts (the client then leaves), else (status, body) of the
    refusal; a close before accept is the 403 a server answers for it."""
    inbound: asyncio.Queue[Message] = asyncio.Queue()
    inbound.put_nowait({"type": "websocket.connect"})
    answered: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
    status = 0
    body = bytearray()

    async def receive() -> Message:
        return await inbound.get()

    async def send(message: Message) -> None:
        nonlocal status
        kind = message["type"]
        if kind == "websocket.accept":
            status = 101
        elif kind == "websocket.http.response.start":
            status = message["status"]
            return
        elif kind == "websocket.http.response.body":
            body.extend(message.get("body", b""))
            if message.get("more_body"):
                return
        elif kind == "websocket.close" and status == 0:
            status = 403
        if not answered.done():
            answered.set_result((status, bytes(body)))

    offered = ["bearer", token] if token else []
    scope: dict[str, Any] = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": [
            (b"host", b"tenantgate.test"),
            *([(b"sec-websocket-protocol", ", ".join(offered).encode())] if offered else []),
            *(headers or []),
        ],
        "subprotocols": offered,
        "client": ("127.0.0.1", 40000),
        "server": ("tenantgate.test", 80),
        "extensions": {"websocket.http.response": {}},
    }

    async def run() -> None:
        await app(scope, receive, send)

    task = asyncio.create_task(run())
    try:
        result = await asyncio.wait_for(asyncio.shield(answered), HANDSHAKE_TIMEOUT)
    finally:
        inbound.put_nowait({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(task, HANDSHAKE_TIMEOUT)
    return result


@asynccontextmanager
async def served(app: ASGIApp, sock: socket.socket | None = None) -> AsyncIterator[str]:
    """The (already started) app behind a real uvicorn socket in this loop; yields ws://host:port.

    The app's lifespan ran already (World.start): uvicorn does not run it again.
    """
    if sock is None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield f"ws://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()
